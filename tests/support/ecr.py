"""A local "ECR" for tests: moto's ECR/STS control plane and a real registry (a Seawall) as its
data plane, kept consistent the way one ECR registry is, behind one URL: :class:`EcrFront`.

moto has no registry data plane and knows only what its API is told; real ECR is one store seen
through two doors. The front is the glue, and nothing more (test support, not a fake of ECR's
behaviour): a loopback HTTP server that

- forwards AWS API requests (signed ``AWS4-HMAC-SHA256``: ECR and, when pointed here, STS) to
  moto unchanged, records each call (``ecr:DescribeImages`` …) with its parameters, and after a
  ``BatchDeleteImage`` removes the same tag or manifest from the registry;
- forwards everything else to the registry, records it, refuses a push into a repository moto
  does not have (``404 NAME_UNKNOWN``, as ECR does), answers an upload ``PATCH`` with ``201``
  as ECR does (the spec says ``202``), and after each manifest ``PUT`` tells moto with
  ``PutImage`` (always with ``imageDigest``), as ECR would list it.

Point the adapter at it with ``AWS_ENDPOINT_URL_ECR=<front.url>`` (boto3's own setting) and the
endpoint URL ``<front.url>``. :attr:`EcrFront.stale_tokens` makes the next answers of
``GetAuthorizationToken`` carry a token the registry refuses (ECR rotated it), to test the
refresh after a 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
from botocore.exceptions import ClientError

from tests.support.client import TokenAuth
from tests.support.moto import MOTO_ACCOUNT

__all__ = ["AwsCall", "EcrFront"]

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"}
_MANIFEST_PUT = re.compile(r"^/v2/(?P<repo>.+)/manifests/(?P<ref>[^/?]+)$")
_UPLOAD_START = re.compile(r"^/v2/(?P<repo>.+)/blobs/uploads/?$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


@dataclass(frozen=True)
class AwsCall:
    """One AWS API call the front forwarded: ``ecr:DescribeImages`` and its parameters."""

    action: str
    params: dict[str, Any] = field(hash=False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _any(self) -> None:
        self.server.front.handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    front: EcrFront


class EcrFront:
    """The front of one moto server and one registry.

    :param moto_url: moto's URL.
    :param registry_url: the data plane's URL.
    :param registry_login: an admin login of the data plane (to apply deletes).
    :param aws: ``boto3.client`` arguments with which the front itself talks to moto.
    :param account: the registry's account (what ``PutImage`` records into).
    """

    def __init__(
        self,
        moto_url: str,
        registry_url: str,
        registry_login: tuple[str, str],
        aws: dict[str, Any],
        account: str = MOTO_ACCOUNT,
    ) -> None:
        self.account = account
        self.moto_url, self.registry_url = moto_url, registry_url.rstrip("/")
        self.calls: list[AwsCall] = []
        self.data_plane: list[tuple[str, str]] = []  # (method, path) sent to the registry
        self.stale_tokens = 0
        self._lock = threading.Lock()
        self._ecr = boto3.client("ecr", **aws)
        self._moto = httpx.Client(timeout=60.0)
        self._registry = httpx.Client(timeout=60.0)
        self._admin = httpx.Client(
            base_url=self.registry_url, auth=TokenAuth(*registry_login), timeout=60.0
        )
        self._known_repos: set[tuple[str, str]] = set()
        self._server: _Server | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> EcrFront:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.front = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for c in (self._moto, self._registry, self._admin):
            c.close()

    def __enter__(self) -> EcrFront:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what happened ---------------------------------------------------------------------

    def mark(self) -> tuple[int, int]:
        """A point to count from: ``(AWS calls, data-plane requests)`` so far."""
        with self._lock:
            return len(self.calls), len(self.data_plane)

    def since(self, mark: tuple[int, int]) -> tuple[list[AwsCall], list[tuple[str, str]]]:
        """The AWS calls and data-plane requests after ``mark``."""
        with self._lock:
            return self.calls[mark[0] :], self.data_plane[mark[1] :]

    def count(self, action: str, mark: tuple[int, int] = (0, 0)) -> int:
        return sum(1 for c in self.since(mark)[0] if c.action == action)

    # -- forwarding ------------------------------------------------------------------------

    def handle(self, h: _Handler) -> None:
        body = _read_body(h)
        if h.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256"):
            status, headers, content = self._aws(h, body)
        else:
            status, headers, content = self._data(h, body)
        h.send_response(status)
        length = str(len(content))
        for key, value in headers:
            if key.lower() == "content-length" and h.command == "HEAD":
                length = value  # what a GET would carry
            elif key.lower() not in _HOP:
                h.send_header(key, value)
        h.send_header("Content-Length", length)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(content)

    def _aws(self, h: _Handler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        target = h.headers.get("X-Amz-Target")
        if target:
            action, params = "ecr:" + target.rsplit(".", 1)[-1], json.loads(body or b"{}")
        else:
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            action, params = "sts:" + form.get("Action", "?"), form
        with self._lock:
            self.calls.append(AwsCall(action, params))
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in _HOP]
        r = self._moto.request(h.command, self.moto_url + h.path, headers=headers, content=body)
        content = r.content
        if r.status_code == 200 and action == "ecr:GetAuthorizationToken":
            content = self._maybe_stale(content)
        if r.status_code == 200 and action == "ecr:BatchDeleteImage":
            self._apply_deletes(params, json.loads(content))
        return r.status_code, list(r.headers.multi_items()), content

    def _maybe_stale(self, content: bytes) -> bytes:
        with self._lock:
            if self.stale_tokens <= 0:
                return content
            self.stale_tokens -= 1
        doc = json.loads(content)
        for data in doc.get("authorizationData", []):
            data["authorizationToken"] = base64.b64encode(b"AWS:rotated-away").decode()
        return json.dumps(doc).encode()

    def _data(self, h: _Handler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        path = urlsplit(h.path).path
        with self._lock:
            self.data_plane.append((h.command, path))
        put = _MANIFEST_PUT.match(path) if h.command == "PUT" else None
        start = _UPLOAD_START.match(path) if h.command == "POST" else None
        repo = (put or start).group("repo") if (put or start) else None
        if repo is not None and not self._repository_exists(repo):
            return 404, [("Content-Type", "application/json")], _name_unknown(repo)
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in _HOP | {"host"}]
        r = self._registry.request(
            h.command, self.registry_url + h.path, headers=headers, content=body
        )
        status = r.status_code
        if h.command == "PATCH" and status == 202:
            status = 201  # what ECR answers to an upload PATCH (outside the spec)
        if put is not None and r.status_code == 201:
            content_type = h.headers.get("Content-Type", "")
            self._record(put.group("repo"), put.group("ref"), body, content_type)
        return status, list(r.headers.multi_items()), r.content

    # -- keeping moto and the registry consistent -----------------------------------------

    def _repository_exists(self, repo: str) -> bool:
        account = self.account
        if (account, repo) in self._known_repos:
            return True
        try:
            self._ecr.describe_repositories(registryId=account, repositoryNames=[repo])
        except ClientError:
            return False
        self._known_repos.add((account, repo))
        return True

    def _record(self, repo: str, reference: str, manifest: bytes, media_type: str) -> None:
        """``PutImage`` of what the registry just stored (digest always given)."""
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        account = self.account
        if _DIGEST.match(reference):
            try:
                self._ecr.describe_images(
                    registryId=account, repositoryName=repo, imageIds=[{"imageDigest": digest}]
                )
                return  # known already (a tag put it there)
            except ClientError:
                pass
        args: dict[str, Any] = {
            "registryId": account,
            "repositoryName": repo,
            "imageManifest": manifest.decode("utf-8"),
            "imageManifestMediaType": media_type.split(";")[0].strip(),
            "imageDigest": digest,
        }
        if not _DIGEST.match(reference):
            args["imageTag"] = reference
        try:
            self._ecr.put_image(**args)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ImageAlreadyExistsException":
                raise

    def _apply_deletes(self, params: dict[str, Any], answer: dict[str, Any]) -> None:
        """What moto deleted, deleted from the registry too: a tag, and an image that lost
        its last tag or was deleted by digest."""
        repo, account = params["repositoryName"], params.get("registryId") or self.account
        for image_id in answer.get("imageIds", []):
            tag, digest = image_id.get("imageTag"), image_id.get("imageDigest")
            if tag:
                self._delete(f"/v2/{repo}/manifests/{tag}")
            if digest and not self._moto_has(account, repo, digest):
                self._delete(f"/v2/{repo}/manifests/{digest}")

    def _moto_has(self, account: str, repo: str, digest: str) -> bool:
        try:
            self._ecr.describe_images(
                registryId=account, repositoryName=repo, imageIds=[{"imageDigest": digest}]
            )
        except ClientError:
            return False
        return True

    def _delete(self, path: str) -> None:
        with self._lock:
            r = self._admin.delete(path)
        assert r.status_code in (202, 404), f"DELETE {path}: {r.status_code} {r.text}"


def _name_unknown(repo: str) -> bytes:
    message = f"The repository with name '{repo}' does not exist in the registry"
    return json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": message}]}).encode()


def _read_body(h: _Handler) -> bytes:
    length = h.headers.get("Content-Length")
    if length is not None:
        return h.rfile.read(int(length))
    if h.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return b""
    parts: list[bytes] = []
    while True:
        size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(h.rfile.read(size))
        h.rfile.readline()
