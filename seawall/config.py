"""Seawall's settings: defaults, then a TOML file, then ``SEAWALL_*`` environment variables, then
command-line flags — each later source overriding the earlier.

Every setting, its environment variable and its default are listed in ``docs/configuration.md``.
Nested settings use ``__`` in environment variables (``SEAWALL_AUTH__TOKEN_TTL_SECONDS=600``).
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "AuthSettings",
    "DrSettings",
    "GcSettings",
    "MetricsSettings",
    "ProxyCacheSettings",
    "ReadThroughSettings",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "load_settings",
]

ENV_PREFIX = "SEAWALL_"
SETTINGS_ENV = "SEAWALL_SETTINGS_JSON"  # how the launcher hands resolved settings to workers

#: ``SEAWALL_*`` variables that are not settings but are read elsewhere (the CLI's credentials,
#: adapters, the notifier, the tests): never reported as unknown settings
NOT_SETTINGS = frozenset(
    {
        "SEAWALL_CONFIG",
        SETTINGS_ENV,
        "SEAWALL_ADMIN_USER",
        "SEAWALL_USERNAME",
        "SEAWALL_PASSWORD",
        "SEAWALL_URL",
        "SEAWALL_SRC_CREDS",
        "SEAWALL_DEST_CREDS",
        "SEAWALL_CREDENTIALS_DIR",
        "SEAWALL_PG_BIN",
        "SEAWALL_TAG_LIST",
        "SEAWALL_CATALOG",
    }
)
NOT_SETTINGS_PREFIXES = ("SEAWALL_TEST_", "SEAWALL_NOTIFY_", "SEAWALL_BENCH_")


class SettingsError(ValueError):
    """A setting that cannot be used; the message is one line saying which and what to do."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Strict):
    # filesystem | s3 | azure | gcs, or a plugin's name (entry points "seawall.storage");
    # credentials, regions and endpoints come from each provider's standard sources
    driver: str = Field(default="filesystem", min_length=1)
    root: str | None = None  # filesystem: default <data_dir>/storage
    bucket: str | None = None  # s3, gcs
    container: str | None = None  # azure
    prefix: str = ""  # s3, azure, gcs: every key starts with it
    redirect: bool = False  # blob GETs answer 307 to a short-lived pre-signed URL
    redirect_seconds: int = Field(default=1200, ge=60, le=7 * 86_400)  # the URL's lifetime


class AuthSettings(_Strict):
    anonymous_pull: bool = False
    token_ttl_seconds: int = Field(default=300, ge=30, le=86_400)
    token_key: str | None = None  # default: generated once into <data_dir>/token.key
    service: str = "seawall"
    realm: str | None = None  # token endpoint URL; default: derived from the request's Host
    basic_on_registry: bool = True  # accept HTTP Basic on /v2/ too (else bearer tokens only)


class GcSettings(_Strict):
    # garbage collection (registry.storage.gc): a periodic run inside serve, one node per
    # interval (0: off; `seawall gc` runs one on demand), and the least age of what it removes
    interval_seconds: float = Field(default=0.0, ge=0)
    grace_seconds: float = Field(default=3600.0, ge=0)


class MetricsSettings(_Strict):
    # GET /metrics (Prometheus text format) without credentials; false: an administrator's
    # HTTP Basic credentials are required
    public: bool = False


class DrSettings(_Strict):
    # failover checks (engine.regions, `seawall dr check`): this Seawall's own region name; a
    # scheduled check this often (0: off), one node per firing; one region's check at most;
    # the replication lag past which REPLICATION_LAG alerts go out; the canary push → pull
    region_name: str = Field(default="local", min_length=1, max_length=63)
    check_interval_seconds: float = Field(default=0.0, ge=0)
    check_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    lag_alert_seconds: float = Field(default=300.0, gt=0)
    canary: bool = True
    # a deleted tag's tombstone (what stops another region bringing it back) is kept this
    # long: longer than any region may stay unreachable (docs/operations.md)
    tombstone_retention_seconds: float = Field(default=30 * 86400.0, ge=3600)

    @field_validator("region_name")
    @classmethod
    def _check_region_name(cls, value: str) -> str:
        from engine.regions.report import check_region_name

        return check_region_name(value)


