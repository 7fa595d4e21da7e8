"""The settings of a ``docker-hub`` endpoint, parsed and checked before anything is sent.

An endpoint is Docker Hub's registry, ``https://registry-1.docker.io``; what users type for
the same registry (``https://docker.io``, ``https://index.docker.io``,
``https://registry.hub.docker.com``, ``https://hub.docker.com``) means it too. Any other
``http(s)://host[:port]`` is a stand-in of Hub (a test fake) and then needs ``--hub-url``: the
Hub API is where the login is sent, and Seawall never sends it to a host it has to guess.

Logins: a Docker ID and its password or, better, a personal access token (PAT) or an
organization access token; none for anonymous pulls of public repositories.

Names (:func:`check_hub_name`): a Hub repository is ``NAMESPACE/REPOSITORY``, exactly two
components; a one-component name read from Hub (``alpine``) is the official image
``library/alpine`` (:func:`hub_repository`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName
from registry.oci.reference import MAX_NAME_LENGTH, is_valid_name

__all__ = [
    "DEFAULT_HUB_URL",
    "DEFAULT_RATE_LIMIT_FLOOR",
    "DEFAULT_REGISTRY_URL",
    "HUB_REGISTRY_HOSTS",
    "NAMESPACES_PATTERN",
    "TAG_LISTINGS",
    "HubSettings",
    "check_hub_name",
    "hub_repository",
    "parse_settings",
]

DEFAULT_REGISTRY_URL = "https://registry-1.docker.io"
DEFAULT_HUB_URL = "https://hub.docker.com"
DEFAULT_RATE_LIMIT_FLOOR = 5
#: ``--tag-listing``: the registry's tag list and a HEAD per tag, or the Hub API's (digests)
TAG_LISTINGS = ("registry", "hub-api")
#: hosts users give for Docker Hub's registry; all are served by registry-1.docker.io
HUB_REGISTRY_HOSTS = frozenset(
    {
        "registry-1.docker.io",
        "docker.io",
        "index.docker.io",
        "registry.hub.docker.com",
        "hub.docker.com",
    }
)
_NAMESPACE = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
NAMESPACES_PATTERN = rf"{_NAMESPACE}(?:,{_NAMESPACE})*"
_NAMESPACE_RE = re.compile(rf"^{_NAMESPACE}$")
_MAX_COMPONENT = 255


@dataclass(frozen=True, slots=True)
class HubSettings:
    """One endpoint, resolved: where the registry and the Hub API are, who logs in, which
    namespaces discovery lists, and the pull budget kept in reserve."""

    registry_url: str
    hub_url: str
    username: str | None
    password: str | None = field(repr=False)
    namespaces: tuple[str, ...]  # --namespaces; empty: the login's and the filter's
    rate_limit_floor: int  # manifest GETs are refused while the budget is at or below it
    tag_listing: str = "registry"  # one of TAG_LISTINGS

    @property
    def anonymous(self) -> bool:
        return self.username is None


def parse_settings(config: EndpointConfig) -> HubSettings:
    """The endpoint's settings, or :class:`InvalidEndpoint` saying what to fix. No I/O."""
    registry_url, is_hub = _registry_url(config.url)
    hub_url = config.option("hub_url").rstrip("/")
    if not hub_url:
        if not is_hub:
            raise InvalidEndpoint(
                f"docker-hub endpoint URL {config.url[:200]!r} is not Docker Hub "
                f"({DEFAULT_REGISTRY_URL}): give --hub-url, the Hub API of that stand-in, or "
                "use the docker-registry type for another registry"
            )
        hub_url = DEFAULT_HUB_URL
    if config.token:
        raise InvalidEndpoint(
            "docker-hub takes no bearer token: give your Docker ID as access_key and a "
            "personal access token (or password) as access_secret"
        )
    if config.password and not config.username:
        raise InvalidEndpoint(
            "docker-hub: a password without a username: give the Docker ID (or organization "
            "name, for an organization access token) as access_key"
        )
    if config.username and not config.password:
        raise InvalidEndpoint(
            f"docker-hub: {config.username[:100]!r} needs a personal access token (or "
            "password) as access_secret; leave both empty for anonymous pulls"
        )
    return HubSettings(
        registry_url=registry_url,
        hub_url=hub_url,
        username=config.username or None,
        password=config.password or None,
        namespaces=_namespaces(config.option("namespaces")),
        rate_limit_floor=_floor(config.option("rate_limit_floor")),
        tag_listing=config.option("tag_listing", "registry"),
    )


