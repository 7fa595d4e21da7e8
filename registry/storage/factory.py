"""Storage drivers by name: the built-ins, then every entry point of the ``seawall.storage`` group.

A plugin distribution declares its driver in its ``pyproject.toml``::

    [project.entry-points."seawall.storage"]
    minio-native = "seawall_minio.driver:MinioDriver"

The entry point's name must be the class' ``name``; the class is a :class:`StorageDriver` with a
``from_config(config: DriverConfig)`` classmethod. Built-ins are registered in code (by module
path, so ``boto3``, ``azure-storage-blob`` and ``google-cloud-storage`` are imported only when their
driver is asked for) and cannot be replaced by plugins. A driver that cannot be loaded is
reported, never raised at discovery: asking for it raises :class:`DriverUnavailable` saying why
and what to install. :func:`create` always returns the driver inside
:class:`~registry.storage.checked.CheckedDriver`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from registry.storage.base import DriverUnavailable, StorageDriver
from registry.storage.checked import CheckedDriver
from registry.storage.metrics import StorageMetrics

__all__ = [
    "BUILTINS",
    "GROUP",
    "DriverConfig",
    "DriverFactory",
    "DriverType",
    "UnknownDriver",
    "create",
    "names",
    "problems",
]

GROUP = "seawall.storage"

#: name → (``module:Class``, what to install when its import fails)
BUILTINS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "filesystem": ("registry.storage.drivers.filesystem:FilesystemDriver", ""),
        "s3": ("registry.storage.drivers.s3:S3Driver", "boto3"),
        "azure": ("registry.storage.drivers.azure_blob:AzureBlobDriver", "azure-storage-blob"),
        "gcs": ("registry.storage.drivers.gcs:GcsDriver", "google-cloud-storage"),
    }
)


@dataclass(frozen=True, slots=True)
class DriverConfig:
    """What a driver is built from (``SEAWALL_STORAGE__*``). Credentials, regions and endpoints
    are not here: each driver reads its provider's standard sources (boto3's chain,
    ``AZURE_STORAGE_CONNECTION_STRING``, google-auth, ``STORAGE_EMULATOR_HOST``)."""

    driver: str = "filesystem"
    root: str | None = None  # filesystem: the directory
    bucket: str | None = None  # s3, gcs
    container: str | None = None  # azure
    prefix: str = ""  # object stores: every key starts with it (no leading or trailing slash)


class DriverType(Protocol):
    name: str

    @classmethod
    def from_config(cls, config: DriverConfig) -> StorageDriver: ...


class UnknownDriver(DriverUnavailable, LookupError):
    """No driver, working or not, has this name."""


@dataclass(frozen=True, slots=True)
class _Problem:
    name: str
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.source}): {self.reason}"


def _load(spec: str) -> type[StorageDriver]:
    module, _, attr = spec.partition(":")
    obj = getattr(importlib.import_module(module), attr)
    if not (isinstance(obj, type) and issubclass(obj, StorageDriver)):
        raise TypeError(f"{spec} is {obj!r}, not a StorageDriver subclass")
    if not callable(getattr(obj, "from_config", None)):
        raise TypeError(f"{spec} has no from_config(config) classmethod")
    return obj


def _explain(error: Exception, install: str) -> str:
    if isinstance(error, ModuleNotFoundError):
        what = install or error.name
        return (
            f"cannot import it: module {error.name!r} is not installed; "
            f"install it with: pip install {what}"
        )
    return f"cannot load it: {type(error).__name__}: {error}"


class DriverFactory:
    """Name → driver class, loaded on first use of each name."""

    def __init__(
        self, *, group: str = GROUP, builtins: Mapping[str, tuple[str, str]] = BUILTINS
    ) -> None:
        self._group = group
        self._builtins = dict(builtins)
        self._plugins: dict[str, str] = {}  # name → source, of plugins that loaded
        self._loaded: dict[str, type[StorageDriver]] = {}
        self._problems: list[_Problem] = []
        self._discovered = False
        self._lock = threading.RLock()

    def _discover(self) -> None:
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            found: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for ep in importlib.metadata.entry_points(group=self._group):
                found.setdefault(ep.name, []).append(ep)
            for name, eps in sorted(found.items()):
                self._discover_one(name, eps)

    def _discover_one(self, name: str, eps: list[importlib.metadata.EntryPoint]) -> None:
        sources = [ep.value for ep in eps]
        if name in self._builtins:
            rivals = [s for s in sources if s != self._builtins[name][0]]
            for source in rivals:
                self._problems.append(
                    _Problem(name, source, "refused: the name is built in; rename the plugin")
                )
            return
        if len(set(sources)) > 1:
            for source in sources:
                self._problems.append(
                    _Problem(name, source, f"refused: {len(sources)} plugins claim this name")
                )
            return
        try:
            cls = _load(sources[0])
            if cls.name != name:
                raise TypeError(f"entry point {name!r} loads a driver named {cls.name!r}")
        except Exception as e:  # a broken plugin must not break discovery
            self._problems.append(_Problem(name, sources[0], _explain(e, "")))
            return
        self._loaded[name] = cls
        self._plugins[name] = sources[0]

    def names(self) -> list[str]:
        """Every known driver name (built-ins whether or not their SDK is installed)."""
        self._discover()
        return sorted({*self._builtins, *self._plugins})

    def problems(self) -> tuple[str, ...]:
        """Plugins found but not used, each with why."""
        self._discover()
        return tuple(str(p) for p in self._problems)

    def get(self, name: str) -> type[StorageDriver]:
        """The driver class called ``name``.

        :raises DriverUnavailable: it exists but cannot load here (says what to install).
        :raises UnknownDriver: no such name (lists the known ones).
        """
        self._discover()
        with self._lock:
            cls = self._loaded.get(name)
            if cls is not None:
                return cls
            if name in self._builtins:
                spec, install = self._builtins[name]
                try:
                    cls = self._loaded[name] = _load(spec)
                except Exception as e:
                    raise DriverUnavailable(
                        f"the storage driver is unavailable: {_explain(e, install)}", driver=name
                    ) from e
                return cls
        broken = [p for p in self._problems if p.name == name]
        if broken:
            reasons = "; ".join(f"{p.source}: {p.reason}" for p in broken)
            raise DriverUnavailable(f"the storage driver is unavailable: {reasons}", driver=name)
        raise UnknownDriver(
            f"unknown storage driver {name!r}; known drivers: {', '.join(self.names())}"
        )

    def create(self, config: DriverConfig, metrics: StorageMetrics | None = None) -> CheckedDriver:
        """Build the configured driver, wrapped. :raises DriverUnavailable:"""
        cls = self.get(config.driver)
        return CheckedDriver(cls.from_config(config), metrics)  # type: ignore[attr-defined]


_default = DriverFactory()


def create(config: DriverConfig, metrics: StorageMetrics | None = None) -> CheckedDriver:
    """See :meth:`DriverFactory.create` (the process-wide factory)."""
    return _default.create(config, metrics)


def names() -> list[str]:
    return _default.names()


def problems() -> tuple[str, ...]:
    return _default.problems()