class ReadThroughSettings(_Strict):
    # a pull of what this registry does not hold yet is fetched from another region
    # (seawall.read_through): verified, stored, single-flighted. On by default; it acts only
    # where there is somewhere to read from (the registries listed, else the regions)
    enabled: bool = True
    # registry endpoint names (`seawall registry add`) to read through, in order; empty: the
    # regions this Seawall knows (`seawall region add`). Env: comma-separated
    registries: list[str] = Field(default_factory=list)
    # one upstream call (a region's manifest GET or blob opening; the gap between two chunks)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_concurrent_fetches: int = Field(default=8, ge=1, le=256)

    @field_validator("registries", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value


class ProxyCacheSettings(_Strict):
    # proxy-cache namespaces (`seawall proxy-cache add`, docs/proxy-cache.md): on by default;
    # they act only once a namespace is added
    enabled: bool = True
    # one upstream call (a manifest GET or HEAD, a blob's opening; the gap between two chunks)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # a revalidation HEAD of a cached tag (the cached digest is served when it takes longer)
    revalidate_timeout_seconds: float = Field(default=3.0, gt=0, le=300)
    max_concurrent_fetches: int = Field(default=16, ge=1, le=256)


class Settings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    data_dir: str = "./seawall-data"
    # default: sqlite+aiosqlite:///<data_dir>/seawall.db; or postgresql://USER:PW@HOST:PORT/DB
    # (also postgres://, postgresql+asyncpg://) for several nodes sharing one database — see
    # "Several nodes on PostgreSQL" in docs/configuration.md
    database_url: str | None = None
    admin_password: str | None = None
    max_manifest_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    workers: int = Field(default=1, ge=1, le=64)
    # hot-read caches (manifests, blob links, accounts): how long another *worker's* change may
    # stay unseen on SQLite; on PostgreSQL other nodes' changes arrive by notification at once
    # and this is only the backstop. 0 disables the caches.
    cache_ttl_seconds: float = Field(default=2.0, ge=0, le=300)
    engine_lease_seconds: float = Field(default=30.0, ge=2, le=3600)
    engine_max_parallel_runs: int = Field(default=8, ge=1, le=256)
    # false: a registry-only node (registry + API; no runs, schedules or event consumer here —
    # events and queued runs wait in the database for a node that has the engine on)
    engine_enabled: bool = True
    # event_based policies also run whole this often, catching anything events missed (0: never)
    reconcile_seconds: float = Field(default=3600.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # X-Forwarded-* is believed only from these addresses or networks (env: comma-separated)
    trusted_proxies: list[str] = Field(default_factory=list)
    # a request body that sends nothing for this long is cut off (slow-loris uploads)
    body_idle_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    # endpoint and webhook URLs may name link-local addresses (cloud metadata services)
    allow_link_local_targets: bool = False
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    gc: GcSettings = GcSettings()
    metrics: MetricsSettings = MetricsSettings()
    dr: DrSettings = DrSettings()
    read_through: ReadThroughSettings = ReadThroughSettings()
    proxy_cache: ProxyCacheSettings = ProxyCacheSettings()

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (write e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return [e.strip() for e in value]

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_path / 'seawall.db'}"

    @property
    def storage_root(self) -> Path:
        return (
            Path(self.storage.root).resolve() if self.storage.root else self.data_path / "storage"
        )


def _known_env_names() -> list[str]:
    names = []
    for name, info in Settings.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            names += [f"{ENV_PREFIX}{name}__{n}".upper() for n in sub.model_fields]
        else:
            names.append(f"{ENV_PREFIX}{name}".upper())
    return names


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += _known_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _nearest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.5)
    return f"did you mean {close[0]}?" if close else "see docs/configuration.md for the settings"


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``SEAWALL_*`` variables as nested settings. An unknown one under a settings group
    (``SEAWALL_AUTH__…``) is refused; another unknown ``SEAWALL_*`` name that is not one of
    :data:`NOT_SETTINGS` gets a warning on stderr (it may be meant for something else)."""
    out: dict[str, Any] = {}
    fields = Settings.model_fields
    known = _known_env_names()
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in NOT_SETTINGS:
            continue
        if key.startswith(NOT_SETTINGS_PREFIXES):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if key not in known:
            if path[0] in fields and len(path) > 1:
                raise SettingsError(
                    f"unknown setting in environment variable {key}; {_nearest(key, known)}"
                )
            if path[0] not in fields:
                print(
                    f"seawall: warning: environment variable {key} is not a setting and is "
                    f"ignored; {_nearest(key, known)}",
                    file=sys.stderr,
                )
                continue
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    config_file: str | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Resolve settings from file (``config_file`` or ``$SEAWALL_CONFIG``), env and overrides."""
    env = dict(os.environ if environ is None else environ)
    if SETTINGS_ENV in env:  # a worker process: the launcher already resolved everything
        return Settings.model_validate(json.loads(env[SETTINGS_ENV]))
    data: dict[str, Any] = {}
    path = config_file or env.get("SEAWALL_CONFIG")
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise SettingsError(
                f"config file {path} does not exist; check the path given to --config "
                "(or $SEAWALL_CONFIG)"
            ) from None
        except IsADirectoryError:
            raise SettingsError(f"config file {path} is a directory; name a TOML file") from None
        except OSError as e:
            raise SettingsError(f"cannot read config file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise SettingsError(f"config file {path} is not valid TOML: {e}") from None
    data = _merge(data, _env_overrides(env))
    data = _merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise SettingsError(_one_line(e, path)) from None


def _one_line(error: ValidationError, path: str | None) -> str:
    """The first problem of ``error`` as one line naming the setting and what to do."""
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    where = f" (config file {path}, environment or command line)" if path else ""
    if first["type"] == "extra_forbidden":  # unknown environment names are caught before
        source = f" in config file {path}" if path else ""
        return f"unknown setting {key!r}{source}; {_nearest(key, _known_keys(Settings))}"
    value = first.get("input")
    shown = "" if isinstance(value, dict | list) else f" = {value!r}"
    message = first["msg"].removeprefix("Value error, ")
    return f"setting {key}{shown}: {message}{where}; see docs/configuration.md"
