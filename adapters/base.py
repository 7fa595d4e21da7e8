"""The registry adapter contract: what a kind of registry (a *type*) can do, as data, and how to
reach one registry of that type through the one OCI client.

An adapter is a small class: a type name, a description, :class:`Capabilities`, the provider's
own settings (:class:`AdapterOption`) and, only where the provider needs them, overrides of the
hooks below (credentials that expire, namespace creation, name rules, listings, probes). The
engine holds the adapter: it checks and prepares each destination repository through it, plans
from its :meth:`~RegistryAdapter.current_capabilities`, lists through it, and moves bytes through
its :meth:`~RegistryAdapter.client` (an :class:`~adapters.oci.client.OciClient` for every HTTP
registry; any :class:`~adapters.protocol.RegistryClient` for one that is not).

A new provider is one module with one subclass, one entry point in the ``seawall.adapters``
group and one test module that subclasses :class:`adapters.testing.AdapterConformance`.

Error tree::

    AdapterError                anything an adapter refuses before talking to a registry
    ├── InvalidRepositoryName   the name breaks the OCI grammar or the type's path-depth rules
    ├── InvalidEndpoint         the endpoint's URL, options or credentials cannot work
    └── AdapterUnavailable      the adapter cannot work here (missing dependency, bad plugin)

What the registry itself answers is :mod:`adapters.oci.errors`.
"""

from __future__ import annotations

import copy
import os
import re
import stat
import time
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import anyio

from adapters.oci.client import OciClient
from adapters.oci.credentials import CredentialProvider
from adapters.oci.errors import OciError
from adapters.oci.types import ManifestRef
from adapters.protocol import CatalogListings
from registry.oci.reference import MAX_NAME_LENGTH, is_valid_name

__all__ = [
    "CREDENTIALS_DIR_ENV",
    "TRIGGERS",
    "AdapterError",
    "AdapterOption",
    "AdapterUnavailable",
    "Capabilities",
    "EndpointConfig",
    "InvalidEndpoint",
    "InvalidRepositoryName",
    "RegistryAdapter",
    "check_credential_file",
    "check_declared",
    "check_option_url",
]

TRIGGERS = ("manual", "scheduled", "event_based")  # Harbor's trigger type names
_INPUT_FILTERS: tuple[dict[str, Any], ...] = (
    {"type": "name", "style": "input"},
    {"type": "tag", "style": "input"},
)


class AdapterError(Exception):
    """An adapter refused something before any request was sent."""


class InvalidRepositoryName(AdapterError, ValueError):
    """A repository name the registry type cannot hold; the message says which rule and why."""


class InvalidEndpoint(AdapterError, ValueError):
    """The endpoint's URL, options or credentials cannot work for this type (checked before
    anything is sent); the message says which and what to give instead."""


class AdapterUnavailable(AdapterError, ImportError):
    """The adapter cannot be used in this installation; the message says how to fix it."""


_OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_OPTION_CHARS = 4096
MAX_CREDENTIAL_FILE_BYTES = 1 << 20
#: The directory (set by the operator on the server) that file options may name: an endpoint's
#: settings come from API callers, and a credential file is read and its contents sent to a
#: provider, so no other file of the host may be named.
CREDENTIALS_DIR_ENV = "SEAWALL_CREDENTIALS_DIR"
_OPTION_KINDS = ("text", "file", "url")


def _inferred_kind(name: str) -> str:
    if name.endswith(("_file", "_path")):
        return "file"
    if name.endswith(("_host", "_endpoint", "_url")):
        return "url"
    return "text"


