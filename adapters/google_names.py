"""Where Google's registries are and what they can hold: hosts, locations, project and
repository names. Pure functions, no I/O; every refusal is an :class:`InvalidEndpoint` or an
:class:`InvalidRepositoryName` that says what to give instead.

Artifact Registry (``google-gar``)::

    https://LOCATION-docker.pkg.dev       LOCATION: us, europe, asia or a region (us-central1)
    names PROJECT/REPOSITORY/IMAGE[/...]  REPOSITORY: an Artifact Registry repository (must exist)

Container Registry hosts (``google-gcr``, today served by Artifact Registry ``gcr.io``
repositories)::

    https://gcr.io  https://us.gcr.io  https://eu.gcr.io  https://asia.gcr.io
    names PROJECT/IMAGE[/...]

Any other host is a test data plane (a local registry standing in for Google's): for
``google-gar`` its location is then given as an option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from adapters.base import InvalidEndpoint, InvalidRepositoryName

__all__ = [
    "DEFAULT_API_ENDPOINT",
    "GCR_HOSTS",
    "LOCATION_PATTERN",
    "RegistryHost",
    "check_api_endpoint",
    "check_gar_name",
    "check_gcr_name",
    "check_location",
    "gar_host",
    "gcr_host",
    "split_gar_name",
]

DEFAULT_API_ENDPOINT = "https://artifactregistry.googleapis.com"
GCR_HOSTS = ("gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io")
_GAR_SUFFIX = "-docker.pkg.dev"
_GOOGLE_SUFFIXES = (".pkg.dev", "gcr.io", ".googleapis.com", ".google.com")

#: Artifact Registry locations: the multi-regions and ``<area>-<direction><n>`` regions.
LOCATION_PATTERN = (
    r"(?:us|europe|asia)"
    r"|(?:africa|asia|australia|europe|me|northamerica|southamerica|us)-[a-z]+[1-9][0-9]?"
)
_LOCATION_RE = re.compile(LOCATION_PATTERN)
# Project IDs: 6-30 of [a-z0-9-], starting with a letter, not ending with a hyphen.
_PROJECT_RE = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
# Artifact Registry repository IDs: a letter, then [a-z0-9-], not ending with a hyphen.
_REPOSITORY_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """An endpoint URL taken apart: ``google`` False for a test data plane."""

    host: str  # host[:port], lower case
    google: bool
    location: str = ""  # google-gar on a pkg.dev host: the host's location


def _split(url: str, adapter_type: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of a registry root URL; refuses paths, queries, userinfo."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise InvalidEndpoint(f"{adapter_type} endpoint URL {url[:200]!r}: {e}") from None
    if not parts.hostname or parts.username or parts.password:
        raise InvalidEndpoint(
            f"{adapter_type} endpoint URL {url[:200]!r}: give https://HOST without a login"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"{adapter_type} endpoint URL {url[:200]!r}: give the registry's root "
            "(https://HOST); the project and repository belong in repository names"
        )
    host = parts.hostname.lower() + (f":{port}" if port else "")
    return parts.scheme.lower(), host


def _is_google(host: str) -> bool:
    name = host.split(":")[0]
    return any(name == s.lstrip(".") or name.endswith(s) for s in _GOOGLE_SUFFIXES)


def check_location(location: str, adapter_type: str) -> str:
    """``location`` if it is an Artifact Registry location, else a clear refusal."""
    if not _LOCATION_RE.fullmatch(location):
        raise InvalidEndpoint(
            f"{adapter_type}: {location[:100]!r} is not an Artifact Registry location: use a "
            "multi-region (us, europe, asia) or a region such as us-central1 or europe-west1"
        )
    return location


def gar_host(url: str, location_option: str = "") -> RegistryHost:
    """The ``google-gar`` endpoint URL checked: ``https://LOCATION-docker.pkg.dev`` (its
    location must agree with ``location_option`` when both are given), or a test data plane
    with ``location_option`` given."""
    kind = "google-gar"
    scheme, host = _split(url, kind)
    name = host.split(":")[0]
    if name.endswith(_GAR_SUFFIX) and ":" not in host:
        if scheme != "https":
            raise InvalidEndpoint(f"{kind}: Artifact Registry is reached over https://{host}")
        location = check_location(name[: -len(_GAR_SUFFIX)], kind)
        if location_option and location_option != location:
            raise InvalidEndpoint(
                f"{kind}: the URL's location {location!r} and --location {location_option!r} "
                "disagree: leave --location out or make them the same"
            )
        return RegistryHost(host, True, location)
    if name.endswith("gcr.io"):
        raise InvalidEndpoint(f"{kind}: {host} is a Container Registry host: use type google-gcr")
    if _is_google(host):
        raise InvalidEndpoint(
            f"{kind}: {host!r} is not an Artifact Registry Docker host: use "
            "https://LOCATION-docker.pkg.dev (e.g. https://us-central1-docker.pkg.dev)"
        )
    if not location_option:
        raise InvalidEndpoint(
            f"{kind}: {host} is not LOCATION-docker.pkg.dev, so give --location (the "
            "Artifact Registry location its repositories are in, e.g. us-central1)"
        )
    return RegistryHost(host, False, check_location(location_option, kind))


def gcr_host(url: str) -> RegistryHost:
    """The ``google-gcr`` endpoint URL checked: one of :data:`GCR_HOSTS` over https, or a
    test data plane."""
    kind = "google-gcr"
    scheme, host = _split(url, kind)
    if host in GCR_HOSTS:
        if scheme != "https":
            raise InvalidEndpoint(f"{kind}: Container Registry is reached over https://{host}")
        return RegistryHost(host, True)
    if host.split(":")[0].endswith(".pkg.dev"):
        raise InvalidEndpoint(f"{kind}: {host} is an Artifact Registry host: use type google-gar")
    if _is_google(host):
        hosts = ", ".join(f"https://{h}" for h in GCR_HOSTS)
        raise InvalidEndpoint(f"{kind}: {host!r} is not a Container Registry host: use {hosts}")
    return RegistryHost(host, False)


def check_api_endpoint(url: str, adapter_type: str) -> str:
    """The Artifact Registry API's base URL (``https://artifactregistry.googleapis.com``, or a
    test stand-in), without a trailing slash."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises for a bad port
    except ValueError as e:
        raise InvalidEndpoint(f"{adapter_type} --api-endpoint {url[:200]!r}: {e}") from None
    ok = parts.scheme in ("http", "https") and parts.hostname and not parts.username
    if not ok or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"{adapter_type} --api-endpoint {url[:200]!r}: give a URL such as "
            f"{DEFAULT_API_ENDPOINT}"
        )
    if _is_google(parts.netloc.lower()) and parts.scheme != "https":
        raise InvalidEndpoint(f"{adapter_type} --api-endpoint: Google's API is reached over https")
    return url.strip().rstrip("/")


