"""The Harbor fake's webhook policies and their delivery.

As published (v2.0 swagger ``WebhookPolicy``/``WebhookTargetObject``; payloads as Harbor's
``src/pkg/notifier/model`` and ``src/controller/event/handler/webhook/artifact`` build them):
a policy belongs to a project and has ``name`` (unique in the project), ``enabled``,
``event_types`` and ``targets`` ``[{type: "http", address, auth_header, skip_cert_verify,
payload_format: "Default" | "CloudEvents"}]``. On an event of one of its types Harbor POSTs the
payload to each target with ``Content-Type: application/json`` and the target's
``auth_header`` as ``Authorization``.

Default payload::

    {"type": "PUSH_ARTIFACT", "occur_at": <unix s>, "operator": "<account>",
     "event_data": {"resources": [{"digest", "tag", "resource_url"}],
                    "repository": {"date_created", "name", "namespace", "repo_full_name",
                                   "repo_type": "private" | "public"}}}

``tag`` is the first tag of the artifact, or its digest when it has none (Harbor's own rule);
``resource_url`` is ``<host>/<repository>:<tag>`` (``@<digest>`` for a digest).
CloudEvents: ``{"specversion": "1.0", "id", "requestid", "source":
"/projects/<id>/webhook/policies/<id>", "type": "harbor.artifact.pushed", "datacontenttype":
"application/json", "time", "operator", "data": <event_data>}``.

Deliveries run after the answer that caused them (Harbor queues them in its job service);
each is recorded (:class:`Delivery`) for the test to read.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

__all__ = ["EVENT_TYPES", "Delivery", "Policy", "Webhooks"]

EVENT_TYPES = (
    "DELETE_ARTIFACT",
    "PULL_ARTIFACT",
    "PUSH_ARTIFACT",
    "QUOTA_EXCEED",
    "QUOTA_WARNING",
    "REPLICATION",
    "SCANNING_FAILED",
    "SCANNING_COMPLETED",
    "SCANNING_STOPPED",
    "TAG_RETENTION",
)
CLOUD_EVENT_TYPES = {
    "PUSH_ARTIFACT": "harbor.artifact.pushed",
    "DELETE_ARTIFACT": "harbor.artifact.deleted",
    "PULL_ARTIFACT": "harbor.artifact.pulled",
}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Policy:
    id: int
    project_id: int
    project: str
    name: str
    description: str
    enabled: bool
    event_types: list[str]
    targets: list[dict[str, Any]]
    creator: str
    creation_time: str = field(default_factory=now_iso)
    update_time: str = field(default_factory=now_iso)

    def wire(self) -> dict[str, Any]:
        """As ``GET`` returns it (auth headers included: Harbor returns them to its admins)."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "project_id": self.project_id,
            "targets": [dict(t) for t in self.targets],
            "event_types": list(self.event_types),
            "creator": self.creator,
            "creation_time": self.creation_time,
            "update_time": self.update_time,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class Delivery:
    address: str
    event_type: str
    status: int  # 0: no answer (connection failed)
    payload: dict[str, Any]
    authorization: str = field(repr=False, default="")


@dataclass(frozen=True)
class ArtifactEvent:
    event_type: str
    project: str
    project_id: int
    public: bool
    repository: str
    digest: str
    tags: tuple[str, ...]
    operator: str


class Webhooks:
    """Policies by id, and the deliveries made (thread-safe reads)."""

    def __init__(self, host: str) -> None:
        self.host = host  # resource_url's host (Harbor's external URL without the scheme)
        self.policies: dict[int, Policy] = {}
        self.deliveries: list[Delivery] = []
        self._next_id = 1
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    def add(self, **fields: Any) -> Policy:
        with self._lock:
            policy = Policy(id=self._next_id, **fields)
            self._next_id += 1
            self.policies[policy.id] = policy
        return policy

    def of_project(self, project: str) -> list[Policy]:
        with self._lock:
            return [p for p in self.policies.values() if p.project == project]

    def delivered(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.close()

    def payload(self, event: ArtifactEvent, policy: Policy, target: dict[str, Any]) -> dict:
        reference = event.tags[0] if event.tags else event.digest
        sep = "@" if reference == event.digest else ":"
        data = {
            "resources": [
                {
                    "digest": event.digest,
                    "tag": reference,
                    "resource_url": f"{self.host}/{event.repository}{sep}{reference}",
                }
            ],
            "repository": {
                "date_created": int(time.time()),
                "name": event.repository.split("/", 1)[1],
                "namespace": event.project,
                "repo_full_name": event.repository,
                "repo_type": "public" if event.public else "private",
            },
        }
        if target.get("payload_format") == "CloudEvents":
            return {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "requestid": str(uuid.uuid4()),
                "source": f"/projects/{event.project_id}/webhook/policies/{policy.id}",
                "type": CLOUD_EVENT_TYPES.get(event.event_type, event.event_type),
                "datacontenttype": "application/json",
                "time": now_iso(),
                "operator": event.operator,
                "data": data,
            }
        return {
            "type": event.event_type,
            "occur_at": int(time.time()),
            "operator": event.operator,
            "event_data": data,
        }

    def fire(self, event: ArtifactEvent) -> None:
        """Deliver ``event`` to the targets of the project's enabled policies (in the
        background, in the fake's event loop)."""
        for policy in self.of_project(event.project):
            if not policy.enabled or event.event_type not in policy.event_types:
                continue
            for target in policy.targets:
                body = self.payload(event, policy, target)
                task = asyncio.get_running_loop().create_task(self._deliver(event, target, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, event: ArtifactEvent, target: dict[str, Any], body: dict) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if target.get("auth_header"):
            headers["Authorization"] = str(target["auth_header"])
        status = 0
        try:
            async with self._http.post(
                str(target["address"]),
                json=body,
                headers=headers,
                ssl=not target.get("skip_cert_verify"),
                timeout=aiohttp.ClientTimeout(total=10),
            ) as answer:
                await answer.read()
                status = answer.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        with self._lock:
            self.deliveries.append(
                Delivery(
                    str(target["address"]),
                    event.event_type,
                    status,
                    body,
                    headers.get("Authorization", ""),
                )
            )
