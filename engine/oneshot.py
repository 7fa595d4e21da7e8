"""One-shot sync between two registries, without a server: ``seawall sync SRC DST``.

It lists with the engine's listing (``engine.listing``), plans with the engine's planner
(``engine.plan.make_plan``) and carries out each task with the engine's per-task code
(``engine.taskrun.run_task``, over ``engine.copier.Copier``) — the code a policy runs in
``seawall serve`` — and keeps its state in a small SQLite file of its own
in ``--state-dir`` (``oneshot.db``, plain ``sqlite3``; a ``seawall sync`` must not pay for
importing SQLAlchemy, which was half of a no-op re-sync):

- the ledger of the tags this state's runs put at the destination (written with the end of the
  task that put them, in one transaction): a later run trusts it instead of one ``HEAD`` per
  destination tag (unless ``verify``), and ``deletion`` deletes only what is in it;
- each run's plan (its tasks) and outcomes: a run that was interrupted (killed, Ctrl-C) is
  resumed by the next run with the same source, destination and options, which carries out the
  rest of its plan instead of listing and planning again.

The state file, its lock (one process per state dir) and its durability are
:mod:`engine.oneshot_state`'s.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import anyio

from adapters.base import EndpointConfig, RegistryAdapter
from adapters.generic import DockerRegistryAdapter
from adapters.oci.errors import OciError
from engine.copier import Copier
from engine.destination import Destination
from engine.filters import Filter
from engine.oneshot_state import SyncState
from engine.plan import PolicySpec
from engine.planning import plan_policy
from engine.taskrun import LeasedTask, RunTools, TaskEnd, run_task
from engine.tasks import failed_listing, tasks_from_plan

__all__ = ["SyncResult", "SyncSide", "sync_once"]

KEEP_RUNS = 20  # finished runs whose tasks are kept in the state file


@dataclass(frozen=True)
class SyncSide:
    """``http[s]://host[:port]/optional/prefix`` plus credentials."""

    url: str
    username: str | None = None
    password: str | None = None
    insecure: bool = False
    #: the registry's adapter type; "" = ``oci-layout`` for a ``file://`` URL, else any OCI
    #: registry (``docker-registry``, whose tag deletes are tried, not assumed away)
    type: str = ""

    @property
    def is_layout(self) -> bool:
        return self.url.startswith("file:")

    @property
    def base(self) -> str:
        """Where the registry is: scheme and host (a layout: its whole root directory)."""
        if self.is_layout:
            return self.url.rstrip("/")
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def prefix(self) -> str:
        """The repository namespace the URL names (none for a layout root)."""
        return "" if self.is_layout else urlsplit(self.url).path.strip("/")

    def adapter(self) -> RegistryAdapter:
        """The side's adapter: its ``type``, else ``oci-layout`` for a ``file://`` URL, else
        any OCI registry (``docker-registry``).

        :raises AdapterError: unknown type, or a URL or settings the type cannot work with.
        """
        config = EndpointConfig(
            self.base, username=self.username, password=self.password, insecure=self.insecure
        )
        kind = self.type or ("oci-layout" if self.is_layout else "")
        if not kind:
            return DockerRegistryAdapter(config)
        from adapters import registry  # loads the plugins only when a type is asked for

        return registry.create(kind, config)


@dataclass(frozen=True)
class SyncResult:
    status: str
    status_text: str
    counts: dict[str, int]
    bytes_copied: int
    seconds: float
    tasks: list[dict[str, object]]
    resumed: bool = False  # this run carried out an interrupted run's plan


