"""The ECR and STS control plane of one ``aws-ecr`` endpoint, through boto3: :class:`EcrApi`.

boto3 blocks, so every call runs in a worker thread (``anyio.to_thread.run_sync``, at most
:data:`MAX_THREADS` at once per endpoint) and what botocore raises is translated there, once
(:func:`adapters.aws_ecr_errors.translate`). boto3 finds the APIs where its standard settings
point (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_ECR``, ``AWS_ENDPOINT_URL_STS``, the profile).

Credentials: the endpoint's access key pair, else the default AWS chain (environment, profile,
web identity, instance role); then, with a role, ``sts:AssumeRole`` (external id, session
name), renewed :data:`RENEW_BEFORE_SECONDS` before the role's credentials expire. The account
(``registryId`` of every ECR call) is the URL's, else the caller's from ``GetCallerIdentity``.

An answer AWS should never give (a missing field, a token that is not base64 of
``user:password``) is a :class:`~adapters.oci.errors.ProtocolError` naming the call. The boto3
clients hold connection pools: :meth:`EcrApi.aclose` closes them (the adapter's ``close``).
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import anyio
import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from adapters.aws_ecr_config import EcrSettings, RepositorySettings
from adapters.aws_ecr_errors import aws_error_code, translate
from adapters.oci.credentials import CredentialsUnavailable
from adapters.oci.errors import NotFound, ProtocolError, RequestRejected, Transient

__all__ = ["MAX_THREADS", "EcrApi", "ImageDetail", "RepositoryInfo"]

T = TypeVar("T")
MAX_THREADS = 8  # boto3 calls of one endpoint in flight
RENEW_BEFORE_SECONDS = 300.0  # an assumed role's credentials are renewed this early
ROLE_SECONDS = 3600  # DurationSeconds of AssumeRole (the default maximum of a role)
_GONE = ("ImageNotFoundException", "RepositoryNotFoundException")
_BATCH = 100  # image ids per BatchDeleteImage (ECR's limit)
#: what reading a malformed answer raises (a missing field, bad base64 or UTF-8, a wrong type)
_MALFORMED = (KeyError, IndexError, TypeError, ValueError)
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=10,
    read_timeout=30,
    user_agent_extra="seawall",
)


@dataclass(frozen=True, slots=True)
class RepositoryInfo:
    """An ECR repository's name and what it says about tags."""

    name: str
    tag_mutability: str  # MUTABLE, IMMUTABLE, MUTABLE_WITH_EXCLUSION, IMMUTABLE_WITH_EXCLUSION
    exclusion_filters: tuple[str, ...] = ()  # wildcard tag patterns that flip the mutability


@dataclass(frozen=True, slots=True)
class ImageDetail:
    """One image of ``DescribeImages``: its digest, tags and manifest media type.
    ``image_size_bytes`` is ECR's image size (layers), not the manifest's."""

    digest: str
    tags: tuple[str, ...]
    media_type: str | None
    image_size_bytes: int | None


