"""The notifier: turns run events into durable deliveries, and sends them.

As a :class:`~engine.observers.RunObserver` it only writes rows (one per matching enabled
webhook of the policy, in one transaction) and wakes the delivery loop, so a run never waits on
a receiver; a run's events reuse the webhooks read for it for up to a second (each of its tasks
ends with an event). The delivery loop (one per process) leases due rows with a conditional
UPDATE — with several nodes on one database each delivery is sent by one node — POSTs them
with httpx, and records every attempt.

Retries: network errors, timeouts, ``5xx`` and ``429`` are retried after
``backoff · 2^(attempt-1)`` seconds (1 s, 2 s, 4 s, 8 s, 16 s by default), capped at
``backoff_max``, or after ``Retry-After`` when the receiver sends one (same cap); after
``max_attempts`` (6) attempts the delivery is ``Failed``. Any other answer (``2xx``: ``Success``;
``3xx``/``4xx``: ``Failed`` at once) is final. Pending deliveries survive a restart: a lease
left by a dead process expires after ``timeout + 20`` seconds and the row is sent again. Leases,
due times and the times recorded are the database's (:mod:`registry.meta.leases`): a node whose
clock is ahead takes no delivery another node is sending.

Settings (environment variables, read when the notifier is built):

    SEAWALL_NOTIFY_BACKOFF_SECONDS      first retry delay, doubled each time      1
    SEAWALL_NOTIFY_BACKOFF_MAX_SECONDS  the longest delay between attempts        300
    SEAWALL_NOTIFY_MAX_ATTEMPTS         attempts before a delivery is Failed      6
    SEAWALL_NOTIFY_TIMEOUT_SECONDS      one attempt's time limit                  10
    SEAWALL_NOTIFY_POLL_SECONDS         how often other nodes' rows are looked for 1
    SEAWALL_NOTIFY_EXTERNAL_URL         this registry's URL, for payloads         ""
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup
from sqlalchemy import and_, bindparam, case, func, insert, select, update

from adapters.oci.limits import parse_retry_after_seconds
from engine.netguard import ALLOW_ENV, TargetRefused, check_resolved
from engine.notify.models import EVENT_TYPES, Delivery, Webhook
from engine.notify.payloads import (
    ARTIFACT_LIST_LIMIT,
    Event,
    Sides,
    artifact_event,
    content_type,
    render,
    run_event,
)
from engine.state.models import RegistryEndpoint, Task
from engine.state.secrets import SecretBox, SecretError
from registry.meta.db import Database
from registry.meta.leases import database_time, db_now, db_time_in, lease_free
from registry.meta.prepared import prepared

__all__ = ["Notifier", "NotifySettings", "load_sides", "webhook_events"]

log = logging.getLogger("seawall.notify")

W = Webhook.__table__  # type: ignore[attr-defined]
D = Delivery.__table__  # type: ignore[attr-defined]
R = RegistryEndpoint.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
BATCH = 32
SENDERS = 8  # webhooks served at once by one process
ONCE_PER_RUN = ("REPLICATION_STARTED", "REPLICATION_FINISHED", "REPLICATION_FAILED")
HOOKS_TTL_SECONDS = 1.0  # how long a run's events use the webhooks read for it
_ENABLED_HOOKS = prepared(select(W).where(W.c.policy_id == bindparam("pid"), W.c.enabled.is_(True)))


def _env_float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, raw, default)
        return default
    return max(minimum, value)


@dataclass(frozen=True, slots=True)
class NotifySettings:
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    max_attempts: int = 6
    timeout_seconds: float = 10.0
    poll_seconds: float = 1.0
    external_url: str = ""
    allow_link_local: bool = False  # see engine.netguard

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        e = os.environ if env is None else env
        return cls(
            backoff_seconds=_env_float(e, "SEAWALL_NOTIFY_BACKOFF_SECONDS", 1.0, 0.0),
            backoff_max_seconds=_env_float(e, "SEAWALL_NOTIFY_BACKOFF_MAX_SECONDS", 300.0, 0.0),
            max_attempts=int(_env_float(e, "SEAWALL_NOTIFY_MAX_ATTEMPTS", 6, 1)),
            timeout_seconds=_env_float(e, "SEAWALL_NOTIFY_TIMEOUT_SECONDS", 10.0, 0.1),
            poll_seconds=_env_float(e, "SEAWALL_NOTIFY_POLL_SECONDS", 1.0, 0.05),
            external_url=e.get("SEAWALL_NOTIFY_EXTERNAL_URL", "").strip().rstrip("/"),
            allow_link_local=e.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on"),
        )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return float(min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempts - 1)))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds + 20.0)


def webhook_events(row: Mapping[str, Any]) -> list[str]:
    try:
        events = json.loads(row.get("event_types_json") or "[]")
    except ValueError:
        return list(EVENT_TYPES)
    return [str(e) for e in events] if isinstance(events, list) else list(EVENT_TYPES)


async def load_sides(c: Any, policy: Mapping[str, Any], external_url: str) -> Sides:
    """The policy's registry endpoints, as payloads show them."""
    ids = [policy.get("src_registry_id"), policy.get("dest_registry_id")]
    wanted = [i for i in ids if i is not None]
    found: dict[int, dict[str, Any]] = {}
    if wanted:
        rows = (await c.execute(select(R).where(R.c.id.in_(wanted)))).mappings().all()
        found = {int(r["id"]): dict(r) for r in rows}

    def side(registry_id: int | None) -> dict[str, Any] | None:
        if registry_id is None:
            return None
        return found.get(int(registry_id), {"name": f"registry {registry_id}"})

    return Sides(side(ids[0]), side(ids[1]), external_url)


