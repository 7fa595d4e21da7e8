"""What a failover drill finds: values only (no I/O), the verdict, and their JSON.

A drill fails one region, then answers three questions (``seawall dr drill``)::

    RPO   which artifacts the failed region held that no survivor holds (``rpo_artifacts``:
          what the failure loses), and, where the push times are known, how old the oldest
          of them is (``rpo_seconds``)
    RTO   how long after the failure every survivor location that did not hold an artifact
          the failed region held (and some survivor holds) served it, with identical digests
          (``rto_seconds``; 0: every survivor held everything); then how long until every
          location served everything, the held ones too (``verified_seconds``)
    after the region came back: the lag and what is missing per region over time (``series``)
          until it re-converged

``passed``: the failure was real (confirmed), the region's holdings could be listed, every
artifact it held that a survivor holds was served (identical digests) by every survivor
protecting it, the lacked ones within the RTO target, and no lost
artifact was acknowledged more than the grace before the failure (an unknown
acknowledgement time counts as older).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from engine.regions.report import LIST_LIMIT

__all__ = [
    "AtRisk",
    "DrillMode",
    "DrillOptions",
    "DrillReport",
    "Failure",
    "HookRun",
    "Location",
    "Lost",
    "Recovery",
    "SeriesPoint",
    "Unserved",
    "bounded",
    "iso_time",
    "verdict",
]


def iso_time(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds (a naive value is UTC, as the database stores it)."""
    if value is None:
        return None
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DrillMode(StrEnum):
    """``hooks``: a command made the region unavailable (and another restores it);
    ``simulated``: nothing was stopped — the survivors are judged by what they hold."""

    HOOKS = "hooks"
    SIMULATED = "simulated"


@dataclass(frozen=True, slots=True)
class DrillOptions:
    """``rto_target_seconds``: the RTO a passing drill stays within. ``ack_grace_seconds``: a
    lost artifact acknowledged at most this long before the failure does not fail the drill
    (replication had no fair chance). The rest bound the drill's phases: the RTO is measured
    for at most ``rto_timeout_seconds``; hooks run at most ``hook_timeout_seconds``; the
    failure must be seen within ``confirm_timeout_seconds``; the region must answer and
    re-converge within ``converge_timeout_seconds``; polls are ``poll_seconds`` apart."""

    rto_target_seconds: float = 10.0
    ack_grace_seconds: float = 1.0
    rto_timeout_seconds: float = 60.0
    hook_timeout_seconds: float = 120.0
    confirm_timeout_seconds: float = 10.0
    converge_timeout_seconds: float = 300.0
    poll_seconds: float = 0.5
    probe_concurrency: int = 16

    def to_json(self) -> dict[str, Any]:
        return {
            "rto_target_seconds": self.rto_target_seconds,
            "ack_grace_seconds": self.ack_grace_seconds,
            "rto_timeout_seconds": self.rto_timeout_seconds,
            "hook_timeout_seconds": self.hook_timeout_seconds,
            "confirm_timeout_seconds": self.confirm_timeout_seconds,
            "converge_timeout_seconds": self.converge_timeout_seconds,
            "poll_seconds": self.poll_seconds,
        }


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """Where a survivor holds (or should hold) an artifact: a region and its repository name."""

    region: str
    repository: str

    def __str__(self) -> str:
        return f"{self.region}:{self.repository}"


@dataclass(frozen=True, slots=True)
class AtRisk:
    """An artifact the failed region held (named as there), and the survivors' locations
    that protect it (this Seawall under its own name, other regions under theirs)."""

    repository: str
    digest: str
    tags: tuple[str, ...]
    locations: tuple[Location, ...]

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"

    def to_json(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "tags": [*self.tags],
            "survivors": [str(loc) for loc in self.locations],
        }


@dataclass(frozen=True, slots=True)
class Lost:
    """An artifact no survivor holds. ``acknowledged_at``: when the push that made it was
    acknowledged (this Seawall's outbox), None when that is not known here."""

    artifact: AtRisk
    acknowledged_at: datetime | None
    age_seconds: float | None  # acknowledged this long before the failure

    def to_json(self) -> dict[str, Any]:
        return {
            **self.artifact.to_json(),
            "acknowledged_at": iso_time(self.acknowledged_at),
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class Unserved:
    """A survivor location that did not serve an artifact by the end of the RTO window."""

    artifact: AtRisk
    location: Location
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact.ref, "at": str(self.location), "detail": self.detail}


@dataclass(frozen=True, slots=True)
class HookRun:
    """One hook command: its exit status (None: killed at the time limit), how long it ran,
    the end of its output (stdout and stderr together)."""

    command: str
    exit_code: int | None
    duration_seconds: float
    output: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "duration_seconds": round(self.duration_seconds, 3),
            "output": self.output,
        }