class EcrApi:
    """boto3 for one endpoint; create anywhere, use from one event loop. Its boto3 clients
    are shared by the worker threads (they are thread-safe; sessions are made under a lock).
    :meth:`aclose` closes them; the next call makes new ones."""

    def __init__(self, settings: EcrSettings) -> None:
        self.settings = settings
        self.calls: Counter[str] = Counter()  # API calls by name ("ecr:DescribeImages")
        self._lock = threading.Lock()
        self._base: boto3.Session | None = None
        self._session: boto3.Session | None = None
        self._session_until = 0.0  # time.time() after which an assumed role is renewed
        self._clients: dict[str, BaseClient] = {}
        #: the clients of the assumed role's previous credentials: closed at the next renewal
        #: (a call may still be using them now) or by :meth:`aclose`
        self._retired: list[BaseClient] = []
        self._account: str | None = settings.account
        self.region_name: str | None = settings.region  # known once a client was made
        self._limiter: anyio.CapacityLimiter | None = None

    # -- running boto3 ---------------------------------------------------------------------

    async def run(self, what: str, call: Callable[[], T]) -> T:
        """``call()`` in a worker thread; botocore's errors come back translated."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(MAX_THREADS)
        return await anyio.to_thread.run_sync(
            self._guarded, what, call, limiter=self._limiter, abandon_on_cancel=True
        )

    @staticmethod
    def _guarded(what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except (BotoCoreError, ClientError) as error:
            raise translate(error, what) from error
        except _MALFORMED as error:
            raise ProtocolError(
                f"{what}: AWS answered outside its API ({type(error).__name__}: {str(error)[:200]})"
            ) from error

    async def aclose(self) -> None:
        """Close the boto3 clients (their connection pools), in a worker thread; the next
        call makes new ones."""
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close_clients)

    def _close_clients(self) -> None:
        with self._lock:
            clients = [*self._clients.values(), *self._retired]
            self._clients, self._retired = {}, []
            self._session, self._session_until = None, 0.0
        for found in clients:
            _close(found)

    def _count(self, name: str) -> None:
        with self._lock:
            self.calls[name] += 1

    def _base_session(self) -> boto3.Session:
        if self._base is None:
            s = self.settings
            self._base = boto3.Session(
                aws_access_key_id=s.access_key,
                aws_secret_access_key=s.secret_key,
                region_name=s.region,
            )
        return self._base

    def region(self) -> str:
        """The API region: the URL's or ``region`` option, else boto3's configured one
        (blocking the first time: call it in a worker thread; then :attr:`region_name`)."""
        region = self.region_name or self.settings.region or self._base_session().region_name
        if not region:
            raise CredentialsUnavailable(
                "aws-ecr: no AWS region: the URL is not an ECR host, so set AWS_REGION "
                "(or AWS_DEFAULT_REGION, or the profile's region) or the endpoint's --region"
            )
        self.region_name = region
        return region

    def client(self, service: str) -> BaseClient:
        """A boto3 client of ``service`` with the current (assumed-role) credentials."""
        with self._lock:
            if self._session is None or time.time() >= self._session_until:
                self._session, self._session_until = self._effective_session()
                for old in self._retired:  # unused for a role's lifetime by now
                    _close(old)
                self._retired = list(self._clients.values())
                self._clients.clear()
            found = self._clients.get(service)
            if found is None:
                found = self._session.client(service, region_name=self.region(), config=_CONFIG)
                self._clients[service] = found
            return found

    def _effective_session(self) -> tuple[boto3.Session, float]:
        base, s = self._base_session(), self.settings
        if s.role_arn is None:
            return base, float("inf")
        args: dict[str, Any] = {
            "RoleArn": s.role_arn,
            "RoleSessionName": s.role_session_name,
            "DurationSeconds": ROLE_SECONDS,
        }
        if s.external_id:
            args["ExternalId"] = s.external_id
        sts = base.client("sts", region_name=self.region(), config=_CONFIG)
        self.calls["sts:AssumeRole"] += 1
        what = f"STS AssumeRole of {s.role_arn}"
        try:
            creds = sts.assume_role(**args)["Credentials"]
        except (BotoCoreError, ClientError) as error:
            translated = translate(error, what)
            if isinstance(translated, Transient):
                raise translated from error  # STS was busy or unreachable: try again later
            raise CredentialsUnavailable(
                f"{translated.message} (the role cannot be assumed: check the role ARN, its "
                "trust policy and --external-id)"
            ) from error
        finally:
            _close(sts)  # used once: its connection pool goes now, not at garbage collection
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=self.region(),
        )
        return session, creds["Expiration"].timestamp() - RENEW_BEFORE_SECONDS

    def _ecr(self, operation: str) -> BaseClient:
        self._count(f"ecr:{operation}")
        return self.client("ecr")

    # -- identity --------------------------------------------------------------------------

    def _caller_sync(self) -> tuple[str, str]:
        self._count("sts:GetCallerIdentity")
        found = self.client("sts").get_caller_identity()
        return str(found["Account"]), str(found["Arn"])

    async def caller(self) -> tuple[str, str]:
        """``(account, ARN)`` of the credentials in use (after the role was assumed)."""
        return await self.run("STS GetCallerIdentity", self._caller_sync)

    async def account(self) -> str:
        """The registry's account: the URL's, else the caller's (asked once)."""
        if self._account is None:
            self._account = (await self.caller())[0]
        return self._account

    async def authorization(self) -> tuple[str, str, float | None]:
        """``(username, password, expires_at)`` from ``GetAuthorizationToken`` for the
        registry's account; ``expires_at`` in ``time.time()`` seconds (may be past)."""
        account = await self.account()

        def call() -> tuple[str, str, float | None]:
            data = self._ecr("GetAuthorizationToken").get_authorization_token(
                registryIds=[account]
            )["authorizationData"]
            if not data:
                raise CredentialsUnavailable(f"ECR issued no authorization token for {account}")
            raw = base64.b64decode(data[0]["authorizationToken"], validate=True).decode()
            user, sep, password = raw.partition(":")
            if not sep:
                raise CredentialsUnavailable("ECR's authorization token is not user:password")
            expires = data[0].get("expiresAt")
            if expires is not None and not isinstance(expires, datetime):
                raise TypeError(f"expiresAt is a {type(expires).__name__}, not a time")
            return user, password, expires.timestamp() if expires is not None else None

        return await self.run(f"ECR GetAuthorizationToken for {account}", call)

    # -- repositories ----------------------------------------------------------------------

    async def repositories(self, prefix: str = "") -> list[str]:
        """Names of the registry's repositories that start with ``prefix`` (all pages)."""
        account = await self.account()

        def call() -> list[str]:
            pages = self._ecr("DescribeRepositories").get_paginator("describe_repositories")
            out: list[str] = []
            for n, page in enumerate(
                pages.paginate(registryId=account, PaginationConfig={"PageSize": 1000})
            ):
                if n:
                    self._count("ecr:DescribeRepositories")
                out.extend(
                    r["repositoryName"]
                    for r in page.get("repositories", [])
                    if r["repositoryName"].startswith(prefix)
                )
            return out

        return await self.run(f"ECR DescribeRepositories of {account}", call)

    async def check_listing(self) -> None:
        """One ``DescribeRepositories`` of a single repository: the registry's account is
        known and its repositories may be listed (for health checks)."""
        account = await self.account()

        def call() -> None:
            self._ecr("DescribeRepositories").describe_repositories(
                registryId=account, maxResults=1
            )

        await self.run(f"ECR DescribeRepositories of registry {account}", call)

    async def repository(self, name: str) -> RepositoryInfo | None:
        """The repository ``name``, or None when the registry has none of that name."""
        account = await self.account()

        def call() -> RepositoryInfo | None:
            try:
                found = self._ecr("DescribeRepositories").describe_repositories(
                    registryId=account, repositoryNames=[name]
                )["repositories"]
            except ClientError as error:
                if aws_error_code(error)[0] == "RepositoryNotFoundException":
                    return None
                raise
            return _repository_info(found[0]) if found else None

        return await self.run(f"ECR DescribeRepositories of {account}/{name}", call)

    async def create_repository(
        self, name: str, settings: RepositorySettings
    ) -> RepositoryInfo | None:
        """Create ``name``; None when it exists already (someone else was first)."""
        account = await self.account()
        encryption: dict[str, str] = {"encryptionType": settings.encryption}
        if settings.kms_key:
            encryption["kmsKey"] = settings.kms_key

        def call() -> RepositoryInfo | None:
            try:
                made = self._ecr("CreateRepository").create_repository(
                    registryId=account,
                    repositoryName=name,
                    imageTagMutability=settings.tag_mutability,
                    imageScanningConfiguration={"scanOnPush": settings.scan_on_push},
                    encryptionConfiguration=encryption,
                )["repository"]
            except ClientError as error:
                if aws_error_code(error)[0] == "RepositoryAlreadyExistsException":
                    return None
                raise
            return _repository_info(made)

        return await self.run(f"ECR CreateRepository {account}/{name}", call)

    # -- images ----------------------------------------------------------------------------

    async def images(self, repo: str) -> list[ImageDetail]:
        """Every tagged image of ``repo`` (all pages). :raises NotFound: no such repository."""
        account = await self.account()

        def call() -> list[ImageDetail]:
            pages = self._ecr("DescribeImages").get_paginator("describe_images")
            out: list[ImageDetail] = []
            args = {"registryId": account, "repositoryName": repo}
            tagged = {"filter": {"tagStatus": "TAGGED"}, "PaginationConfig": {"PageSize": 1000}}
            for n, page in enumerate(pages.paginate(**args, **tagged)):
                if n:
                    self._count("ecr:DescribeImages")
                out.extend(_image(d) for d in page.get("imageDetails", []) if d.get("imageTags"))
            return out

        return await self.run(f"ECR DescribeImages of {account}/{repo}", call)

    async def image(self, repo: str, tag: str) -> ImageDetail | None:
        """The image ``repo:tag`` names, or None (no such tag or repository)."""
        account = await self.account()

        def call() -> ImageDetail | None:
            try:
                found = self._ecr("DescribeImages").describe_images(
                    registryId=account, repositoryName=repo, imageIds=[{"imageTag": tag}]
                )["imageDetails"]
            except ClientError as error:
                if aws_error_code(error)[0] in _GONE:
                    return None
                raise
            return _image(found[0]) if found else None

        return await self.run(f"ECR DescribeImages of {account}/{repo}:{tag}", call)

    async def delete(self, repo: str, image_id: dict[str, str]) -> None:
        """``BatchDeleteImage`` of one ``{"imageTag": t}`` (that tag only; ECR deletes an
        image with its last tag) or ``{"imageDigest": d}`` (the image and all its tags).

        :raises NotFound: no such image (or repository).
        :raises RequestRejected: ECR refused (e.g. the image is a child of an index).
        """
        account = await self.account()
        where = f"{account}/{repo} {image_id}"

        def call() -> None:
            answer = self._ecr("BatchDeleteImage").batch_delete_image(
                registryId=account, repositoryName=repo, imageIds=[image_id]
            )
            for failure in answer.get("failures", []):
                code = str(failure.get("failureCode", ""))
                text = f"ECR BatchDeleteImage {where}: {code}: {failure.get('failureReason', '')}"
                if code == "ImageNotFound":
                    raise NotFound(text, code=code)
                raise RequestRejected(text, code=code)

        await self.run(f"ECR BatchDeleteImage {where}", call)


def _close(client: BaseClient) -> None:
    """Close a boto3 client's connection pool; a failure to close is no error of the call."""
    with contextlib.suppress(Exception):
        client.close()


def _batches(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]


def _repository_info(r: dict[str, Any]) -> RepositoryInfo:
    filters = tuple(
        str(f.get("filter", "")) for f in r.get("imageTagMutabilityExclusionFilters") or []
    )
    return RepositoryInfo(r["repositoryName"], r.get("imageTagMutability", "MUTABLE"), filters)


def _image(d: dict[str, Any]) -> ImageDetail:
    return ImageDetail(
        digest=d["imageDigest"],
        tags=tuple(d.get("imageTags") or ()),
        media_type=d.get("imageManifestMediaType"),
        image_size_bytes=d.get("imageSizeInBytes"),
    )