def check_credential_file(path: str, flag: str) -> None:
    """A file option's value: an absolute path of a regular file of at most 1 MiB inside
    ``$SEAWALL_CREDENTIALS_DIR`` (symlinks resolved). Reads no content.

    :raises InvalidEndpoint: it is none of that; the message says what the operator does.
    """
    root = os.environ.get(CREDENTIALS_DIR_ENV, "")
    if not root:
        raise InvalidEndpoint(
            f"{flag} names a file on the server: the operator must first set "
            f"{CREDENTIALS_DIR_ENV} to the directory of credential files Seawall may read"
        )
    if not os.path.isabs(path):
        raise InvalidEndpoint(f"{flag} {path[:200]!r}: give an absolute path")
    real, base = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([real, base]) != base:
        raise InvalidEndpoint(f"{flag} {path[:200]!r} is not inside {CREDENTIALS_DIR_ENV} ({root})")
    try:
        info = os.stat(real)
    except OSError as e:
        raise InvalidEndpoint(f"{flag} {path[:200]!r}: {e.strerror or e}") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CREDENTIAL_FILE_BYTES:
        raise InvalidEndpoint(f"{flag} {path[:200]!r}: not a regular file of at most 1 MiB")


def check_option_url(value: str, flag: str) -> None:
    """A url option's value: ``http(s)://host[:port][/path]``, no credentials, printable.

    :raises InvalidEndpoint: otherwise.
    """
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        raise InvalidEndpoint(f"{flag} {value[:200]!r} is not a URL: {e}") from None
    printable = all(33 <= ord(c) < 127 for c in value)
    if parts.scheme not in ("http", "https") or not parts.hostname or not printable:
        raise InvalidEndpoint(f"{flag} {value[:200]!r}: give an http(s)://host URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint(f"{flag} must not hold credentials")


@dataclass(frozen=True, kw_only=True, slots=True)
class AdapterOption:
    """One provider setting of an endpoint (``region``, ``role_arn``, ``location``, …).

    Stored with the endpoint (API field ``options``), given on the CLI as ``--<name>`` with
    ``_`` written ``-``. Values are strings; :attr:`choices` and :attr:`pattern` bound them, and
    :meth:`RegistryAdapter.check_config` checks the rest, before anything is sent.
    """

    name: str
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # a full-match regular expression the value must meet
    example: str = ""
    #: "text"; "file": a credential file on the server (see :func:`check_credential_file`);
    #: "url": where the endpoint's secrets or tokens are sent (changing it needs the secret
    #: again, as the URL does). "" = by name: ``*_file``/``*_path`` files, ``*_host``,
    #: ``*_endpoint``, ``*_url`` URLs, else text.
    kind: str = ""

    def __post_init__(self) -> None:
        if not _OPTION_NAME.match(self.name):
            raise ValueError(f"option name {self.name!r}: use [a-z][a-z0-9_]*")
        if self.kind not in ("", *_OPTION_KINDS):
            raise ValueError(f"option kind {self.kind!r}: use one of {_OPTION_KINDS}")

    @property
    def effective_kind(self) -> str:
        return self.kind or _inferred_kind(self.name)

    def check(self, value: str, adapter_type: str) -> None:
        """:raises InvalidEndpoint: the value breaks :attr:`choices` or :attr:`pattern`."""
        flag = "--" + self.name.replace("_", "-")
        if len(value) > MAX_OPTION_CHARS:
            raise InvalidEndpoint(f"{adapter_type} {flag}: longer than {MAX_OPTION_CHARS} chars")
        if self.choices and value not in self.choices:
            raise InvalidEndpoint(
                f"{adapter_type} {flag} {value[:100]!r}: use one of {', '.join(self.choices)}"
            )
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            hint = f" (e.g. {self.example})" if self.example else ""
            raise InvalidEndpoint(f"{adapter_type} {flag} {value[:100]!r} is not valid{hint}")
        if self.effective_kind == "file":
            check_credential_file(value, f"{adapter_type} {flag}")
        elif self.effective_kind == "url":
            check_option_url(value, f"{adapter_type} {flag}")

    def describe(self) -> dict[str, Any]:
        """The option as data (``GET /replication/adapterinfos``)."""
        out: dict[str, Any] = {
            "name": self.name,
            "help": self.help,
            "required": self.required,
            "kind": self.effective_kind,
        }
        if self.choices:
            out["choices"] = list(self.choices)
        if self.example:
            out["example"] = self.example
        return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    """What a registry type offers. Declared per adapter class; the conformance suite checks
    each declaration against a real registry of the type.

    A boolean is a promise both ways: True means the operation works (callers may rely on it),
    False means the registry refuses it (callers take the fallback without trying). Where a
    capability varies between registries of one type, the adapter lists it in
    :attr:`RegistryAdapter.probed`: the declared value is then the conservative default and
    :meth:`RegistryAdapter.current_capabilities` has the measured one.
    """

    catalog: bool  # catalog_listings() finds repositories (GET /v2/_catalog or the provider's API)
    referrers_api: bool  # GET /v2/<name>/referrers/<digest> (OCI 1.1); else the tag schema
    blob_mount: bool  # POST ...?mount=&from= links an existing blob (201)
    chunked_upload: bool  # PATCH uploads in several chunks (Harbor's copy_by_chunk)
    delete_tag: bool  # DELETE /v2/<name>/manifests/<tag> removes just the tag
    delete_manifest: bool  # DELETE /v2/<name>/manifests/<digest>
    create_namespace: bool  # prepare_repository() creates what a push needs (project, repo)
    min_path_components: int = 1  # Docker Hub: exactly 2; Harbor: at least 2
    max_path_components: int | None = None  # None: no limit beyond the OCI grammar
    monolithic_max_bytes: int | None = None  # larger blobs go chunked (ACR 413s over ~20 MB)
    requests_per_second: float | None = None  # client-side pacing (Docker Hub, Quay)
    max_in_flight: int = 16  # concurrent requests to the registry

    def __post_init__(self) -> None:
        if self.min_path_components < 1:
            raise ValueError("min_path_components must be at least 1")
        top = self.max_path_components
        if top is not None and top < self.min_path_components:
            raise ValueError("max_path_components must not be below min_path_components")
        if self.monolithic_max_bytes is not None and self.monolithic_max_bytes < 1:
            raise ValueError("monolithic_max_bytes must be positive")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Where a registry is and how to log in. Secrets are left out of ``repr``."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)  # a bearer token instead of a login
    insecure: bool = False  # skip TLS verification (test registries only)
    ca_file: str | None = None  # PEM bundle to trust for this registry
    #: the provider's settings, sorted ``(name, value)`` pairs (hashable: configs key caches)
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.options, Mapping):
            object.__setattr__(self, "options", tuple(sorted(self.options.items())))

    def option(self, name: str, default: str = "") -> str:
        """The value of option ``name`` (``default`` when not set or empty)."""
        for key, value in self.options:
            if key == name:
                return value or default
        return default

    @classmethod
    def from_harbor_credential(
        cls,
        url: str,
        *,
        credential_type: str,
        access_key: str,
        access_secret: str,
        insecure: bool = False,
        ca_file: str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> EndpointConfig:
        """From Harbor's ``credential``: ``basic`` is a login; ``oauth`` with an empty
        ``access_key`` is a bearer token; an empty ``access_key`` and secret is anonymous."""
        if credential_type not in ("basic", "oauth"):
            raise AdapterError(f"credential type {credential_type!r}: use basic or oauth")
        opts = tuple(sorted((options or {}).items()))
        if credential_type == "oauth" and not access_key:
            return cls(
                url, token=access_secret or None, insecure=insecure, ca_file=ca_file, options=opts
            )
        return cls(
            url,
            username=access_key or None,
            password=access_secret or None,
            insecure=insecure,
            ca_file=ca_file,
            options=opts,
        )


class RegistryAdapter(ABC):
    """One registry of one type. Subclasses set :attr:`type`, :attr:`description` and
    :attr:`capabilities`, and override hooks only where the provider differs.

    Lifecycle: construct anywhere (nothing is opened), use, then ``await close()`` (or
    ``async with``). The client belongs to the event loop that first uses it.

    :param config: the registry's URL and credentials.
    :param client_options: extra :class:`OciClient` keyword arguments (timeouts, retries, a
        test ``transport``); they win over what the capabilities configure.
    """

    type: ClassVar[str]  # Harbor's type name: "docker-registry", "harbor", "aws-ecr", ...
    description: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities]
    # capabilities measured per registry; each by ``async def probe_<name>(self, repository)``
    probed: ClassVar[frozenset[str]] = frozenset()
    probe_ttl_seconds: ClassVar[float] = 3600.0  # how long a probe's answer is trusted
    probe_repository: ClassVar[str] = "seawall/capability-probe"  # default probe target
    health_timeout_seconds: ClassVar[float] = 10.0
    # event_based: the remote calls POST /api/v2.0/registries/{id}/webhook on its pushes
    supported_triggers: ClassVar[tuple[str, ...]] = TRIGGERS
    supported_resource_filters: ClassVar[tuple[dict[str, Any], ...]] = _INPUT_FILTERS
    endpoint_pattern: ClassVar[dict[str, Any] | None] = None  # Harbor's, for fixed-URL clouds
    credential_pattern: ClassVar[dict[str, Any] | None] = None
    #: the provider's own settings (``EndpointConfig.options``); unknown names are refused
    options_spec: ClassVar[tuple[AdapterOption, ...]] = ()
    #: URL schemes the type takes (``oci-layout``: ``file``)
    url_schemes: ClassVar[tuple[str, ...]] = ("http", "https")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = {f.name for f in fields(Capabilities)}
        for name in cls.probed:
            if name not in names or not callable(getattr(cls, f"probe_{name}", None)):
                raise TypeError(f"{cls.__name__}.probed names {name!r}: needs probe_{name}()")

    def __init__(self, config: EndpointConfig, **client_options: Any) -> None:
        check_declared(type(self))
        self.check_config(config)
        self.config = config
        self._client_options = client_options
        self._client: OciClient | None = None
        self._probes: dict[str, tuple[bool, float]] = {}  # name -> (answer, monotonic expiry)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.url!r})"

    @classmethod  # noqa: B027 - a hook: empty means always available
    def check_available(cls) -> None:
        """Raise :class:`AdapterUnavailable` (saying how to fix it) if this adapter cannot
        work in this installation, e.g. an optional SDK is missing. Default: always works."""

    @classmethod
    def secret_targets(cls, config: EndpointConfig) -> tuple[str, ...]:
        """Every URL the endpoint's credentials (or tokens minted from them) may be sent to:
        its URL and its url options. Changing any of them needs the secret again."""
        urls = [v for k, v in config.options if v and cls._kind_of(k) == "url"]
        return (config.url, *sorted(urls))

    @classmethod
    def _kind_of(cls, name: str) -> str:
        for option in cls.options_spec:
            if option.name == name:
                return option.effective_kind
        return "text"

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """Refuse an endpoint that cannot work, before anything is sent: the URL's scheme,
        unknown or missing options, values outside their choices or pattern. Subclasses
        extend it with the provider's rules (call ``super()`` first). No I/O.

        :raises InvalidEndpoint: says what is wrong and what to give instead.
        """
        scheme = config.url.partition("://")[0].lower() if "://" in config.url else ""
        if scheme not in cls.url_schemes:
            want = " or ".join(f"{s}://" for s in cls.url_schemes)
            raise InvalidEndpoint(f"{cls.type} endpoint URL {config.url[:200]!r}: use {want}")
        known = {o.name: o for o in cls.options_spec}
        given = dict(config.options)
        for name, value in given.items():
            option = known.get(name)
            if option is None:
                names = ", ".join(sorted(known)) or "none"
                raise InvalidEndpoint(
                    f"{cls.type} endpoints have no option {name!r} (options: {names})"
                )
            if value:
                option.check(value, cls.type)
        for option in cls.options_spec:
            if option.required and not given.get(option.name):
                flag = "--" + option.name.replace("_", "-")
                raise InvalidEndpoint(f"{cls.type} endpoints need {flag}: {option.help}")

    # -- the client ------------------------------------------------------------------------

    def client_kwargs(self) -> dict[str, Any]:
        """:class:`OciClient` arguments: the endpoint config, then the capabilities' limits,
        then the constructor's ``client_options``. Override to change credentials."""
        caps, cfg = self.capabilities, self.config
        kwargs: dict[str, Any] = {
            "username": cfg.username,
            "password": cfg.password,
            "token": cfg.token,
            "insecure": cfg.insecure,
            "ca_file": cfg.ca_file,
            "max_in_flight": caps.max_in_flight,
            "requests_per_second": caps.requests_per_second,
        }
        if caps.monolithic_max_bytes is not None:
            kwargs["monolithic_max_bytes"] = caps.monolithic_max_bytes
            kwargs["chunk_bytes"] = min(64 << 20, caps.monolithic_max_bytes)
        provider = self.credential_provider()
        if provider is not None:
            kwargs["credential_provider"] = provider
        return kwargs | self._client_options

    def credential_provider(self) -> CredentialProvider | None:
        """Where credentials that expire come from (ECR's authorization token, ACR's AAD
        exchange, Google's access tokens): the client fetches them before the first request,
        before they expire and once after a 401. None (the default): the config's static
        login is used as it is."""
        return None

    def client(self) -> OciClient:
        """The one OCI client for this registry (created on first call, then the same one)."""
        if self._client is None:
            self._client = OciClient(self.registry_url(), **self.client_kwargs())
        return self._client

    def registry_url(self) -> str:
        """Where the registry API is; override where users give another URL (Docker Hub's
        ``hub.docker.com`` is served by ``registry-1.docker.io``)."""
        return self.config.url

    async def close(self) -> None:
        """Close the client; the adapter may be used again afterwards (a new client opens)."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- listings --------------------------------------------------------------------------

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """The repositories (only names starting with ``prefix`` are wanted) and, where the
        provider lists them in the same requests, each one's tags and the manifests they
        name (else None). Default: the registry's catalog (``GET /v2/_catalog``); providers
        with a listing API of their own (ECR, ACR, Artifact Registry) override it."""
        return await self.client().catalog_listings(prefix)

    async def list_tag_refs(self, repo: str) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags of ``repo`` and the manifests those it can (cheaply) resolve name: the engine
        sends a ``HEAD`` only for a tag missing from the mapping. Default: the registry's tag
        list; providers whose API lists digests with tags override it.

        :raises adapters.oci.errors.NotFound: no such repository.
        """
        return await self.client().list_tag_refs(repo)

    # -- names and namespaces --------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """Refuse a repository name this type cannot hold, before anything is pushed.

        :raises InvalidRepositoryName: the OCI grammar is broken, or the name has fewer than
            ``min_path_components`` or more than ``max_path_components`` components.
        """
        if not is_valid_name(name):
            raise InvalidRepositoryName(
                f"repository name {name[:300]!r} is not valid: use lowercase components of "
                f"[a-z0-9] joined by '.', '_', '__' or '-', separated by '/', at most "
                f"{MAX_NAME_LENGTH} characters"
            )
        depth = name.count("/") + 1
        low, high = self.capabilities.min_path_components, self.capabilities.max_path_components
        if depth < low or (high is not None and depth > high):
            want = f"at least {low}" if high is None else f"{low} to {high}"
            if high == low:
                want = f"exactly {low}"
            raise InvalidRepositoryName(
                f"repository name {name!r} has {depth} path component(s); {self.type} "
                f"registries need {want}: change the policy's destination namespace or "
                f"dest_namespace_replace_count"
            )

    async def prepare_repository(self, name: str) -> None:
        """Make the registry ready to receive a push to ``name`` (create a project or a
        repository where the provider needs it). Idempotent; called before the first push of
        each repository. Default: nothing to do.

        :raises InvalidRepositoryName: per :meth:`check_name`.
        :raises adapters.oci.errors.OciError: the registry refused.
        """
        self.check_name(name)

    # -- health, probes, info --------------------------------------------------------------

    async def health(self) -> tuple[bool, str]:
        """``(True, detail)`` if the registry answers ``GET /v2/`` with these credentials
        within :attr:`health_timeout_seconds`, else ``(False, what went wrong)``. Never
        raises for a registry failure."""
        try:
            with anyio.fail_after(self.health_timeout_seconds):
                result = await self.client().ping()
        except TimeoutError:
            return False, f"no answer from {self.config.url} within {self.health_timeout_seconds}s"
        except OciError as e:
            return False, str(e)[:500]
        return True, f"HTTP {result.status}, auth {result.auth_scheme or 'none'}"

    async def probe_referrers_api(self, repository: str | None = None) -> bool:
        """Whether the registry answers the OCI 1.1 referrers API, asked once per
        :attr:`probe_ttl_seconds`. Without ``referrers_api`` in :attr:`probed` the declared
        value is the answer (no request). Probe a repository that exists and is readable:
        some registries answer 404 for an unknown repository.

        :raises adapters.oci.errors.OciError: the registry failed in a way that says nothing
            about the API (401, 403, 5xx): the answer is not cached.
        """
        if "referrers_api" not in self.probed:
            return self.capabilities.referrers_api
        now = time.monotonic()
        cached = self._probes.get("referrers_api")
        if cached is not None and cached[1] > now:
            return cached[0]
        zero = "sha256:" + "0" * 64
        found = await self.client().referrers(repository or self.probe_repository, zero)
        self._probes["referrers_api"] = (found is not None, now + self.probe_ttl_seconds)
        return found is not None

    async def current_capabilities(self, repository: str | None = None) -> Capabilities:
        """The declared capabilities with every :attr:`probed` one measured (cached)."""
        measured = {n: await getattr(self, f"probe_{n}")(repository) for n in self.probed}
        return replace(self.capabilities, **measured)

    @classmethod
    def info(cls) -> dict[str, Any]:
        """Harbor's ``RegistryInfo`` for this type (``GET /registries/{id}/info``), plus
        ``endpoint_pattern``/``credential_pattern`` when set. Callable on the class."""
        out: dict[str, Any] = {
            "type": cls.type,
            "description": cls.description,
            "supported_resource_filters": [dict(f) for f in cls.supported_resource_filters],
            "supported_triggers": list(cls.supported_triggers),
            "supported_copy_by_chunk": cls.capabilities.chunked_upload,
        }
        if cls.endpoint_pattern is not None:
            out["endpoint_pattern"] = copy.deepcopy(cls.endpoint_pattern)
        if cls.credential_pattern is not None:
            out["credential_pattern"] = copy.deepcopy(cls.credential_pattern)
        if cls.options_spec:
            out["options"] = [o.describe() for o in cls.options_spec]
        return out


def check_declared(cls: type[RegistryAdapter]) -> None:
    """Refuse a class that is not a complete adapter (no type name or no capabilities)."""
    if not isinstance(cls, type) or not issubclass(cls, RegistryAdapter):
        raise TypeError(f"{cls!r} is not a RegistryAdapter subclass")
    if not isinstance(getattr(cls, "type", None), str) or not cls.type:
        raise TypeError(f"{cls.__qualname__} sets no type name (class attribute 'type')")
    if not isinstance(getattr(cls, "capabilities", None), Capabilities):
        raise TypeError(f"{cls.__qualname__} declares no Capabilities ('capabilities')")
