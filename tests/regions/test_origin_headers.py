"""Tag origins and tombstones at one real Seawall (region ``x``), from the outside: what a
client push records, what a replicating account may carry (``Seawall-Origin``), who may not
and what is refused; a replicated write that changes nothing announces nothing; a deletion's
tombstone in the listings (paged once each) and on a 404; a tag set again loses it."""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from seawall.cli import main
from tests.support.client import OCI_MANIFEST, client, push_image
from tests.support.server import SeawallProcess

LIST = {"Accept": "application/vnd.seawall.tag-list.v1+json"}
OLD = "region=y; at=2020-01-02T03:04:05.000006Z"


@pytest.fixture(scope="module")
def x(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    proc = SeawallProcess(
        tmp_path_factory.mktemp("origins") / "x", extra_env={"SEAWALL_DR__REGION_NAME": "x"}
    )
    try:
        yield proc.start(timeout_s=120)
    finally:
        proc.kill()


def cli(proc: SeawallProcess, *args: str) -> str:
    """An account command (``seawall user|robot add``) on the server's data directory."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("SEAWALL_")]:
            mp.delenv(key)
        with contextlib.redirect_stdout(out):
            assert main([*args, "--data-dir", str(proc.data_dir)]) == 0
    return out.getvalue()


def events(proc: SeawallProcess) -> int:
    with contextlib.closing(sqlite3.connect(Path(proc.data_dir) / "seawall.db")) as db:
        return int(db.execute("SELECT count(*) FROM event").fetchone()[0])


def put(c: httpx.Client, repo: str, tag: str, body: bytes, origin: str | None) -> httpx.Response:
    headers = {"Content-Type": OCI_MANIFEST}
    if origin is not None:
        headers["Seawall-Origin"] = origin
    return c.put(f"/v2/{repo}/manifests/{tag}", content=body, headers=headers)


def listing(c: httpx.Client, repo: str, **params: Any) -> dict[str, Any]:
    r = c.get(f"/v2/{repo}/tags/list", headers=LIST, params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_origins_carried_kept_and_refused(x: SeawallProcess) -> None:
    repo = "o/app"
    with client(x.url, "admin", x.admin_password) as admin:
        digest, body = push_image(admin, repo, "mine", seed="one")
        origin = listing(admin, repo)["manifests"]["mine"]["origin"]
        assert origin["region"] == "x"  # a client's push: this region, now
        assert put(admin, repo, "theirs", body, OLD).status_code == 201
        found = listing(admin, repo)["manifests"]["theirs"]["origin"]
        assert found == {"region": "y", "at": "2020-01-02T03:04:05.000006Z"}
        r = admin.head(f"/v2/{repo}/manifests/theirs", headers={"Accept": OCI_MANIFEST})
        assert r.headers["Seawall-Origin"] == OLD
        before = events(x)  # the same write again changes nothing: no event, no run anywhere
        assert put(admin, repo, "theirs", body, OLD).status_code == 201
        assert events(x) == before
        assert put(admin, repo, "theirs", body, None).status_code == 201  # a client's: as ever
        assert events(x) == before + 1
        for bad in ("region=Y; at=2020-01-02T03:04:05Z", "at=2020", "x" * 1000):
            r = put(admin, repo, "bad", body, bad)
            assert r.status_code == 400 and r.json()["errors"][0]["code"] == "UNSUPPORTED", r.text
        ahead = datetime.now(UTC) + timedelta(hours=2)
        r = put(admin, repo, "bad", body, f"region=y; at={ahead:%Y-%m-%dT%H:%M:%S.%fZ}")
        assert r.status_code == 400
        assert digest
    cli(x, "user", "add", "dev", "--password", "dev-password-1", "--allow", "o/*=*")
    with client(x.url, "dev", "dev-password-1") as dev:
        r = put(dev, repo, "dev", body, OLD)
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == "DENIED", r.text
        assert put(dev, repo, "dev", body, None).status_code == 201
    secret = cli(x, "robot", "add", "rep", "--allow", "o/*=*").splitlines()[-1].strip()
    with client(x.url, "robot$rep", secret) as robot:
        assert put(robot, repo, "robot", body, OLD).status_code == 201


def test_a_deletion_leaves_a_tombstone_until_the_tag_is_set_again(x: SeawallProcess) -> None:
    repo = "o/gone"
    with client(x.url, "admin", x.admin_password) as admin:
        digest, body = push_image(admin, repo, "keep", seed="two")
        for tag in ("a", "b", "c"):
            assert put(admin, repo, tag, body, None).status_code == 201
        r = admin.delete(f"/v2/{repo}/manifests/a", headers={"Seawall-Origin": OLD})
        assert r.status_code == 202
        assert admin.delete(f"/v2/{repo}/manifests/c").status_code == 202
        stones = listing(admin, repo)["tombstones"]
        assert stones["a"] == {"digest": digest, "region": "y", "at": "2020-01-02T03:04:05.000006Z"}
        assert stones["c"]["region"] == "x" and set(stones) == {"a", "c"}
        r = admin.head(f"/v2/{repo}/manifests/a", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 404
        assert r.headers["Seawall-Tombstone"] == f"digest={digest}; {OLD}"
        # pages of one tag: each tombstone once, on the page whose range holds its name
        seen: dict[str, Any] = {}
        page = listing(admin, repo, n=1)
        pages = [page]
        while len(page["tags"]) == 1:
            page = listing(admin, repo, n=1, last=page["tags"][0])
            pages.append(page)
        for one in pages:
            assert not set(one["tombstones"]) & set(seen)
            seen.update(one["tombstones"])
        assert set(seen) == {"a", "c"}
        assert put(admin, repo, "a", body, None).status_code == 201  # set again
        assert set(listing(admin, repo)["tombstones"]) == {"c"}
