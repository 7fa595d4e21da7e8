"""Seawall's settings: defaults, then a TOML file, then ``SEAWALL_*`` environment variables, then
command-line flags — each later source overriding the earlier.

Every setting, its environment variable and its default are listed in ``docs/configuration.md``.
Nested settings use ``__`` in environment variables (``SEAWALL_AUTH__TOKEN_TTL_SECONDS=600``).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["AuthSettings", "GcSettings", "Settings", "StorageSettings", "load_settings"]

ENV_PREFIX = "SEAWALL_"
SETTINGS_ENV = "SEAWALL_SETTINGS_JSON"  # how the launcher hands resolved settings to workers


class StorageSettings(BaseModel):
    # filesystem | s3 | azure | gcs, or a plugin's name (entry points "seawall.storage");
    # credentials, regions and endpoints come from each provider's standard sources
    driver: str = Field(default="filesystem", min_length=1)
    root: str | None = None  # filesystem: default <data_dir>/storage
    bucket: str | None = None  # s3, gcs
    container: str | None = None  # azure
    prefix: str = ""  # s3, azure, gcs: every key starts with it
    redirect: bool = False  # blob GETs answer 307 to a short-lived pre-signed URL
    redirect_seconds: int = Field(default=1200, ge=60, le=7 * 86_400)  # the URL's lifetime


class AuthSettings(BaseModel):
    anonymous_pull: bool = False
    token_ttl_seconds: int = Field(default=300, ge=30, le=86_400)
    token_key: str | None = None  # default: generated once into <data_dir>/token.key
    service: str = "seawall"
    realm: str | None = None  # token endpoint URL; default: derived from the request's Host
    basic_on_registry: bool = True  # accept HTTP Basic on /v2/ too (else bearer tokens only)


class GcSettings(BaseModel):
    # garbage collection (registry.storage.gc): a periodic run inside serve, one node per
    # interval (0: off; `seawall gc` runs one on demand), and the least age of what it removes
    interval_seconds: float = Field(default=0.0, ge=0)
    grace_seconds: float = Field(default=3600.0, ge=0)


class Settings(BaseModel):
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
    # false: a registry-only node (registry + API; no runs, schedules or event consumer here —
    # events and queued runs wait in the database for a node that has the engine on)
    engine_enabled: bool = True
    # event_based policies also run whole this often, catching anything events missed (0: never)
    reconcile_seconds: float = Field(default=3600.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    storage: StorageSettings = StorageSettings()
    auth: AuthSettings = AuthSettings()
    gc: GcSettings = GcSettings()

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


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fields = Settings.model_fields
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key in (SETTINGS_ENV, "SEAWALL_CONFIG"):
            continue
        path = key[len(ENV_PREFIX) :].lower().split("__")
        if path[0] not in fields:
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
        with open(path, "rb") as f:
            data = tomllib.load(f)
    data = _merge(data, _env_overrides(env))
    data = _merge(data, {k: v for k, v in (overrides or {}).items() if v is not None})
    return Settings.model_validate(data)
