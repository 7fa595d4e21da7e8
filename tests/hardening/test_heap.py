"""A server worker settles its heap once started (seawall.heap): what startup built is kept
out of later full collections, and garbage made since is still collected."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from seawall.app import build_app
from seawall.config import load_settings

SETTLED = """
import gc, weakref
from seawall.heap import settle_heap
import seawall.app  # what a worker imports
settle_heap()
frozen = gc.get_freeze_count()
class Cycle: pass
c = Cycle(); c.me = c; gone = weakref.ref(c); del c
gc.collect()
print(frozen, gone() is None)
"""


def test_settle_heap_freezes_what_exists_and_later_garbage_is_still_collected() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SETTLED], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert int(out[0]) > 10_000, out  # the imported app's objects
    assert out[1] == "True", out


@pytest.mark.anyio
async def test_on_started_runs_once_when_startup_is_done(tmp_path: Path) -> None:
    settings = load_settings(environ={"SEAWALL_DATA_DIR": str(tmp_path / "data")})
    sent: list[str] = []
    calls: list[list[str]] = []  # what had been sent when it ran
    app = build_app(settings, on_started=lambda: calls.append(list(sent)))
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    startup_done = anyio.Event()

    async def receive() -> dict[str, str]:
        if len(inbox) == 1:  # the shutdown: only once startup is complete
            await startup_done.wait()
        return inbox.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            startup_done.set()

    with anyio.fail_after(60):
        await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == [[]]  # once, before startup was reported complete
