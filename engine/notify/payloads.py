"""What a webhook receives: Harbor's ``REPLICATION`` event, in its default JSON or CloudEvents 1.0.

Harbor's shapes (``src/pkg/notifier/model``, ``src/controller/event/handler/webhook/artifact/
replication.go``), followed field by field; Go's ``omitempty`` fields are left out when empty,
as Harbor does. Seawall adds ``event_data.seawall`` (CloudEvents: ``data.seawall``, plus the
extension attribute ``seawallevent``), which Harbor consumers ignore: which Seawall event it is,
the policy, the execution and, for artifact events, the artifact (digest, tags, outcome).

Default::

    {"type": "REPLICATION", "occur_at": 1767225600, "operator": "MANUAL",
     "event_data": {"replication": {...}, "seawall": {...}}}

CloudEvents (``Content-Type: application/cloudevents+json``)::

    {"specversion": "1.0", "id": "<uuid, the same on every retry>",
     "source": "/api/v2.0/replication/policies/1/webhooks/2",
     "type": "harbor.replication.status.changed", "datacontenttype": "application/json",
     "time": "2026-01-01T00:00:00Z", "operator": "MANUAL", "seawallevent": "run_started",
     "data": {"replication": {...}, "seawall": {...}}}
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ARTIFACT_LIST_LIMIT",
    "CLOUDEVENTS_TYPE",
    "DR_CLOUDEVENTS_PREFIX",
    "DR_EVENT_TYPES",
    "DrEvent",
    "Event",
    "Sides",
    "artifact_event",
    "content_type",
    "dr_event",
    "render",
    "render_dr",
    "run_event",
    "sample_event",
]

HARBOR_TYPE = "REPLICATION"
CLOUDEVENTS_TYPE = "harbor.replication.status.changed"
ARTIFACT_LIST_LIMIT = 100  # entries of successful_artifact / failed_artifact in a run event
# Harbor's execution triggers (src/pkg/task: MANUAL, SCHEDULE, EVENT).
TRIGGERS = {"manual": "MANUAL", "scheduled": "SCHEDULE", "event_based": "EVENT"}
# Harbor's job statuses (src/jobservice/job): what ``job_status`` carries.
JOB_STATUS = {"Succeed": "Success", "Failed": "Error", "Stopped": "Stopped"}


@dataclass(frozen=True, slots=True)
class Sides:
    """The registries of a policy as the payload names them. ``None``: this Seawall."""

    src: dict[str, Any] | None
    dest: dict[str, Any] | None
    local_url: str  # this node's external URL ("" when not configured)

    @property
    def hostname(self) -> str:
        return urlsplit(self.local_url).hostname or socket.gethostname()

    def resource(self, endpoint: dict[str, Any] | None, namespace: str) -> dict[str, Any]:
        if endpoint is None:
            out: dict[str, Any] = {"registry_type": "seawall", "endpoint": self.local_url}
        else:
            out = {
                "registry_name": endpoint.get("name") or "",
                "registry_type": endpoint.get("type") or "",
                "endpoint": endpoint.get("url") or "",
            }
        if namespace:
            out["namespace"] = namespace
        return out

    @property
    def remote(self) -> dict[str, Any] | None:
        return self.dest if self.dest is not None else self.src


@dataclass(frozen=True, slots=True)
class Event:
    """One replication event, before it is rendered for a webhook."""

    event: str  # run_started | artifact_replicated | artifact_failed | run_finished | run_failed
    event_type: str  # what webhooks subscribe to: REPLICATION_STARTED, …
    id: str
    occur_at: datetime
    operator: str
    replication: dict[str, Any]
    seawall: dict[str, Any]

    @property
    def event_data(self) -> dict[str, Any]:
        return {"replication": self.replication, "seawall": self.seawall}


def content_type(fmt: str) -> str:
    return "application/cloudevents+json" if fmt == "cloudevents" else "application/json"


def render(event: Event, fmt: str, policy_id: int, webhook_id: int) -> str:
    """The body sent to one webhook (a JSON text)."""
    if fmt == "cloudevents":
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": event.id,
            "source": f"/api/v2.0/replication/policies/{policy_id}/webhooks/{webhook_id}",
            "type": CLOUDEVENTS_TYPE,
            "datacontenttype": "application/json",
            "time": event.occur_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": event.event_data,
            "operator": event.operator,
            "seawallevent": event.event,
        }
    else:
        body = {
            "type": HARBOR_TYPE,
            "occur_at": int(event.occur_at.timestamp()),
            "operator": event.operator,
            "event_data": event.event_data,
        }
    return json.dumps(body, separators=(",", ":"))


# ---------------------------------------------------------------------------- events
def run_event(
    event: str,
    event_type: str,
    execution: dict[str, Any],
    policy: dict[str, Any],
    sides: Sides,
    status: str,
    tasks: Sequence[dict[str, Any]] = (),
) -> Event:
    """``run_started`` (``status`` InProgress), ``run_finished`` or ``run_failed``; ``tasks``
    (the run's finished tasks) fill ``successful_artifact`` / ``failed_artifact``."""
    replication = _replication(execution, policy, sides, JOB_STATUS.get(status, "Running"))
    replication["src_resource"] = sides.resource(sides.src, "")
    replication["dest_resource"] = sides.resource(sides.dest, policy.get("dest_namespace") or "")
    succeeded = [t for t in tasks if t["status"] == "Succeed" and _did_something(t)]
    failed = [t for t in tasks if t["status"] == "Failed"]
    if succeeded:
        replication["successful_artifact"] = [
            _artifact_info(t, policy) for t in succeeded[:ARTIFACT_LIST_LIMIT]
        ]
    if failed:
        replication["failed_artifact"] = [
            _artifact_info(t, policy) for t in failed[:ARTIFACT_LIST_LIMIT]
        ]
    seawall = _seawall(event, event_type, execution, policy, status)
    return _event(event, event_type, execution, replication, seawall)


def artifact_event(
    event: str,
    event_type: str,
    execution: dict[str, Any],
    policy: dict[str, Any],
    sides: Sides,
    task: dict[str, Any],
) -> Event:
    """``artifact_replicated`` or ``artifact_failed``: one finished task."""
    ok = task["status"] == "Succeed"
    replication = _replication(execution, policy, sides, "Success" if ok else "Error")
    replication["artifact_type"] = task.get("resource_type") or "artifact"
    replication["src_resource"] = sides.resource(
        sides.src, _split(task.get("src_repository") or "")[0]
    )
    replication["dest_resource"] = sides.resource(
        sides.dest, _split(task.get("dst_repository") or "")[0]
    )
    replication["successful_artifact" if ok else "failed_artifact"] = [_artifact_info(task, policy)]
    seawall = _seawall(event, event_type, execution, policy, "InProgress")
    seawall["artifact"] = {
        "task_id": task.get("id"),
        "operation": task.get("operation") or "copy",
        "src_repository": task.get("src_repository") or "",
        "dst_repository": task.get("dst_repository") or "",
        "digest": task.get("digest") or "",
        "tags": _tags(task),
        "status": task["status"],
        "outcome": task.get("outcome") or "",
        "reason": task.get("reason") or "",
        "bytes_copied": int(task.get("bytes_copied") or 0),
    }
    return _event(event, event_type, execution, replication, seawall)


def sample_event(policy: dict[str, Any], sides: Sides) -> Event:
    """What ``POST …/webhooks/{id}/test`` sends: a run-shaped event of no execution."""
    replication = {
        "harbor_hostname": sides.hostname,
        "job_status": "Success",
        "src_resource": sides.resource(sides.src, ""),
        "dest_resource": sides.resource(sides.dest, policy.get("dest_namespace") or ""),
    }
    if policy.get("description"):
        replication["description"] = policy["description"]
    seawall = {
        "event": "test",
        "event_type": "TEST",
        "policy": {"id": policy["id"], "name": policy["name"]},
    }
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    seawall["event_id"] = event_id
    return Event("test", "TEST", event_id, now, "MANUAL", replication, seawall)


# ---------------------------------------------------------------------------- parts
def _event(
    event: str,
    event_type: str,
    execution: dict[str, Any],
    replication: dict[str, Any],
    seawall: dict[str, Any],
) -> Event:
    event_id = str(uuid.uuid4())
    seawall["event_id"] = event_id
    operator = TRIGGERS.get(execution.get("trigger") or "manual", "MANUAL")
    return Event(event, event_type, event_id, datetime.now(UTC), operator, replication, seawall)


def _replication(
    execution: dict[str, Any], policy: dict[str, Any], sides: Sides, job_status: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"harbor_hostname": sides.hostname, "job_status": job_status}
    if policy.get("description"):
        out["description"] = policy["description"]
    remote = sides.remote
    if remote is not None and remote.get("access_key"):
        out["authentication_type"] = remote.get("credential_type") or "basic"
    if policy.get("override"):
        out["override_mode"] = True
    out["trigger_type"] = TRIGGERS.get(execution.get("trigger") or "manual", "MANUAL")
    started = _aware(execution.get("start_time"))
    if started is not None:
        out["execution_timestamp"] = int(started.timestamp())
    return out


def _seawall(
    event: str, event_type: str, execution: dict[str, Any], policy: dict[str, Any], status: str
) -> dict[str, Any]:
    counts = ("total", "succeed", "failed", "stopped", "skipped", "bytes_copied")
    run: dict[str, Any] = {
        "id": execution["id"],
        "status": status,
        "status_text": execution.get("status_text") or "",
        "trigger": execution.get("trigger") or "manual",
        "start_time": _iso(execution.get("start_time")),
        "end_time": _iso(execution.get("end_time")) if status != "InProgress" else None,
    }
    if event in ("run_finished", "run_failed"):
        run.update({k: int(execution.get(k) or 0) for k in counts})
    return {
        "event": event,
        "event_type": event_type,
        "policy": {"id": policy["id"], "name": policy["name"]},
        "execution": run,
    }


def _did_something(task: dict[str, Any]) -> bool:
    return (task.get("outcome") or "") in ("copied", "deleted")


def _artifact_info(task: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
    """Harbor's ``ArtifactInfo``: ``name_tag`` names the artifact on the local side (the source
    of a push, the destination of a pull; the source when both are remote), without its
    namespace, as Harbor does."""
    pull = policy.get("src_registry_id") is not None and policy.get("dest_registry_id") is None
    if pull:
        repo = task.get("dst_repository") or ""
    else:  # a push, or remote → remote (a deletion has no source repository)
        repo = task.get("src_repository") or task.get("dst_repository") or ""
    name = _split(repo)[1]
    tags = _tags(task)
    if not repo:  # not an artifact: the run's listing step failed
        ref = f"({task.get('operation') or 'run'})"
    elif len(tags) == 1 and tags[0]:
        ref = f"{name}:{tags[0]}"
    elif tags and any(tags):
        ref = f"{name}:[{','.join(tags)}]"
    else:
        ref = f"{name}@{task.get('digest') or ''}"
    out = {
        "type": (task.get("resource_type") or "artifact") if repo else "",
        "status": task["status"],
        "name_tag": ref,
    }
    if task["status"] == "Failed" and task.get("reason"):
        out["fail_reason"] = str(task["reason"])[:1000]
    return out


def _split(repository: str) -> tuple[str, str]:
    """``team/a/app`` → (``team``, ``a/app``); ``app`` → ("", ``app``)."""
    head, sep, rest = repository.partition("/")
    return (head, rest) if sep else ("", head)


def _tags(task: dict[str, Any]) -> list[str]:
    raw = task.get("tags_json") or "[]"
    try:
        tags = json.loads(raw)
    except ValueError:
        return []
    return [str(t) for t in tags] if isinstance(tags, list) else []


def _aware(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: Any) -> str | None:
    aware = _aware(value)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if aware else None


# ---------------------------------------------------------------------------- failover alerts
#: Alerts of the failover checks (:mod:`engine.regions.alerts`), one per transition: a region
#: turned unhealthy or recovered; its replication lag passed ``dr.lag_alert_seconds`` or fell
#: back under it. Sent to the webhooks of the policies replicating to or from the region
#: (every policy for this Seawall's own region) that subscribe to the type.
DR_EVENT_TYPES = (
    "REGION_UNHEALTHY",
    "REGION_RECOVERED",
    "REPLICATION_LAG",
    "REPLICATION_LAG_RECOVERED",
)
DR_CLOUDEVENTS_PREFIX = "io.seawall.dr."


@dataclass(frozen=True, slots=True)
class DrEvent:
    """One failover alert, before it is rendered for a webhook. ``region``: the region's
    name, whether it is this Seawall, its endpoint, health, lag and what the check found."""

    event_type: str  # one of DR_EVENT_TYPES
    id: str
    occur_at: datetime
    region: dict[str, Any]

    @property
    def event(self) -> str:
        return self.event_type.lower()


def dr_event(event_type: str, region: dict[str, Any], occur_at: datetime) -> DrEvent:
    if event_type not in DR_EVENT_TYPES:
        raise ValueError(f"unknown failover event type {event_type!r}")
    return DrEvent(event_type, str(uuid.uuid4()), occur_at, dict(region))


def render_dr(event: DrEvent, fmt: str, policy_id: int, webhook_id: int) -> str:
    """The body sent to one webhook: Seawall's own shape (Harbor has no such event)::

        {"type": "REGION_UNHEALTHY", "occur_at": 1767225600, "operator": "SEAWALL",
         "event_data": {"region": {...}, "seawall": {"event": "region_unhealthy", ...}}}

    CloudEvents: ``type`` is ``io.seawall.dr.region_unhealthy`` (and so on), ``data`` holds
    ``region`` and ``seawall``."""
    seawall = {
        "event": event.event,
        "event_type": event.event_type,
        "event_id": event.id,
        "policy": {"id": policy_id},
    }
    data = {"region": event.region, "seawall": seawall}
    if fmt == "cloudevents":
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": event.id,
            "source": f"/api/v2.0/replication/policies/{policy_id}/webhooks/{webhook_id}",
            "type": DR_CLOUDEVENTS_PREFIX + event.event,
            "datacontenttype": "application/json",
            "time": event.occur_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data": data,
            "seawallevent": event.event,
        }
    else:
        body = {
            "type": event.event_type,
            "occur_at": int(event.occur_at.timestamp()),
            "operator": "SEAWALL",
            "event_data": data,
        }
    return json.dumps(body, separators=(",", ":"))
