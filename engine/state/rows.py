"""The run store's rows as values: a run (:class:`ExecutionRow`) and its policy
(:class:`PolicyRow`), frozen, one field per column of their tables
(:class:`engine.state.models.Execution`, :class:`~engine.state.models.Policy`), read as the
database returns them. A leased task is :class:`engine.taskrun.LeasedTask`.

Run observers (:mod:`engine.observers`, the outgoing notifications) still take rows as
mappings: :meth:`ExecutionRow.as_dict` and :meth:`PolicyRow.as_dict` give them the row's
columns, the same keys and values as the table's row.

No database here: the types hold values, the run store (:mod:`engine.state.runs`) reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from engine.state.status import ACTIVE_EXECUTION, ExecutionStatus

__all__ = ["ExecutionRow", "PolicyRow"]


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """A run (``execution``): Harbor's fields, Seawall's counters, its scope and lease.
    ``scope_json`` empty: the whole policy, else the event scope (:class:`engine.scope.Scope`).
    Counters are written at the run's end (an active run's live counts are its tasks')."""

    id: int
    policy_id: int
    status: ExecutionStatus
    status_text: str
    trigger: str
    dry_run: bool
    stop_requested: bool
    total: int
    succeed: int
    failed: int
    in_progress: int
    stopped: int
    skipped: int
    bytes_copied: int
    planned: bool
    scope_json: str
    lease_owner: str | None
    lease_expires: datetime | None
    start_time: datetime
    end_time: datetime | None

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> ExecutionRow:
        """From an ``execution`` row (``select(Execution)``); extra keys are ignored.
        :raises ValueError: a status that is not an :class:`ExecutionStatus`."""
        values = {name: row[name] for name in _EXECUTION_FIELDS}
        values["status"] = ExecutionStatus(values["status"])
        return cls(**values)

    @property
    def active(self) -> bool:
        """Not ended: queued (``Pending``) or running (``InProgress``)."""
        return self.status in ACTIVE_EXECUTION

    def as_dict(self) -> dict[str, Any]:
        """The row's columns by name (what run observers take)."""
        return {name: getattr(self, name) for name in _EXECUTION_FIELDS}


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """A replication policy (``policy``). ``src_registry_id``/``dest_registry_id`` None: this
    registry. ``filters_json``: Harbor-shaped filters (see :class:`engine.filters.Filter`)."""

    id: int
    name: str
    description: str
    src_registry_id: int | None
    dest_registry_id: int | None
    dest_namespace: str
    dest_namespace_replace_count: int
    filters_json: str
    trigger_type: str
    trigger_cron: str
    trigger_timezone: str
    deletion: bool
    override: bool
    enabled: bool
    speed_bytes_per_second: int | None
    copy_by_chunk: bool
    single_active_replication: bool
    max_deletions: int
    max_deletion_fraction: float
    creation_time: datetime
    update_time: datetime

    @classmethod
    def from_mapping(cls, row: Mapping[Any, Any]) -> PolicyRow:
        """From a ``policy`` row (``select(Policy)``); extra keys are ignored."""
        return cls(**{name: row[name] for name in _POLICY_FIELDS})

    def as_dict(self) -> dict[str, Any]:
        """The row's columns by name (what run observers take)."""
        return {name: getattr(self, name) for name in _POLICY_FIELDS}


_EXECUTION_FIELDS = tuple(f.name for f in fields(ExecutionRow))
_POLICY_FIELDS = tuple(f.name for f in fields(PolicyRow))