async def sync_once(
    src: SyncSide,
    dst: SyncSide,
    state_dir: Path,
    *,
    dry_run: bool = False,
    deletion: bool = False,
    override: bool = True,
    filters: list[dict[str, object]] | None = None,
    artifact_concurrency: int = 8,
    blob_concurrency: int = 8,
    verify: bool = False,
) -> SyncResult:
    """Run once (or finish the interrupted run); ``state_dir`` (an existing folder) keeps the
    state. ``verify`` checks every destination tag instead of trusting the ledger."""
    started = time.perf_counter()
    spec = _spec(src, dst, deletion, override, filters or [])
    settings = json.dumps(
        {
            "src": src.url,
            "dst": dst.url,
            "deletion": deletion,
            "override": override,
            "filters": filters or [],
        },
        sort_keys=True,
    )
    with SyncState.open(state_dir) as state:
        run_id = None if dry_run else state.interrupted_run(settings)
        resumed = run_id is not None
        source, target = src.adapter(), dst.adapter()
        # a plain URL's registry type is unknown: its tag deletes are tried, not assumed away
        try_tag_delete = not (dst.type or dst.is_layout)
        try:
            if run_id is None:
                run_id = await _plan_run(state, spec, source, target, settings, dry_run, verify)
            destination = await Destination.open(target)
            copier = Copier(
                source.client(),
                destination.client,
                blob_concurrency=blob_concurrency,
                mount=destination.capabilities.blob_mount,
                referrers_api=destination.capabilities.referrers_api,
            )
            if try_tag_delete:
                destination.capabilities = replace(destination.capabilities, delete_tag=True)
            tools = RunTools(spec.policy_id, copier, destination)
            await _work(state, run_id, tools, artifact_concurrency)
        finally:
            with anyio.CancelScope(shield=True):
                await source.close()
                await target.close()
        status, status_text = state.finish_run(run_id)
        tasks = state.tasks(run_id)
        state.prune(KEEP_RUNS)
    counts: dict[str, int] = {}
    for t in tasks:
        key = str(t.get("outcome") or t.get("status"))
        counts[key] = counts.get(key, 0) + 1
    return SyncResult(
        status,
        status_text,
        counts,
        sum(int(t.get("bytes_copied") or 0) for t in tasks),
        time.perf_counter() - started,
        tasks,
        resumed,
    )


def _spec(
    src: SyncSide, dst: SyncSide, deletion: bool, override: bool, filters: list[dict[str, object]]
) -> PolicySpec:
    """The policy of a sync: everything under SRC's prefix, mapped under DST's prefix."""
    prefix = src.prefix
    raw: list[dict[str, object]] = [{"type": "name", "value": f"{prefix}/**"}] if prefix else []
    return PolicySpec(
        policy_id=1,
        filters=tuple(Filter.from_harbor(f) for f in raw + filters),
        dest_namespace=dst.prefix,
        dest_namespace_replace_count=len(prefix.split("/")) if prefix else 0,
        override=override,
        deletion=deletion,
    )


async def _plan_run(
    state: SyncState,
    spec: PolicySpec,
    src: RegistryAdapter,
    dst: RegistryAdapter,
    settings: str,
    dry_run: bool,
    verify: bool,
) -> int:
    """List both sides, plan, and write the run with its tasks; returns the run's id."""
    status_text = ""
    try:
        plan = await plan_policy(spec, src, dst, state.ledger(), verify=verify)
    except OciError as e:
        failed = failed_listing(f"listing failed: {e}")
        return state.create_run(settings, dry_run, [failed], f"listing failed: {e}")
    rows = tasks_from_plan(plan, dry_run)
    if plan.problems:
        status_text = "source listing incomplete: no deletion was done"
    if plan.deletions_blocked:
        status_text = plan.deletions_blocked
    return state.create_run(settings, dry_run, rows, status_text)


async def _work(state: SyncState, run_id: int, tools: RunTools, concurrency: int) -> None:
    """Carry out the run's unfinished tasks, ``concurrency`` at a time, each by the engine's
    per-task code (:func:`engine.taskrun.run_task`). On cancellation the tasks in flight stay
    unfinished: the next run resumes them."""
    state.requeue_interrupted(run_id)
    tasks = _SyncTasks(state)
    slots = anyio.Semaphore(concurrency)

    async def worker() -> None:
        while (row := state.lease_task(run_id)) is not None:
            await run_task(tasks, tools, LeasedTask.from_row(row), slots)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


class _SyncTasks:
    """:class:`engine.taskrun.TaskState` over the state file. Nobody stops a sync but its
    user: a cancelled task stays unfinished, for the next run to resume."""

    where = ""  # one process: no node to name

    def __init__(self, state: SyncState) -> None:
        self.state = state

    def stopping(self) -> bool:
        return False

    async def finish(self, task: LeasedTask, end: TaskEnd) -> None:
        self.state.finish_task(task.id, end)

    async def forget_replicated(self, dst_repository: str, tag: str) -> None:
        self.state.forget_replicated(dst_repository, tag)