@dataclass
class _Claimed:
    row: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


class Notifier:
    """A :class:`~engine.observers.RunObserver` with a delivery loop (:meth:`start`)."""

    def __init__(
        self,
        db: Database,
        settings: NotifySettings | None = None,
        *,
        node_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        secrets: SecretBox | None = None,
    ) -> None:
        """``secrets`` opens the webhooks' sealed ``Authorization`` headers (without it, only
        rows from before sealing carry one)."""
        self.db = db
        self.secrets = secrets
        self.settings = settings or NotifySettings.from_env()
        self.node_id = node_id or f"notify-{uuid.uuid4().hex[:12]}"
        self._transport = transport
        self._wake = anyio.Event()
        #: execution id -> (when read, the policy's enabled webhooks): a run's tasks each end
        #: with an event, and reading the webhooks for every one cost ~2 ms of CPU
        self._hooks: dict[int, tuple[float, list[dict[str, Any]]]] = {}

    # ------------------------------------------------------------------ RunObserver
    async def run_started(self, execution: dict[str, Any], policy: dict[str, Any]) -> None:
        if execution.get("dry_run"):
            return
        await self._enqueue(
            "REPLICATION_STARTED",
            policy,
            execution,
            lambda sides: run_event(
                "run_started", "REPLICATION_STARTED", execution, policy, sides, "InProgress"
            ),
        )

    async def task_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], task: dict[str, Any]
    ) -> None:
        if execution.get("dry_run"):
            return
        if task.get("status") == "Succeed" and task.get("outcome") in ("copied", "deleted"):
            event, event_type = "artifact_replicated", "ARTIFACT_REPLICATED"
        elif task.get("status") == "Failed":
            event, event_type = "artifact_failed", "ARTIFACT_FAILED"
        else:
            return  # left alone (e.g. a deletion whose tag moved): nothing was replicated
        await self._enqueue(
            event_type,
            policy,
            execution,
            lambda sides: artifact_event(event, event_type, execution, policy, sides, task),
        )

    async def run_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], status: str
    ) -> None:
        if execution.get("dry_run") or status not in ("Succeed", "Failed", "Stopped"):
            return  # InProgress: another node took the run over and will finish it
        failed = status == "Failed"
        event = "run_failed" if failed else "run_finished"
        event_type = "REPLICATION_FAILED" if failed else "REPLICATION_FINISHED"
        tasks: list[dict[str, Any]] = []

        async def load_tasks() -> None:
            done = and_(T.c.status == "Succeed", T.c.outcome.in_(("copied", "deleted")))
            async with self.db.read() as c:
                for which in (done, T.c.status == "Failed"):
                    rows = await c.execute(
                        select(T)
                        .where(T.c.execution_id == execution["id"], which)
                        .order_by(T.c.id)
                        .limit(ARTIFACT_LIST_LIMIT)
                    )
                    tasks.extend(dict(r) for r in rows.mappings().all())

        await self._enqueue(
            event_type,
            policy,
            execution,
            lambda sides: run_event(event, event_type, execution, policy, sides, status, tasks),
            before=load_tasks,
        )

    # ------------------------------------------------------------------ queue
    async def _enqueue(
        self,
        event_type: str,
        policy: dict[str, Any],
        execution: dict[str, Any],
        build: Callable[[Sides], Event],
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        policy_id = int(policy["id"])
        eid = int(execution["id"])
        hooks = [h for h in await self._webhooks(policy_id, eid) if event_type in webhook_events(h)]
        if not hooks:
            return
        async with self.db.read() as c:
            sides = await load_sides(c, policy, self.settings.external_url)
        if before is not None:
            await before()
        event = build(sides)
        async with self.db.write() as c:
            skip: set[int] = set()
            if event_type in ONCE_PER_RUN:  # a run resumed after a restart starts again
                done = await c.execute(
                    select(D.c.webhook_id).where(
                        D.c.execution_id == eid,
                        D.c.event_type == event_type,
                        D.c.webhook_id.in_([h["id"] for h in hooks]),
                    )
                )
                skip = {int(r[0]) for r in done.all()}
            rows = [
                {
                    "webhook_id": h["id"],
                    "policy_id": policy_id,
                    "execution_id": eid,
                    "event_type": event_type,
                    "event": event.event,
                    "format": h["format"],
                    "payload_json": render(event, h["format"], policy_id, int(h["id"])),
                    "status": "Pending",
                    "attempts": 0,
                    "last_error": "",
                    "history_json": "[]",
                }
                for h in hooks
                if int(h["id"]) not in skip
            ]
            if rows:
                stamps = {"next_attempt_at": db_now(), "created_at": db_now()}
                await c.execute(insert(D).values(updated_at=db_now(), **stamps), rows)
        if rows:
            self.wake()

    async def _webhooks(self, policy_id: int, execution_id: int) -> list[dict[str, Any]]:
        """The policy's enabled webhooks, read at most once per :data:`HOOKS_TTL_SECONDS` for
        one run (a webhook changed meanwhile applies to that run's events from then on)."""
        now = time.monotonic()
        cached = self._hooks.get(execution_id)
        if cached is not None and now - cached[0] < HOOKS_TTL_SECONDS:
            return cached[1]
        async with self.db.quick_read() as c:
            found = await c.execute(_ENABLED_HOOKS, {"pid": policy_id})
            hooks = [dict(h) for h in found.mappings().all()]
        if len(self._hooks) >= 64:  # runs that ended: drop what has expired
            self._hooks = {k: v for k, v in self._hooks.items() if now - v[0] < HOOKS_TTL_SECONDS}
        self._hooks[execution_id] = (now, hooks)
        return hooks

    def wake(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ delivery
    async def start(self, tg: TaskGroup) -> None:
        try:
            await self.seal_legacy_headers()
        except Exception:
            log.exception("sealing webhook auth headers stored in clear failed; they still work")
        tg.start_soon(self.deliver_forever, name="notifications")

    async def seal_legacy_headers(self) -> int:
        """Seal the ``Authorization`` headers stored in clear by earlier versions; how many."""
        if self.secrets is None:
            return 0
        async with self.db.write() as c:
            rows = (
                await c.execute(select(W.c.id, W.c.auth_header).where(W.c.auth_header != ""))
            ).all()
            for wid, header in rows:
                await c.execute(
                    update(W)
                    .where(W.c.id == wid, W.c.auth_header == header)
                    .values(auth_header_encrypted=self.secrets.encrypt(header), auth_header="")
                )
        if rows:
            log.info("sealed the auth headers of %d webhooks stored in clear", len(rows))
        return len(rows)

    def _auth_header(self, row: Mapping[str, Any]) -> str:
        """The header to send (:raises SecretError: sealed with another key)."""
        sealed = row.get("auth_header_encrypted") or ""
        if sealed and self.secrets is not None:
            return self.secrets.decrypt(sealed)
        return str(row.get("auth_header") or "")

    async def deliver_forever(self) -> None:
        async with self._clients() as clients:
            while True:
                sent = 0
                try:
                    sent = await self.deliver_due(clients)
                except Exception:
                    log.exception("delivering notifications failed; trying again shortly")
                if sent:
                    continue
                delay = self.settings.poll_seconds
                try:
                    delay = min(delay, await self._seconds_to_next_due())
                except Exception:
                    log.exception("looking for due notifications failed")
                with anyio.move_on_after(max(delay, 0.01)):
                    await self._wake.wait()
                self._wake = anyio.Event()

    def _clients(self) -> _Clients:
        timeout = httpx.Timeout(self.settings.timeout_seconds)
        return _Clients(timeout, self._transport)

    async def _seconds_to_next_due(self) -> float:
        """Seconds until the next delivery is due, by the database's clock."""
        async with self.db.read() as c:
            due, now = (
                await c.execute(
                    # a row leased by another process is due again when its lease ends
                    select(
                        func.min(
                            case(
                                (D.c.lease_expires > db_now(), D.c.lease_expires),
                                else_=D.c.next_attempt_at,
                            )
                        ),
                        db_now(),
                    ).where(D.c.status == "Pending")
                )
            ).one()
        if due is None:
            return self.settings.poll_seconds
        return max(0.0, (_aware(due) - _aware(now)).total_seconds())

    async def deliver_due(self, clients: _Clients) -> int:
        """Lease the due deliveries (a batch), send them, record the outcomes; how many were
        sent. Per webhook they go one at a time, oldest first."""
        token = f"{self.node_id}:{uuid.uuid4().hex[:8]}"
        claimed = await self._claim(token)
        if not claimed:
            return 0
        by_hook: dict[int, list[_Claimed]] = {}
        for item in claimed:
            by_hook.setdefault(int(item.row["webhook_id"]), []).append(item)
        limit = anyio.Semaphore(SENDERS)

        async def serve(items: list[_Claimed]) -> None:
            async with limit:
                for item in items:
                    await self._attempt(clients, item)

        try:
            async with anyio.create_task_group() as tg:
                for items in by_hook.values():
                    tg.start_soon(serve, items)
        except BaseException:
            # shutting down (or a database error): hand back what was not sent, now rather
            # than when the lease expires
            with anyio.CancelScope(shield=True):
                await self._release(token)
            raise
        return len(claimed)

    async def _claim(self, token: str) -> list[_Claimed]:
        free = lease_free(D.c.lease_expires)
        due = and_(D.c.status == "Pending", D.c.next_attempt_at <= db_now(), free)
        async with self.db.read() as c:  # idle polls never take the write lock
            # the oldest due delivery of each webhook: one at a time per receiver, in order, so
            # a slow receiver holds one lease, never a batch that outlives it
            oldest = func.min(D.c.id)
            found = await c.execute(
                select(oldest).where(due).group_by(D.c.webhook_id).order_by(oldest).limit(BATCH)
            )
            ids = [int(r[0]) for r in found.all()]
        if not ids:
            return []
        async with self.db.write() as c:
            # conditional: a row another node leased meanwhile is not taken
            await c.execute(
                update(D)
                .where(D.c.id.in_(ids), due)
                .values(lease_owner=token, lease_expires=db_time_in(self.settings.lease))
            )
            cols = [
                D,
                W.c.address,
                W.c.auth_header,
                W.c.auth_header_encrypted,
                W.c.enabled.label("webhook_enabled"),
                W.c.skip_cert_verify,
            ]
            rows = (
                (
                    await c.execute(
                        select(*cols)
                        .join(W, W.c.id == D.c.webhook_id)
                        .where(D.c.lease_owner == token)
                        .order_by(D.c.id)
                    )
                )
                .mappings()
                .all()
            )
        out = []
        for r in rows:
            row = dict(r)
            try:
                history = json.loads(row.get("history_json") or "[]")
            except ValueError:
                history = []
            out.append(_Claimed(row, history if isinstance(history, list) else []))
        return out

    async def _release(self, token: str) -> None:
        try:
            async with self.db.write() as c:
                await c.execute(
                    update(D)
                    .where(D.c.lease_owner == token)
                    .values(lease_owner=None, lease_expires=None)
                )
        except Exception:
            log.warning("could not release notification leases; they expire on their own")

    async def _attempt(self, clients: _Clients, item: _Claimed) -> None:
        row = item.row
        if not row["webhook_enabled"] and row["event_type"] != "TEST":
            await self._record(item, None, "the webhook was disabled before delivery", 0.0, True)
            return
        headers = {
            "Content-Type": content_type(row["format"]),
            "User-Agent": "seawall-webhook",
            "X-Seawall-Event": row["event"] or row["event_type"],
            "X-Seawall-Delivery": str(row["id"]),
        }
        try:
            auth = self._auth_header(row)
            await check_resolved(row["address"], allow_link_local=self.settings.allow_link_local)
        except (SecretError, TargetRefused) as e:
            await self._record(item, None, f"not sent: {e}", 0.0, True)
            return
        except OSError:
            pass  # a name that does not resolve: the request fails and is retried as usual
        if auth:
            headers["Authorization"] = auth
        client = clients.insecure if row["skip_cert_verify"] else clients.verified
        started = time.monotonic()
        status: int | None = None
        retry_after: float | None = None
        try:
            # the whole request, not each phase of it, stays within the timeout (and the lease)
            with anyio.fail_after(self.settings.timeout_seconds):
                response = await client.post(
                    row["address"], content=row["payload_json"].encode(), headers=headers
                )
            status = response.status_code
            await response.aclose()
            if 200 <= status < 300:
                error = ""
            else:
                error = f"HTTP {status} {response.reason_phrase}".strip()
                retry_after = parse_retry_after_seconds(response.headers.get("Retry-After"))
            final = status < 500 and status != 429
        except TimeoutError:
            error = f"no answer within {self.settings.timeout_seconds:g} s"
            final = False
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}".strip().rstrip(":")[:500] or type(e).__name__
            final = isinstance(e, httpx.UnsupportedProtocol)
        except Exception as e:  # a bad address, say: recorded, never raised into the loop
            error = f"{type(e).__name__}: {e}"[:500]
            final = True
        await self._record(item, status, error, time.monotonic() - started, final, retry_after)

    async def _record(
        self,
        item: _Claimed,
        http_status: int | None,
        error: str,
        seconds: float,
        final: bool,
        retry_after: float | None = None,
    ) -> None:
        row = item.row
        attempts = int(row["attempts"]) + 1
        ok = not error
        if ok:
            status = "Success"
        elif final or attempts >= self.settings.max_attempts:
            status = "Failed"
        else:
            status = "Pending"
        delay = self.settings.backoff(attempts)
        if retry_after is not None:
            delay = min(self.settings.backoff_max_seconds, max(delay, retry_after))
        if status == "Pending":
            log.info(
                "webhook delivery %s (attempt %s) failed: %s; next in %.1fs",
                row["id"],
                attempts,
                error,
                delay,
            )
        elif status == "Failed":
            log.warning(
                "webhook delivery %s gave up after %s attempt(s): %s", row["id"], attempts, error
            )
        async with self.db.write() as c:
            now = await database_time(c)
            entry = {
                "time": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "http_status": http_status,
                "error": error,
                "duration_ms": int(seconds * 1000),
            }
            history = [*item.history, entry][-50:]
            await c.execute(
                update(D)
                .where(D.c.id == row["id"], D.c.lease_owner == row["lease_owner"])
                .values(
                    status=status,
                    attempts=attempts,
                    last_http_status=http_status,
                    last_error=error,
                    history_json=json.dumps(history),
                    next_attempt_at=db_time_in(delay) if status == "Pending" else db_now(),
                    lease_owner=None,
                    lease_expires=None,
                    updated_at=db_now(),
                )
            )


def _aware(value: datetime | str) -> datetime:
    """A time read from the database, as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Clients:
    """Two httpx clients: one verifying TLS certificates, one for ``skip_cert_verify``."""

    def __init__(self, timeout: httpx.Timeout, transport: httpx.AsyncBaseTransport | None) -> None:
        limits = httpx.Limits(max_connections=SENDERS * 2)
        kw: dict[str, Any] = {"timeout": timeout, "follow_redirects": False, "limits": limits}
        if transport is not None:
            kw["transport"] = transport
        self.verified = httpx.AsyncClient(**kw)
        self.insecure = httpx.AsyncClient(verify=False, **kw)

    async def __aenter__(self) -> _Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.verified.aclose()
            await self.insecure.aclose()
