"""Parts of the failover drill: the verdict, the hooks (real ``/bin/sh``), the RTO poll bounded
by an injected clock against a real Seawall, and ``seawall dr drill``'s command line and
summary."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from adapters.base import EndpointConfig
from adapters.seawall import SeawallAdapter
from engine.regions.drill_hooks import hook_env, run_hook
from engine.regions.drill_probe import Pullers, Served, recover, serve_all
from engine.regions.drill_report import (
    AtRisk,
    DrillMode,
    DrillOptions,
    DrillReport,
    Failure,
    HookRun,
    Location,
    Lost,
    Recovery,
    SeriesPoint,
    Unserved,
    verdict,
)
from seawall import drill_cli
from seawall.cli import main
from tests.support.client import client, image_manifest, push_image, sha256
from tests.support.server import SeawallProcess

FAILED_AT = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
ART = AtRisk("apps/web", "sha256:" + "a" * 64, ("1.0",), (Location("c", "apps/web"),))


def report(**fields: object) -> DrillReport:
    base: dict[str, object] = {
        "region": "b",
        "self_name": "a",
        "survivors": ("a", "c"),
        "options": DrillOptions(),
        "started_at": FAILED_AT - timedelta(seconds=5),
        "artifacts": 1,
        "failure": Failure(DrillMode.HOOKS, True, FAILED_AT, HookRun("kill", 0, 0.1, "")),
        "rto_seconds": 0.4,
        "served": 1,
    }
    return DrillReport(**{**base, **fields})  # type: ignore[arg-type]


def lost(age: float | None) -> Lost:
    acked = None if age is None else FAILED_AT - timedelta(seconds=age)
    return Lost(ART, acked, age)


def test_verdict() -> None:
    assert verdict(report()) == [] and report().passed
    slow = report(rto_seconds=12.5)
    assert verdict(slow) == ["RTO 12.50 s > target 10 s"]
    unserved = (Unserved(ART, ART.locations[0], "not found"),)
    slow_to_serve = report(rto_seconds=None, unserved=unserved, unserved_count=1)
    assert verdict(slow_to_serve) == ["1 artifact location(s) not served within 60 s"]
    # a loss within the grace passes; older or of unknown age does not
    assert report(lost=(lost(0.5),), lost_count=1).passed
    assert report(lost=(lost(0.5),), lost_count=1).rpo_seconds == 0.5
    for old in (lost(1.5), lost(None)):
        found = verdict(report(lost=(old,), lost_count=1))
        assert len(found) == 1 and "1 lost artifact(s)" in found[0], found
    assert report(lost=(lost(None),), lost_count=1).rpo_seconds is None
    # more losses than listed: the ones not listed count as old
    assert not report(lost=(lost(0.5),), lost_count=3).passed
    # an unconfirmed failure measured nothing: that is the one reason
    unconfirmed = Failure(DrillMode.HOOKS, False, FAILED_AT, detail="still up")
    assert verdict(report(failure=unconfirmed, rto_seconds=None, served=0)) == [
        "the failure of region b was not confirmed"
    ]
    incomplete = report(problems=("survivor c could not be listed: refused",))
    assert verdict(incomplete) == [
        "the drill is incomplete: survivor c could not be listed: refused"
    ]
    data = report(lost=(lost(2.0),), lost_count=1).to_json()
    assert (data["passed"], data["rpo_artifacts"], data["rpo_seconds"]) == (False, 1, 2.0)
    assert data["lost"][0]["acknowledged_at"] == "2025-01-01T11:59:58.000Z"
    assert data["lost"][0]["survivors"] == ["c:apps/web"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_hooks_run_bounded_with_their_output(tmp_path: Path) -> None:
    env = hook_env("b", "http://b.example", "fail", base={"PATH": os.environ["PATH"]})

    async def go(command: str, limit_s: float = 10.0) -> HookRun:
        return await run_hook(command, env, limit_s)

    done = anyio.run(go, 'echo "$SEAWALL_DRILL_REGION $SEAWALL_DRILL_URL $SEAWALL_DRILL_PHASE"')
    assert done.ok and done.output == "b http://b.example fail\n"
    failed = anyio.run(go, "echo to stderr >&2; exit 3")
    assert (failed.exit_code, failed.output, failed.ok) == (3, "to stderr\n", False)
    assert anyio.run(go, "no-such-command-here").exit_code == 127
    # past its time the whole group is killed, a child that would outlive it too
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    slow = anyio.run(go, f"sleep 30 & echo $! > {marker}; wait", 0.5)
    assert slow.timed_out and slow.exit_code is None and not slow.ok
    assert time.monotonic() - started < 5
    child, deadline = int(marker.read_text()), time.monotonic() + 5
    while alive(child):  # SIGKILL was sent to its group; it dies at once
        assert time.monotonic() < deadline, f"the hook's child {child} outlived it"
        time.sleep(0.01)
    # long output: the tail is kept
    tail = anyio.run(go, "seq 1 20000")
    assert tail.output.endswith("19999\n20000\n") and len(tail.output) == 4000


class FakeClock:
    """Time that moves only when the code under test sleeps; ``on_sleep`` runs (in a
    thread) at each sleep, before time moves."""

    def __init__(self, on_sleep: Callable[[], object] | None = None) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.on_sleep is not None:
            await anyio.to_thread.run_sync(self.on_sleep)
        self.now += seconds


def test_rto_poll_is_bounded_by_the_injected_clock(seawall: SeawallProcess) -> None:
    with client(seawall.url, "admin", seawall.admin_password) as c:
        digest, _ = push_image(c, "drill/parts", "1", seed="drill parts")
    config = EndpointConfig(seawall.url, username="admin", password=seawall.admin_password)
    there = AtRisk("drill/parts", digest, ("1",), (Location("x", "drill/parts"),))
    absent = AtRisk("drill/parts", "sha256:" + "0" * 64, ("2",), (Location("x", "drill/parts"),))

    async def go(items: list[AtRisk], clock: FakeClock) -> tuple[float | None, list[Unserved]]:
        async with SeawallAdapter(config) as adapter:
            pullers = Pullers({"x": adapter}, as_seawall=False)
            try:
                return await serve_all(
                    pullers, items, 100.0, 5.0, poll_seconds=1.0, clock=clock, sleep=clock.sleep
                )
            finally:
                await pullers.aclose()

    clock = FakeClock()
    assert anyio.run(go, [there], clock) == (0.0, []) and clock.slept == []
    clock = FakeClock()
    rto, unserved = anyio.run(go, [there, absent], clock)
    assert rto is None and clock.slept == [1.0] * 4  # polls at 100..104, then the window ends
    (u,) = unserved
    assert u.artifact == absent and "not found" in u.detail


def test_rto_ends_when_what_survivors_lacked_is_served(seawall: SeawallProcess) -> None:
    """The RTO waits only for the locations the RPO step found lacking their artifact; what
    they held is verified after it, and timed separately."""
    with client(seawall.url, "admin", seawall.admin_password) as c:
        digests = [push_image(c, "drill/held", str(i), seed=f"held {i}")[0] for i in range(3)]
    loc = Location("x", "drill/held")
    kept = [AtRisk("drill/held", d, (str(i),), (loc,)) for i, d in enumerate(digests)]
    holding = {(a.repository, a.digest, loc) for a in kept}
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": "late"}).encode()
    late_digest = sha256(image_manifest(config, [b"layer-late-0" * 100]))
    late = AtRisk("drill/held", late_digest, ("l",), (loc,))
    endpoint = EndpointConfig(seawall.url, username="admin", password=seawall.admin_password)

    def arrives() -> None:  # what x lacked reaches it while the drill waits
        with client(seawall.url, "admin", seawall.admin_password) as c:
            assert push_image(c, "drill/held", "l", seed="late")[0] == late.digest

    async def go(items: list[AtRisk], clock: FakeClock) -> Served:
        async with SeawallAdapter(endpoint) as adapter:
            pullers = Pullers({"x": adapter}, as_seawall=False)
            try:
                return await recover(
                    pullers,
                    items,
                    holding,
                    100.0,
                    5.0,
                    poll_seconds=1.0,
                    clock=clock,
                    sleep=clock.sleep,
                )
            finally:
                await pullers.aclose()

    # nothing lacked: the RTO is 0, the held ones are verified all the same
    clock = FakeClock()
    assert anyio.run(go, kept, clock) == Served(0.0, 0.0, 0, ()) and clock.slept == []
    # x lacked one: the RTO ends with the round that served it (the second, 1 s later);
    # the held ones are pulled after it, and one x does not serve fails only the check
    gone = AtRisk("drill/held", "sha256:" + "0" * 64, ("0",), (loc,))
    holding.add((gone.repository, gone.digest, loc))
    clock = FakeClock(on_sleep=arrives)
    served = anyio.run(go, [*kept, late, gone], clock)
    assert (served.rto_seconds, served.verified_seconds, served.lacked) == (1.0, None, 1)
    assert [(u.artifact, u.location) for u in served.unserved] == [(gone, loc)]
    assert clock.slept == [1.0] * 5  # one wait for the lacked one; four in the check's window
    found = report(rto_seconds=1.0, unserved=served.unserved, unserved_count=1, lacked=1)
    assert verdict(found) == ["1 artifact location(s) not served within 60 s"]
    assert found.to_json()["rto_seconds"] == 1.0
    # what x lacked arrived before the first round: RTO 0, everything verified
    clock = FakeClock()
    assert anyio.run(go, [*kept, late], clock) == Served(0.0, 0.0, 1, ())


def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("SEAWALL_")]:
            mp.delenv(key)
        for key, value in (env or {}).items():
            mp.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:
                code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_command_line(tmp_path: Path, seawall: SeawallProcess) -> None:
    drill = ("dr", "drill", "--region")
    for args, words in (
        (("b", "--rto-target-seconds", "0"), "--rto-target-seconds must be between 0.01"),
        (("b", "--poll-seconds", "nan"), "--poll-seconds must be between"),
        (("b", "--ack-grace-seconds", "-1"), "--ack-grace-seconds must be between 0"),
        (("b", "--restore-command", "true"), "--restore-command needs --fail-command"),
        (("b", "--fail-command", " "), "--fail-command is empty"),
        (("b", "--data-dir", str(tmp_path / "none")), "no Seawall database at"),
    ):
        code, out, err = cli(*drill, *args)
        assert (code, out) == (2, ""), (args, err)
        assert words in err and len(err.strip().splitlines()) == 1, err
    # the session's Seawall: it declares no region
    where = ("--data-dir", str(seawall.data_dir), "--port", str(seawall.port))
    code, out, err = cli(*drill, "nope", *where, env=seawall.extra_env)
    assert code == 1 and "did not start: no region named 'nope' (regions: local" in err, err
    # this Seawall, simulated: it protects nothing anywhere, so nothing is at risk
    code, out, err = cli(*drill, "local", "--json", *where, env=seawall.extra_env)
    found = json.loads(out)
    assert code == 0 and found["passed"] is True, (found, err)
    assert (found["rpo_artifacts"], found["rto_seconds"], found["artifacts"]) == (0, 0.0, 0)
    assert found["failure"]["mode"] == "simulated" and found["recovery"]["attempted"] is False


def test_summary_for_people(capsys: pytest.CaptureFixture[str]) -> None:
    r = report(
        lost=(lost(3.0),),
        lost_count=1,
        recovery=Recovery(True, HookRun("start", 0, 0.2, ""), 2.5, 4.0, ("to-b",)),
        series=(SeriesPoint(0.1, "b", 0.2, None), SeriesPoint(4.0, "b", 0.0, 0)),
    )
    drill_cli._print(r.to_json())
    out = capsys.readouterr().out
    assert out.startswith("drill of region b (hooks): NOT PASSED\n")
    assert "1 artifact(s) lost, oldest 3.00 s (grace 1 s)" in out
    assert "0.40 s (target 10 s)" in out
    assert "answered 2.50 s after the failure; re-converged 4.00 s after it" in out
    assert f"apps/web@{ART.digest} [1.0] acknowledged 2025-01-01T11:59:57.000Z" in out
    assert "4.0s  b       0.00 s  0" in out
    assert "not passed: 1 lost artifact(s)" in out
