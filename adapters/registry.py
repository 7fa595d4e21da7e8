"""Adapter types by name: the built-ins, then every entry point of the ``seawall.adapters`` group.

A plugin distribution declares its adapters in its ``pyproject.toml``::

    [project.entry-points."seawall.adapters"]
    aws-ecr = "seawall_ecr.adapter:EcrAdapter"

The entry point's name must be the class' ``type``. Discovery runs once, on first use, and never
raises for a plugin: one that fails to import, is not a :class:`RegistryAdapter`, says it is
unavailable (:meth:`RegistryAdapter.check_available`) or claims a type another class already
provides is left out and reported by :func:`problems` / :func:`unavailable`, with the reason and
what to do. Built-ins are registered in code, so they work without installed metadata; their
own entry points (same class) are no duplicates. Built-in types cannot be replaced by plugins.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from adapters.base import (
    AdapterError,
    AdapterUnavailable,
    EndpointConfig,
    RegistryAdapter,
    check_declared,
)
from adapters.generic import DockerRegistryAdapter
from adapters.seawall import SeawallAdapter

__all__ = [
    "BUILTINS",
    "GROUP",
    "AdapterRegistry",
    "DuplicateAdapterType",
    "Unavailable",
    "UnknownAdapterType",
    "available",
    "create",
    "get",
    "info",
    "problems",
    "register",
    "types",
    "unavailable",
]

GROUP = "seawall.adapters"
BUILTINS: tuple[type[RegistryAdapter], ...] = (DockerRegistryAdapter, SeawallAdapter)


class UnknownAdapterType(AdapterError, LookupError):
    """No adapter, working or not, has this type name."""


class DuplicateAdapterType(AdapterError, ValueError):
    """A second, different class claims a type name that is taken."""


@dataclass(frozen=True, slots=True)
class Unavailable:
    """An entry point that was not used: which type, where from, why, and what to do."""

    type: str
    source: str  # "seawall-ecr 1.2: seawall_ecr.adapter:EcrAdapter"
    reason: str

    def __str__(self) -> str:
        return f"{self.type} ({self.source}): {self.reason}"


def _name_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _source_of(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}: {ep.value}" if dist is not None else ep.value


class AdapterRegistry:
    """Type name → adapter class. :attr:`available` is a read-only live view."""

    def __init__(self, *, group: str = GROUP, builtins: tuple[type[RegistryAdapter], ...] = ()):
        self._group = group
        self._types: dict[str, type[RegistryAdapter]] = {}
        self._sources: dict[str, str] = {}
        self._builtin: set[str] = set()
        self._problems: list[Unavailable] = []
        self._discovered = False
        self._lock = threading.RLock()
        self.available: Mapping[str, type[RegistryAdapter]] = MappingProxyType(self._types)
        for cls in builtins:
            self.register(cls, source=f"built in: {_name_of(cls)}")
            self._builtin.add(cls.type)

    def register(self, cls: type[RegistryAdapter], *, source: str | None = None) -> None:
        """Add ``cls`` under ``cls.type``. Registering the same class again does nothing.

        :raises TypeError: ``cls`` is not a complete :class:`RegistryAdapter`.
        :raises DuplicateAdapterType: another class already has that type name.
        :raises AdapterUnavailable: the class' :meth:`~RegistryAdapter.check_available` said so.
        """
        check_declared(cls)
        source = source or _name_of(cls)
        with self._lock:
            existing = self._types.get(cls.type)
            if existing is cls:
                return
            if existing is not None:
                raise DuplicateAdapterType(
                    f"registry type {cls.type!r} is already provided by "
                    f"{self._sources[cls.type]}; {source} cannot provide it too: uninstall one "
                    f"of them or give the plugin another type name"
                )
            cls.check_available()
            self._types[cls.type] = cls
            self._sources[cls.type] = source

    def discover(self) -> None:
        """Load the entry points of the group once (later calls do nothing)."""
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            found: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for ep in importlib.metadata.entry_points(group=self._group):
                found.setdefault(ep.name, []).append(ep)
            for name in sorted(found):
                self._discover_type(name, found[name])

    def _discover_type(self, name: str, eps: list[importlib.metadata.EntryPoint]) -> None:
        loaded: dict[type[RegistryAdapter], str] = {}
        for ep in eps:
            source = _source_of(ep)
            try:
                loaded.setdefault(_load(ep), source)
            except Exception as e:  # a broken plugin must not break discovery
                self._problems.append(Unavailable(name, source, _explain(e, source)))
        existing = self._types.get(name)
        rivals = {cls: src for cls, src in loaded.items() if cls is not existing}
        if existing is not None:
            for src in rivals.values():
                why = "built in" if name in self._builtin else "already registered"
                self._problems.append(
                    Unavailable(
                        name,
                        src,
                        f"refused: the type is {why} ({self._sources[name]}); uninstall the "
                        f"plugin or give its entry point another type name",
                    )
                )
        elif len(rivals) > 1:
            listed = "; ".join(rivals.values())
            for src in rivals.values():
                self._problems.append(
                    Unavailable(
                        name,
                        src,
                        f"refused: {len(rivals)} plugins provide this type ({listed}); "
                        f"uninstall all but one",
                    )
                )
        elif rivals:
            (cls, src), *_ = rivals.items()
            self.register(cls, source=src)

    # -- queries ---------------------------------------------------------------------------

    def problems(self) -> tuple[Unavailable, ...]:
        """Every entry point that was found but not used, with why."""
        self.discover()
        return tuple(self._problems)

    def unavailable(self) -> Mapping[str, tuple[Unavailable, ...]]:
        """Types that were found only in unusable entry points: type → the reasons."""
        out: dict[str, tuple[Unavailable, ...]] = {}
        for problem in self.problems():
            if problem.type not in self._types:
                out[problem.type] = (*out.get(problem.type, ()), problem)
        return MappingProxyType(out)

    def types(self) -> list[str]:
        """The usable type names, sorted (``GET /replication/adapters``)."""
        self.discover()
        return sorted(self._types)

    def get(self, type_name: str) -> type[RegistryAdapter]:
        """The adapter class of ``type_name``.

        :raises AdapterUnavailable: the type's plugin is installed but unusable (says why).
        :raises UnknownAdapterType: no such type (lists the known ones).
        """
        self.discover()
        cls = self._types.get(type_name)
        if cls is not None:
            return cls
        broken = self.unavailable().get(type_name)
        if broken:
            reasons = "; ".join(f"{p.source}: {p.reason}" for p in broken)
            raise AdapterUnavailable(f"registry type {type_name!r} is unavailable: {reasons}")
        known = ", ".join(self.types()) or "none"
        raise UnknownAdapterType(
            f"unknown registry type {type_name!r}; known types: {known}"
            + (f" (unavailable: {', '.join(sorted(self.unavailable()))})" if self._problems else "")
        )


def _load(ep: importlib.metadata.EntryPoint) -> type[RegistryAdapter]:
    obj = ep.load()
    if not isinstance(obj, type) or not issubclass(obj, RegistryAdapter):
        raise TypeError(f"{ep.value} is {obj!r}, not a RegistryAdapter subclass")
    check_declared(obj)
    if obj.type != ep.name:
        raise TypeError(f"the entry point is named {ep.name!r} but the class' type is {obj.type!r}")
    obj.check_available()
    return obj


def _explain(error: Exception, source: str) -> str:
    if isinstance(error, AdapterUnavailable):
        return str(error)
    if isinstance(error, ModuleNotFoundError):
        return (
            f"cannot import it: module {error.name!r} is not installed; install it "
            f"(or reinstall the plugin's distribution with its dependencies)"
        )
    return f"cannot load it: {type(error).__name__}: {error}; fix or reinstall the plugin"


# -- the process-wide registry ---------------------------------------------------------------

_default = AdapterRegistry(builtins=BUILTINS)


def available() -> Mapping[str, type[RegistryAdapter]]:
    """Read-only view: type name → adapter class (built-ins and working plugins)."""
    _default.discover()
    return _default.available


def get(type_name: str) -> type[RegistryAdapter]:
    """See :meth:`AdapterRegistry.get`."""
    return _default.get(type_name)


def types() -> list[str]:
    return _default.types()


def info(type_name: str) -> dict[str, Any]:
    """Harbor's ``RegistryInfo`` of a type (the management API's ``adapter_info``)."""
    return get(type_name).info()


def create(type_name: str, config: EndpointConfig, **client_options: Any) -> RegistryAdapter:
    """A new adapter of ``type_name`` for the registry at ``config``."""
    return get(type_name)(config, **client_options)


def problems() -> tuple[Unavailable, ...]:
    return _default.problems()


def unavailable() -> Mapping[str, tuple[Unavailable, ...]]:
    return _default.unavailable()


def register(cls: type[RegistryAdapter]) -> None:
    """Add an adapter class in code (see :meth:`AdapterRegistry.register`)."""
    _default.discover()
    _default.register(cls)
