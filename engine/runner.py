"""Run one execution: plan it (once), then carry out its tasks under leases, then roll it up.

A dry run and a real run share this path: a dry run writes the same tasks with outcomes
``would-copy`` / ``would-delete`` and never touches the destination.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import anyio

from adapters.oci.client import OciClient
from adapters.oci.errors import NotFound, OciError, Transient, Unsupported
from engine.bandwidth import BandwidthLimit
from engine.copier import Copier
from engine.filters import Filter, repository_matches
from engine.listing import (
    DETAIL_FILTERS,
    describe,
    head_tags,
    list_repositories,
    list_side,
    merge_listings,
)
from engine.naming import map_repository
from engine.observers import RunObserver, notify_all
from engine.plan import CopyAction, Listing, Plan, PolicySpec, make_plan
from engine.scope import Scope
from engine.state.runs import RunStore, task_tags

__all__ = ["ClientFactory", "Runner", "policy_spec", "tasks_from_plan"]

log = logging.getLogger("seawall.engine")
MAX_ATTEMPTS = 5


class ClientFactory(Protocol):
    """Opens the OCI client for a registry endpoint id (None: the local registry)."""

    def __call__(self, registry_id: int | None) -> Awaitable[OciClient]: ...


def policy_spec(policy: dict[str, Any]) -> PolicySpec:
    filters = tuple(Filter.from_harbor(f) for f in json.loads(policy.get("filters_json") or "[]"))
    return PolicySpec(
        policy_id=int(policy["id"]),
        filters=filters,
        dest_namespace=policy.get("dest_namespace") or "",
        dest_namespace_replace_count=int(policy.get("dest_namespace_replace_count", -1)),
        override=bool(policy.get("override", True)),
        deletion=bool(policy.get("deletion", False)),
        max_deletions=int(policy.get("max_deletions", 100)),
        max_deletion_fraction=float(policy.get("max_deletion_fraction", 0.25)),
    )


def tasks_from_plan(plan: Plan, dry_run: bool) -> list[dict[str, Any]]:
    """Task rows for a plan. Skips are finished at once; a dry run's copies and deletions too."""
    rows: list[dict[str, Any]] = []
    for c in plan.copies:
        rows.append(
            _row(
                "copy",
                c.src_repository,
                c.dst_repository,
                c.digest,
                c.tags,
                "Succeed" if dry_run else "Pending",
                "would-copy" if dry_run else "",
                c.reason,
            )
        )
    for s in plan.skips:
        rows.append(
            _row(
                "copy",
                s.src_repository,
                s.dst_repository,
                s.digest,
                s.tags,
                "Succeed",
                s.outcome,
                s.reason,
            )
        )
    for d in plan.deletions:
        if plan.deletions_blocked:
            status, outcome, reason = "Failed", "blocked", plan.deletions_blocked
        elif dry_run:
            status, outcome, reason = "Succeed", "would-delete", d.reason
        else:
            status, outcome, reason = "Pending", "", d.reason
        rows.append(
            _row("deletion", "", d.dst_repository, d.digest, (d.tag,), status, outcome, reason)
        )
    return rows


def _row(
    op: str,
    src_repo: str,
    dst_repo: str,
    digest: str,
    tags: tuple[str, ...],
    status: str,
    outcome: str,
    reason: str,
) -> dict[str, Any]:
    tag_text = ",".join(tags)
    return {
        "operation": op,
        "src_repository": src_repo,
        "dst_repository": dst_repo,
        "digest": digest,
        "tags_json": json.dumps(list(tags)),
        "status": status,
        "outcome": outcome,
        "reason": reason,
        "resource_type": "artifact",
        "src_resource": f"{src_repo}:[{tag_text}]" if src_repo else "",
        "dst_resource": f"{dst_repo}:[{tag_text}]",
    }


