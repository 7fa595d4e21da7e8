"""A drill's hooks: the operator's commands that fail and restore a region.

A hook is a shell command line (``/bin/sh -c``), given by whoever runs the drill — it runs
with that user's rights where the drill runs, never inside the server. It learns which region
from its environment, never from text pasted into the command::

    SEAWALL_DRILL_REGION    the region's name
    SEAWALL_DRILL_URL       its registry URL (this Seawall's own for the self region)
    SEAWALL_DRILL_PHASE     fail | restore

It runs in a process group of its own, stdin closed, stdout and stderr captured together (the
last :data:`OUTPUT_CHARS` are kept); at ``timeout_seconds`` the whole group is killed. A fail
hook returns once the region is unavailable; a restore hook may return at once (the drill then
waits for the region to answer). A background process a hook starts must not keep the hook's
output open (redirect it): the drill stops reading :data:`DRAIN_SECONDS` after the hook exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping

import anyio
from anyio.abc import ByteReceiveStream, Process

from engine.regions.drill_report import HookRun

__all__ = ["DRAIN_SECONDS", "OUTPUT_CHARS", "hook_env", "run_hook"]

OUTPUT_CHARS = 4000
DRAIN_SECONDS = 1.0
SHELL = "/bin/sh"


def hook_env(
    region: str, url: str, phase: str, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The hook's environment: the drill's own (or ``base``) and the three drill variables."""
    env = dict(os.environ if base is None else base)
    env.update(SEAWALL_DRILL_REGION=region, SEAWALL_DRILL_URL=url, SEAWALL_DRILL_PHASE=phase)
    return env


async def run_hook(
    command: str,
    env: Mapping[str, str],
    timeout_seconds: float,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> HookRun:
    """Run ``command`` to its end or to ``timeout_seconds``; never raises for the command's
    failure (a command that cannot be started is exit code 127, as the shell reports it)."""
    started = clock()
    kept = bytearray()
    try:
        process = await anyio.open_process(
            [SHELL, "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    except OSError as e:
        return HookRun(command, 127, clock() - started, f"cannot start {SHELL}: {e}")
    timed_out = False
    ended = anyio.Event()
    async with process, anyio.create_task_group() as tg:
        assert process.stdout is not None
        tg.start_soon(_keep_tail, process.stdout, kept, ended)
        with anyio.move_on_after(timeout_seconds) as scope:
            await process.wait()
        if scope.cancelled_caught:
            timed_out = True
            _kill_group(process)
            with anyio.CancelScope(shield=True):
                await process.wait()
        with anyio.move_on_after(DRAIN_SECONDS):
            await ended.wait()
        tg.cancel_scope.cancel()
    output = kept.decode(errors="replace")[-OUTPUT_CHARS:]
    code = None if timed_out else process.returncode
    return HookRun(command, code, clock() - started, output, timed_out)


async def _keep_tail(stream: ByteReceiveStream, kept: bytearray, ended: anyio.Event) -> None:
    """Read the output to its end, keeping only its tail."""
    try:
        while True:
            kept.extend(await stream.receive())
            if len(kept) > OUTPUT_CHARS * 4:
                del kept[: len(kept) - OUTPUT_CHARS * 4]
    except (anyio.EndOfStream, anyio.ClosedResourceError, OSError):
        pass
    finally:
        ended.set()


def _kill_group(process: Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