def _registry_url(url: str) -> tuple[str, bool]:
    """``(the registry's base URL, whether it is Docker Hub's)``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidEndpoint(f"docker-hub endpoint URL {url[:200]!r} is not valid: {e}") from None
    host = (parts.hostname or "").lower()
    if not host or parts.path not in ("", "/", "/v2", "/v2/") or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"docker-hub endpoint URL {url[:200]!r}: give the registry only, "
            f"{DEFAULT_REGISTRY_URL} (no path: repositories are chosen by the policy)"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint("docker-hub endpoint URL must not hold credentials")
    if host not in HUB_REGISTRY_HOSTS:
        return f"{parts.scheme}://{parts.netloc}", False
    if parts.scheme != "https" or port not in (None, 443):
        raise InvalidEndpoint(
            f"docker-hub endpoint URL {url[:200]!r}: Docker Hub serves https on port 443 "
            f"only; use {DEFAULT_REGISTRY_URL}"
        )
    return DEFAULT_REGISTRY_URL, True


def _namespaces(value: str) -> tuple[str, ...]:
    if not value:
        return ()
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",")))
    for name in names:
        if not _NAMESPACE_RE.match(name) or len(name) > _MAX_COMPONENT:
            raise InvalidEndpoint(
                f"docker-hub --namespaces {value[:200]!r}: {name[:100]!r} is not a Docker ID "
                "or organization name (lowercase letters and digits, comma-separated: "
                "myorg,myuser)"
            )
    return names


def _floor(value: str) -> int:
    if not value:
        return DEFAULT_RATE_LIMIT_FLOOR
    if not value.isdigit() or len(value) > 6:
        raise InvalidEndpoint(
            f"docker-hub --rate-limit-floor {value[:100]!r}: give a whole number of pulls "
            f"to keep in reserve (default {DEFAULT_RATE_LIMIT_FLOOR}; 0 spends them all)"
        )
    return int(value)


def hub_repository(name: str) -> str:
    """The Hub repository a name read from Hub means: ``alpine`` is ``library/alpine`` (an
    official image); names with a namespace are themselves."""
    return name if "/" in name else f"library/{name}"


def check_hub_name(name: str) -> None:
    """Refuse a name a push to Docker Hub cannot have (before anything is sent).

    :raises InvalidRepositoryName: not the OCI grammar; not exactly ``NAMESPACE/REPOSITORY``
        (the message says how to map the policy's names); the official ``library``
        namespace (Docker's own); a component Hub does not take.
    """
    if not is_valid_name(name):
        raise InvalidRepositoryName(
            f"repository name {name[:300]!r} is not valid: use lowercase components of "
            f"[a-z0-9] joined by '.', '_', '__' or '-', separated by '/', at most "
            f"{MAX_NAME_LENGTH} characters"
        )
    parts = name.split("/")
    if len(parts) != 2:
        example = f"myorg/{parts[-1]}"
        raise InvalidRepositoryName(
            f"repository name {name!r} has {len(parts)} path component(s); Docker Hub "
            "repositories are exactly NAMESPACE/REPOSITORY: set the policy's destination "
            "namespace to your Docker ID or organization and dest_namespace_replace_count so "
            f"that only the last component remains (e.g. {name!r} -> {example!r} with "
            f"namespace myorg and replace count {max(len(parts) - 1, 0)})"
        )
    namespace, repository = parts
    if namespace == "library":
        raise InvalidRepositoryName(
            f"repository name {name!r}: library/ is Docker's official images, which no "
            "account can push to; set the policy's destination namespace to yours"
        )
    if not _NAMESPACE_RE.match(namespace) or "__" in namespace:
        raise InvalidRepositoryName(
            f"repository name {name!r}: the namespace {namespace!r} is not a Docker ID or "
            "organization name (lowercase letters and digits)"
        )
    if len(repository) < 2:
        raise InvalidRepositoryName(
            f"repository name {name!r}: Docker Hub repository names have at least 2 characters"
        )