def _check_project(project: str, name: str) -> None:
    if not _PROJECT_RE.fullmatch(project):
        raise InvalidRepositoryName(
            f"repository name {name!r}: {project!r} is not a Google Cloud project ID (6-30 "
            "lowercase letters, digits and hyphens, starting with a letter); domain-scoped "
            "projects (example.com:project) are not supported"
        )


def check_gar_name(name: str) -> None:
    """Refuse what Artifact Registry cannot hold beyond the OCI grammar and depth (checked by
    the caller): the project ID and the repository ID of ``PROJECT/REPOSITORY/IMAGE``."""
    project, repository, _ = name.split("/", 2)
    _check_project(project, name)
    if not _REPOSITORY_RE.fullmatch(repository):
        raise InvalidRepositoryName(
            f"repository name {name!r}: {repository!r} is not an Artifact Registry repository "
            "ID (a lowercase letter, then lowercase letters, digits and hyphens, at most 63, "
            "not ending with a hyphen)"
        )


def check_gcr_name(name: str) -> None:
    """Refuse a ``PROJECT/IMAGE`` whose project is not a project ID."""
    _check_project(name.split("/", 1)[0], name)


def split_gar_name(name: str) -> tuple[str, str, str]:
    """``(project, repository, image path)`` of ``PROJECT/REPOSITORY/IMAGE[/...]``."""
    project, repository, image = name.split("/", 2)
    return project, repository, image