class Runner:
    def __init__(
        self,
        store: RunStore,
        clients: ClientFactory,
        *,
        artifact_concurrency: int = 4,
        blob_concurrency: int = 8,
        verify: bool = False,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        """``verify``: check every destination tag's digest, trusting no ledger entry.
        ``observers`` hear of the run's start, each finished task and its end."""
        self.store, self.clients, self.verify = store, clients, verify
        self.observers = list(observers)
        self.artifact_concurrency, self.blob_concurrency = artifact_concurrency, blob_concurrency

    async def run(self, execution_id: int) -> str:
        execution = await self.store.execution(execution_id)
        if execution is None:
            raise LookupError(f"execution {execution_id} does not exist")
        policy = await self.store.policy(int(execution["policy_id"]))
        if policy is None:
            await self.store.finalize(execution_id, "its policy was deleted")
            return "Failed"
        await notify_all(self.observers, "run_started", execution, policy)
        src = await self.clients(policy["src_registry_id"])
        dst = await self.clients(policy["dest_registry_id"])
        try:
            status = await self._run(execution, policy, src, dst)
        finally:
            await src.close()
            await dst.close()
        final = await self.store.execution(execution_id)
        await notify_all(self.observers, "run_finished", final or execution, policy, status)
        return status

    async def _run(
        self, execution: dict[str, Any], policy: dict[str, Any], src: OciClient, dst: OciClient
    ) -> str:
        eid = int(execution["id"])
        spec = policy_spec(policy)
        status_text: str | None = None
        if not execution["planned"]:
            try:
                plan = await self.plan(spec, src, dst, Scope.from_json(execution["scope_json"]))
            except OciError as e:
                await self.store.add_tasks(
                    eid, [_row("list", "", "", "", (), "Failed", "failed", f"listing failed: {e}")]
                )
                return await self.store.finalize(eid, f"listing failed: {e}")
            rows = tasks_from_plan(plan, bool(execution["dry_run"]))
            if plan.problems:
                rows.append(
                    _row(
                        "list", "", "", "", (), "Failed", "failed", "; ".join(plan.problems)[:2000]
                    )
                )
                status_text = "source listing incomplete: no deletion was done"
            if plan.deletions_blocked:
                status_text = plan.deletions_blocked
            await self.store.add_tasks(eid, rows)
        copier = _copier(policy, src, dst, self.blob_concurrency)

        async def report(task: dict[str, Any]) -> None:
            await notify_all(self.observers, "task_finished", execution, policy, task)

        stopped = await self._work(eid, spec, copier, dst, report)
        if stopped:
            await self.store.stop_pending(eid)
        return await self.store.finalize(eid, status_text)

    async def plan(
        self, spec: PolicySpec, src: OciClient, dst: OciClient, scope: Scope | None = None
    ) -> Plan:
        """The run's plan: the whole policy, or only what an event ``scope`` names."""
        if scope:
            return await self._plan_scope(spec, src, dst, scope)
        repos = await list_repositories(src, lambda r: repository_matches(list(spec.filters), r))
        source = await self._describe(spec, src, await list_side(src, repos))
        ledger = await self.store.ledger(spec.policy_id)
        mapped = {_map(spec, r) for r in repos}
        destination = await list_side(
            dst, mapped | set(ledger), missing_ok=True, known=None if self.verify else ledger
        )
        plan = make_plan(spec, source, destination, ledger)
        return plan if source.complete else _with_problems(plan, source.problems)

    async def _plan_scope(
        self, spec: PolicySpec, src: OciClient, dst: OciClient, scope: Scope
    ) -> Plan:
        """An event-scoped plan. Repositories the scope names whole are listed whole (a
        repository missing at the source was deleted there); the others are planned from the
        scope's tags alone, one ``HEAD`` per tag on each side, with the ledger narrowed to those
        tags so nothing else is considered for deletion. The deletion guard's fraction is taken
        over everything the policy has replicated."""
        names = sorted(r for r in scope.repositories if repository_matches(list(spec.filters), r))
        whole = [r for r in names if r in scope.whole]
        narrow = {r: scope.tags.get(r, set()) for r in names if r not in scope.whole}
        full_ledger = await self.store.ledger(spec.policy_id)
        ledger: dict[str, dict[str, str]] = {}
        for r in whole:
            ledger.setdefault(_map(spec, r), {}).update(full_ledger.get(_map(spec, r), {}))
        for r, tags in narrow.items():
            mine = full_ledger.get(_map(spec, r), {})
            ledger.setdefault(_map(spec, r), {}).update({t: mine[t] for t in tags if t in mine})
        source = merge_listings(
            await list_side(src, whole, missing_ok=True), await head_tags(src, narrow)
        )
        source = await self._describe(spec, src, source)
        destination = merge_listings(
            await list_side(
                dst,
                {_map(spec, r) for r in whole},
                missing_ok=True,
                known=None if self.verify else ledger,
            ),
            await head_tags(dst, {_map(spec, r): tags for r, tags in narrow.items()}),
        )
        base = sum(len(t) for t in full_ledger.values())
        plan = make_plan(spec, source, destination, ledger, deletion_base=base)
        plan = await _with_late_referrers(plan, spec, src, dst, scope, source)
        return plan if source.complete else _with_problems(plan, source.problems)

    async def _describe(self, spec: PolicySpec, src: OciClient, listing: Listing) -> Listing:
        if any(f.type in DETAIL_FILTERS for f in spec.filters):
            return await describe(src, listing)
        return listing

    async def help(self, execution_id: int) -> None:
        """Run some waiting tasks of a run that another node owns: a large run spreads across
        the nodes that share the database. The owner plans the run and closes it."""
        execution = await self.store.execution(execution_id)
        policy = await self.store.policy(int(execution["policy_id"])) if execution else None
        if execution is None or policy is None:
            return
        src = await self.clients(policy["src_registry_id"])
        dst = await self.clients(policy["dest_registry_id"])
        try:

            async def report(task: dict[str, Any]) -> None:
                await notify_all(self.observers, "task_finished", execution, policy, task)

            copier = _copier(policy, src, dst, self.blob_concurrency)
            await self._work(execution_id, policy_spec(policy), copier, dst, report, owner=False)
        finally:
            await src.close()
            await dst.close()

    async def _work(
        self,
        eid: int,
        spec: PolicySpec,
        copier: Copier,
        dst: OciClient,
        report: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        owner: bool = True,
    ) -> bool:
        """Lease and run tasks until none is left; True if the run was stopped. The owner of
        the run also waits for tasks other nodes are running; a helper leaves when none waits."""
        running: set[int] = set()
        stop = anyio.Event()
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._heartbeat, eid, running, stop, outer.cancel_scope, owner)
            slots = anyio.Semaphore(self.artifact_concurrency)

            async def worker() -> None:
                # One task leased at a time: what this node is not running yet stays
                # Pending, so other nodes sharing the database can take it.
                while not stop.is_set():
                    batch = await self.store.lease_tasks(eid, 1)
                    if not batch:
                        return
                    running.add(int(batch[0]["id"]))
                    await self._one(spec, copier, dst, batch[0], slots, running, report)

            while not stop.is_set():
                async with anyio.create_task_group() as tg:
                    for _ in range(self.artifact_concurrency):
                        tg.start_soon(worker)
                if not (owner and await self.store.unfinished_tasks(eid)):
                    break
                # other nodes are running some of this run's tasks: wait for them (their
                # leases expire if they die, and the tasks come back here)
                await anyio.sleep(0.5)
            outer.cancel_scope.cancel()
        return stop.is_set()

    async def _heartbeat(
        self,
        eid: int,
        running: set[int],
        stop: anyio.Event,
        scope: anyio.CancelScope,
        owner: bool = True,
    ) -> None:
        last_renew = time.monotonic()
        while True:
            await anyio.sleep(1.0)
            if await self.store.stop_requested(eid):
                stop.set()
                scope.cancel()
                return
            if time.monotonic() - last_renew >= self.store.lease.total_seconds() / 3:
                last_renew = time.monotonic()
                if owner and not await self.store.renew_execution(eid):
                    log.warning("execution %s was taken over by another node; stopping here", eid)
                    scope.cancel()
                    return
                await self.store.renew_tasks(sorted(running))

    async def _one(
        self,
        spec: PolicySpec,
        copier: Copier,
        dst: OciClient,
        task: dict[str, Any],
        slots: anyio.Semaphore,
        running: set[int],
        report: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        tid = int(task["id"])
        lines: list[str] = [task.get("log") or ""] if task.get("log") else []

        def note(msg: str) -> None:
            lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {msg}")

        note(f"attempt {int(task['attempts']) + 1} on node {self.store.node_id}")
        try:
            async with slots:
                outcome, nbytes = await self._execute(spec, copier, dst, task, note)
            await self.store.finish_task(tid, "Succeed", outcome, "", "\n".join(lines), nbytes)
            await report(_finished(task, "Succeed", outcome, "", nbytes))
        except anyio.get_cancelled_exc_class():
            note("stopped")
            with anyio.CancelScope(shield=True):
                await self.store.finish_task(
                    tid, "Stopped", "stopped", "run stopped", "\n".join(lines), 0
                )
            raise
        except (OciError, OSError) as e:
            note(f"error: {e}")
            again = isinstance(e, Transient) and int(task["attempts"]) < MAX_ATTEMPTS
            status = "Pending" if again else "Failed"
            if again:
                await anyio.sleep(min(2 ** int(task["attempts"]), 30))
            await self.store.finish_task(
                tid, status, "" if again else "failed", str(e), "\n".join(lines), 0
            )
            if not again:
                await report(_finished(task, "Failed", "failed", str(e), 0))
        finally:
            running.discard(tid)

    async def _execute(
        self,
        spec: PolicySpec,
        copier: Copier,
        dst: OciClient,
        task: dict[str, Any],
        note: Callable[[str], None],
    ) -> tuple[str, int]:
        tags = task_tags(task)
        if task["operation"] == "deletion":
            return await self._delete(
                spec, dst, task["dst_repository"], tags[0], task["digest"], note
            ), 0
        result = await copier.copy(
            task["src_repository"], task["dst_repository"], task["digest"], tags, note
        )
        await self.store.record_replicated(
            spec.policy_id, task["dst_repository"], tags, task["digest"]
        )
        note(
            f"done: {result.blobs_copied} blobs copied, {result.blobs_skipped} present, "
            f"{result.blobs_mounted} mounted, {result.bytes_copied} bytes"
        )
        return "copied", result.bytes_copied

    async def _delete(
        self,
        spec: PolicySpec,
        dst: OciClient,
        repo: str,
        tag: str,
        digest: str,
        note: Callable[[str], None],
    ) -> str:
        current = await dst.head_manifest(repo, tag)
        if current is None or current.digest != digest:
            note(f"{repo}:{tag} no longer names {digest}: left alone")
            await self.store.forget_replicated(spec.policy_id, repo, tag)
            return "skipped-differs"
        try:
            await dst.delete_tag(repo, tag)
            note(f"deleted tag {repo}:{tag}")
        except (Unsupported, NotFound):
            others = [t for t in await dst.list_tags(repo) if t != tag]
            sharing = [
                t for t in others if (r := await dst.head_manifest(repo, t)) and r.digest == digest
            ]
            if sharing:
                note(
                    f"{repo}:{tag}: the registry cannot delete tags and {sharing[0]} still "
                    "names the artifact: left in place"
                )
                return "skipped-differs"
            await dst.delete_manifest(repo, digest)
            note(f"deleted {repo}@{digest} (tag {tag}; the registry deletes by digest only)")
        await self.store.forget_replicated(spec.policy_id, repo, tag)
        return "deleted"


async def _with_late_referrers(
    plan: Plan, spec: PolicySpec, src: OciClient, dst: OciClient, scope: Scope, source: Listing
) -> Plan:
    """Carry artifacts pushed untagged into a scope's repositories — signatures, SBOMs and
    attestations pushed after their subject — by copying the subject again with its referrers
    (a no-op for the subject itself, which is present). Only subjects this policy carries are
    followed: ones the plan selected, or already at the destination."""
    selected = {(a.src_repository, a.digest): a.dst_repository for a in plan.copies}
    selected.update({(a.src_repository, a.digest): a.dst_repository for a in plan.skips})
    copying = {(a.src_repository, a.digest) for a in plan.copies}
    extra: dict[tuple[str, str], CopyAction] = {}
    for repo, digests in sorted(scope.digests.items()):
        if not repository_matches(list(spec.filters), repo):
            continue
        tagged = set(source.tags.get(repo, {}).values())
        for digest in sorted(digests - tagged):
            root = await _subject_root(src, repo, digest)
            key = (repo, root or "")
            if root is None or key in copying or key in extra:
                continue
            target = selected.get(key)
            if target is None and await dst.head_manifest(_map(spec, repo), root) is not None:
                target = _map(spec, repo)
            if target is not None:
                extra[key] = CopyAction(
                    repo, target, root, (), reason="referrers pushed after their subject"
                )
    if not extra:
        return plan
    return replace(plan, copies=plan.copies + tuple(extra.values()))


def _map(spec: PolicySpec, repo: str) -> str:
    return map_repository(repo, spec.dest_namespace, spec.dest_namespace_replace_count)


async def _subject_root(src: OciClient, repo: str, digest: str, depth: int = 4) -> str | None:
    """The artifact at the root of ``digest``'s subject chain (a signature of an SBOM of an
    image: the image), or None when ``digest`` has no subject or is gone."""
    current, root = digest, None
    for _ in range(depth):
        try:
            subject = (await src.get_manifest(repo, current)).json().get("subject") or {}
        except (OciError, ValueError):
            return root  # gone, or not a manifest (a registry announced a blob)
        if not isinstance(subject, dict) or not subject.get("digest"):
            return root
        current = root = str(subject["digest"])
    return root


def _copier(policy: dict[str, Any], src: OciClient, dst: OciClient, blobs: int) -> Copier:
    speed = int(policy.get("speed_bytes_per_second") or -1)
    return Copier(
        src,
        dst,
        blob_concurrency=blobs,
        chunk_bytes=(16 << 20) if policy.get("copy_by_chunk") else None,
        bandwidth=BandwidthLimit(speed) if speed > 0 else None,
    )


def _finished(
    task: dict[str, Any], status: str, outcome: str, reason: str, nbytes: int
) -> dict[str, Any]:
    return {**task, "status": status, "outcome": outcome, "reason": reason, "bytes_copied": nbytes}


def _with_problems(plan: Plan, problems: tuple[str, ...]) -> Plan:
    return replace(plan, problems=problems)
