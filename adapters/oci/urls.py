"""Where things are on a registry (``/v2/...`` URLs) and which token scope each needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urljoin

from adapters.oci.errors import RequestRejected
from registry.oci.reference import is_valid_name, is_valid_tag

__all__ = ["Endpoint", "next_link", "normalize_base_url"]

_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_LINK_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")


def normalize_base_url(base_url: str) -> str:
    """``host[:port]`` becomes ``https://host[:port]``; trailing slashes and ``/v2`` go."""
    url = base_url.strip()
    if "://" not in url:
        url = "https://" + url
    url = url.rstrip("/")
    return url[: -len("/v2")] if url.endswith("/v2") else url


def is_digest(reference: str) -> bool:
    return _DIGEST_RE.match(reference) is not None


def next_link(link_headers: list[str], current_url: str) -> str | None:
    """The absolute URL of a ``Link: <...>; rel="next"`` header, if any."""
    for header in link_headers:
        for target, params in _LINK_RE.findall(header):
            rels = re.findall(r'rel\s*=\s*"?([^";]+)"?', params)
            if any("next" in rel.split() for rel in rels):
                return urljoin(current_url, target)
    return None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """URL builder for one registry; validates names and references before they go out."""

    base_url: str

    def v2(self) -> str:
        return f"{self.base_url}/v2/"

    def catalog(self, page_size: int) -> str:
        return f"{self.base_url}/v2/_catalog?n={page_size}"

    def tags(self, repo: str, page_size: int) -> str:
        return f"{self.base_url}/v2/{_name(repo)}/tags/list?n={page_size}"

    def manifest(self, repo: str, reference: str) -> str:
        return f"{self.base_url}/v2/{_name(repo)}/manifests/{_reference(reference)}"

    def blob(self, repo: str, digest: str) -> str:
        return f"{self.base_url}/v2/{_name(repo)}/blobs/{_digest(digest)}"

    def uploads(self, repo: str, **query: str) -> str:
        suffix = "?" + urlencode(query, safe=":/") if query else ""
        return f"{self.base_url}/v2/{_name(repo)}/blobs/uploads/{suffix}"

    def referrers(self, repo: str, digest: str, artifact_type: str | None) -> str:
        url = f"{self.base_url}/v2/{_name(repo)}/referrers/{_digest(digest)}"
        return url + ("?" + urlencode({"artifactType": artifact_type}) if artifact_type else "")

    @staticmethod
    def with_query(url: str, **query: str) -> str:
        """``url`` plus parameters, keeping its own query (upload ``_state``) byte for byte."""
        return url + ("&" if "?" in url else "?") + urlencode(query, safe=":")

    @staticmethod
    def resolve(current_url: str, location: str | None) -> str:
        if not location:
            return current_url
        return urljoin(current_url, location)


def pull(repo: str) -> str:
    return f"repository:{repo}:pull"


def push(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def delete(repo: str) -> str:
    return f"repository:{repo}:delete"


CATALOG_SCOPE = "registry:catalog:*"


def _name(repo: str) -> str:
    if not is_valid_name(repo):
        raise RequestRejected(f"{repo[:300]!r} is not a valid repository name")
    return repo


def _digest(digest: str) -> str:
    if not is_digest(digest):
        raise RequestRejected(f"{digest[:200]!r} is not a digest (algorithm:hex)")
    return digest


def _reference(reference: str) -> str:
    if not (is_valid_tag(reference) or is_digest(reference)):
        raise RequestRejected(f"{reference[:200]!r} is neither a tag nor a digest")
    return quote(reference, safe=":")