@dataclass(frozen=True, slots=True)
class Failure:
    """How the region was failed. ``confirmed``: it was seen not answering (a simulated
    failure is confirmed by definition). ``at``: the moment the RTO is measured from."""

    mode: DrillMode
    confirmed: bool
    at: datetime
    hook: HookRun | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "confirmed": self.confirmed,
            "at": iso_time(self.at),
            "hook": None if self.hook is None else self.hook.to_json(),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One sample of the re-convergence: ``t_seconds`` after the failure, a region's lag
    (None: not measurable) and how many protected tags it lacks (None: not listable)."""

    t_seconds: float
    region: str
    lag_seconds: float | None
    missing: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "t_seconds": round(self.t_seconds, 3),
            "region": self.region,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "missing": self.missing,
        }


@dataclass(frozen=True, slots=True)
class Recovery:
    """The region brought back: the restore hook, when it answered again and when every
    region was consistent and caught up (seconds after the failure; None: not within the
    time limit), the policy runs the drill queued."""

    attempted: bool
    hook: HookRun | None = None
    answered_after_seconds: float | None = None
    converged_after_seconds: float | None = None
    runs_queued: tuple[str, ...] = ()
    detail: str = ""

    @property
    def converged(self) -> bool:
        return self.converged_after_seconds is not None

    def to_json(self) -> dict[str, Any]:
        def secs(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {
            "attempted": self.attempted,
            "hook": None if self.hook is None else self.hook.to_json(),
            "answered_after_seconds": secs(self.answered_after_seconds),
            "converged": self.converged,
            "converged_after_seconds": secs(self.converged_after_seconds),
            "runs_queued": [*self.runs_queued],
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class DrillReport:
    """The whole drill. ``artifacts``: what the failed region held (protected); ``served``:
    how many of them every protecting survivor served within the windows; ``lacked``: how
    many survivor locations did not hold their artifact at the RPO step (what the RTO waits
    for); ``verified_seconds``: failure → every location served (None: not all were)."""

    region: str
    self_name: str
    survivors: tuple[str, ...]
    options: DrillOptions
    started_at: datetime
    artifacts: int
    failure: Failure
    rto_seconds: float | None
    served: int
    unserved: tuple[Unserved, ...] = ()
    unserved_count: int = 0
    lost: tuple[Lost, ...] = ()
    lost_count: int = 0
    verified_seconds: float | None = None
    lacked: int = 0
    recovery: Recovery = field(default_factory=lambda: Recovery(False))
    series: tuple[SeriesPoint, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def rpo_seconds(self) -> float | None:
        """The age of the oldest lost artifact at the failure (0 when none is lost; None
        when one's acknowledgement time is not known)."""
        ages = [lost.age_seconds for lost in self.lost]
        if not self.lost_count:
            return 0.0
        if self.lost_count > len(self.lost) or any(a is None for a in ages):
            return None
        return max(a for a in ages if a is not None)

    @property
    def passed(self) -> bool:
        return not verdict(self)

    def to_json(self) -> dict[str, Any]:
        reasons = verdict(self)
        rpo_s = self.rpo_seconds
        return {
            "region": self.region,
            "passed": not reasons,
            "reasons": reasons,
            "rpo_artifacts": self.lost_count,
            "rpo_seconds": None if rpo_s is None else round(rpo_s, 3),
            "rto_seconds": None if self.rto_seconds is None else round(self.rto_seconds, 3),
            "verified_seconds": _secs(self.verified_seconds),
            "lacked": self.lacked,
            "self": self.self_name,
            "survivors": [*self.survivors],
            "artifacts": self.artifacts,
            "served": self.served,
            "lost": [x.to_json() for x in self.lost],
            "unserved": [x.to_json() for x in self.unserved],
            "unserved_count": self.unserved_count,
            "failure": self.failure.to_json(),
            "recovery": self.recovery.to_json(),
            "series": [p.to_json() for p in self.series],
            "options": self.options.to_json(),
            "started_at": iso_time(self.started_at),
            "problems": [*self.problems],
        }


def verdict(report: DrillReport) -> list[str]:
    """Why the drill did not pass (empty: it passed)."""
    o = report.options
    reasons: list[str] = []
    if not report.failure.confirmed:
        reasons.append(f"the failure of region {report.region} was not confirmed")
    if report.problems:
        reasons.append(f"the drill is incomplete: {report.problems[0]}")
    if report.failure.confirmed:  # else nothing was measured
        if report.rto_seconds is None or report.unserved_count:
            reasons.append(
                f"{report.unserved_count} artifact location(s) not served within "
                f"{o.rto_timeout_seconds:g} s"
            )
        if report.rto_seconds is not None and report.rto_seconds > o.rto_target_seconds:
            reasons.append(f"RTO {report.rto_seconds:.2f} s > target {o.rto_target_seconds:g} s")
    late = [x for x in report.lost if x.age_seconds is None or x.age_seconds > o.ack_grace_seconds]
    late_count = len(late) + (report.lost_count - len(report.lost))
    if late_count:
        reasons.append(
            f"{late_count} lost artifact(s) acknowledged more than {o.ack_grace_seconds:g} s "
            "before the failure (or at an unknown time)"
        )
    return reasons


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def bounded(items: Sequence[Any]) -> tuple[Any, ...]:
    """At most :data:`LIST_LIMIT` entries of a listed field (its count is kept whole)."""
    return tuple(items[:LIST_LIMIT])
