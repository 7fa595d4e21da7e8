"""``seawall sync`` (engine/oneshot.py) between two CNCF distribution registries: copy, a no-op
that trusts the ledger, deletion of what it put there, resume of an interrupted run, one
process per state dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from engine.copier import Copier
from engine.oneshot import SyncSide, SyncState, sync_once
from seawall import cli
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess, distribution_available

pytestmark = pytest.mark.skipif(not distribution_available(), reason="needs docker-registry")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[DistributionProcess, DistributionProcess]]:
    a = DistributionProcess(tmp_path / "a").start()
    b = DistributionProcess(tmp_path / "b").start()
    yield a, b
    a.stop()
    b.stop()


def digest(c: httpx.Client, repo: str, tag: str) -> str | None:
    accept = "application/vnd.oci.image.manifest.v1+json"
    r = c.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": accept})
    return r.headers["Docker-Content-Digest"] if r.status_code == 200 else None


def sync(a: DistributionProcess, b: DistributionProcess, state: Path, **kw: Any) -> Any:
    src, dst = SyncSide(f"{a.url}/team"), SyncSide(f"{b.url}/mirror")
    return anyio.run(lambda: sync_once(src, dst, state, **kw))


def test_copy_noop_verify_and_deletion(
    pair: tuple[DistributionProcess, DistributionProcess], tmp_path: Path
) -> None:
    a, b = pair
    state = tmp_path / "state"
    state.mkdir()
    with client(a.url, None) as ca, client(b.url, None) as cb:
        pushed = {
            ("team/app", "1.0"): push_image(ca, "team/app", "1.0", seed="1")[0],
            ("team/app", "2.0"): push_image(ca, "team/app", "2.0", seed="2")[0],
            **{
                ("team/db", f"{i}.0"): push_image(ca, "team/db", f"{i}.0", seed=f"d{i}")[0]
                for i in range(4)
            },
        }  # 6 tags: deleting one stays under the deletion guard's 25 %
        push_image(ca, "other/x", "1.0", seed="4")  # outside the prefix: never copied

        args = ["sync", f"{a.url}/team", f"{b.url}/mirror", "--state-dir", str(state), "-q"]
        assert cli.main(args) == 0
        for (repo, tag), d in pushed.items():
            assert digest(cb, repo.replace("team/", "mirror/", 1), tag) == d
        assert digest(cb, "mirror/x", "1.0") is None

        again = sync(a, b, state)
        assert again.status == "Succeed", again
        assert again.counts == {"skipped-identical": 6}

        # A tag moved behind the sync's back: the ledger is trusted (no HEAD) unless verify.
        moved = push_image(cb, "mirror/app", "1.0", seed="elsewhere")[0]
        assert sync(a, b, state).counts == {"skipped-identical": 6}
        assert digest(cb, "mirror/app", "1.0") == moved
        fixed = sync(a, b, state, verify=True)
        assert fixed.counts == {"copied": 1, "skipped-identical": 5}, fixed
        assert digest(cb, "mirror/app", "1.0") == pushed[("team/app", "1.0")]

        # Deleted at the source: deleted at the destination only with deletion on.
        r = ca.delete(f"/v2/team/app/manifests/{pushed[('team/app', '2.0')]}")
        assert r.status_code == 202, r.text
        assert sync(a, b, state).counts == {"skipped-identical": 5}
        assert digest(cb, "mirror/app", "2.0") is not None
        gone = sync(a, b, state, deletion=True)
        assert gone.counts == {"deleted": 1, "skipped-identical": 5}, gone
        assert digest(cb, "mirror/app", "2.0") is None


def test_interrupted_run_is_resumed(
    pair: tuple[DistributionProcess, DistributionProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = pair
    state = tmp_path / "state"
    state.mkdir()
    with client(a.url, None) as ca, client(b.url, None) as cb:
        pushed = {f"{i}.0": push_image(ca, "team/app", f"{i}.0", seed=str(i))[0] for i in range(4)}
        copy = Copier.copy
        copied: list[str] = []
        hanging = anyio.Event()

        async def copy_one_then_hang(self: Copier, *args: Any) -> Any:
            if copied:
                hanging.set()
                await anyio.sleep_forever()
            copied.append(args[2])
            return await copy(self, *args)

        async def interrupted() -> None:
            src, dst = SyncSide(f"{a.url}/team"), SyncSide(f"{b.url}/mirror")
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: sync_once(src, dst, state, artifact_concurrency=1))
                with anyio.fail_after(30):
                    await hanging.wait()
                tg.cancel_scope.cancel()  # as a kill or Ctrl-C would, mid-run

        monkeypatch.setattr(Copier, "copy", copy_one_then_hang)
        anyio.run(interrupted)
        monkeypatch.setattr(Copier, "copy", copy)
        assert len(copied) == 1

        # A dry run plans afresh and leaves the interrupted run alone.
        dry = sync(a, b, state, dry_run=True)
        assert not dry.resumed and dry.counts == {"would-copy": 3, "skipped-identical": 1}, dry

        push_image(ca, "team/app", "later", seed="later")  # not in the interrupted run's plan
        resumed = sync(a, b, state)
        assert resumed.resumed and resumed.status == "Succeed", resumed
        assert resumed.counts == {"copied": 4}, resumed
        for tag, d in pushed.items():
            assert digest(cb, "mirror/app", tag) == d
        assert digest(cb, "mirror/app", "later") is None
        after = sync(a, b, state)  # the next run plans again
        assert not after.resumed and after.counts == {"copied": 1, "skipped-identical": 4}


def test_one_process_per_state_dir(tmp_path: Path) -> None:
    first = SyncState.open(tmp_path)
    first.__enter__()
    with pytest.raises(RuntimeError, match="another seawall sync"), SyncState.open(tmp_path):
        pass
    first.__exit__(None, None, None)
    with SyncState.open(tmp_path) as again:  # free once the first one is closed
        assert again.ledger() == {}
