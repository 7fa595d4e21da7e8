"""Data written by the release before versioned migrations (9420392), served after the upgrade:
a real ``seawall serve`` of this code starts on a copy of its data directory (SQLite) or of its
PostgreSQL dump (with the directory's keys and blobs), upgrades the schema on start, and serves
every artifact (by tag and by digest, bytes and digests as they were), account, endpoint,
policy and webhook it had; a policy of that release runs. ``seawall db`` reads and upgrades the
same data; a database newer than this code is refused in one line by every command."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import text

from engine.state.secrets import SecretBox, load_or_create_secret_key
from registry.meta.db import create_engine
from seawall.migrations import HEAD, upgrade_database
from tests.migrations.support import expected, old_database, unpack
from tests.postgres.helpers import eventually
from tests.replication.support import api, run
from tests.support.client import ACCEPT, client
from tests.support.postgres import PostgresCluster
from tests.support.server import SeawallProcess, free_port

OLD = expected()
ADMIN = OLD["admin_password"]
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",)


@dataclass
class Upgraded:
    kind: str
    url: str
    data: Path
    server: SeawallProcess
    made: dict[str, Any]
    cluster: PostgresCluster | None

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """``sql``'s rows as text (the database as it is, for what no API shows)."""
        if self.cluster is None:
            with sqlite3.connect(self.data / "seawall.db") as db:
                return [tuple(str(v) for v in row) for row in db.execute(sql)]
        out = self.cluster.psql(sql, self.url.rsplit("/", 1)[1])
        return [tuple(line.split("|")) for line in out.splitlines() if line]


@pytest.fixture(params=["sqlite", "postgresql"])
def upgraded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Upgraded]:
    kind = str(request.param)
    url = old_database(kind, tmp_path, request)
    env = {"SEAWALL_DATABASE_URL": url} if kind == "postgresql" else {}
    cluster = request.getfixturevalue("postgres_cluster") if kind == "postgresql" else None
    server = SeawallProcess(tmp_path / "data", admin_password=ADMIN, extra_env=env)
    server.start(timeout_s=90)
    try:
        yield Upgraded(kind, url, tmp_path / "data", server, OLD[kind], cluster)
    finally:
        server.stop()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_old_data_is_served_after_the_upgrade(upgraded: Upgraded) -> None:
    assert "database schema made before migrations upgraded (stamped 0001)" in (
        upgraded.server.log()
    )
    assert upgraded.rows("SELECT version_num FROM alembic_version") == [(HEAD,)]
    served_artifacts(upgraded)
    kept_accounts(upgraded)
    kept_endpoints_policies_and_webhooks(upgraded)
    old_policy_runs(upgraded)


def served_artifacts(up: Upgraded) -> None:
    artifacts = up.made["artifacts"]
    with client(up.server.url, "admin", ADMIN) as c:
        repos = c.get("/v2/_catalog").json()["repositories"]
        assert sorted(repos) == sorted({a["repository"] for a in artifacts})
        for a in artifacts:
            repo, digest = a["repository"], a["digest"]
            assert sorted(c.get(f"/v2/{repo}/tags/list").json()["tags"]) == sorted(
                x["tag"] for x in artifacts if x["repository"] == repo
            )
            by_tag = c.get(f"/v2/{repo}/manifests/{a['tag']}", headers={"Accept": ACCEPT})
            assert by_tag.status_code == 200, (a, by_tag.text)
            assert by_tag.headers["Docker-Content-Digest"] == digest == sha256(by_tag.content)
            assert by_tag.headers["Content-Type"] == a["media_type"]
            pulled(c, repo, digest)
        app = next(a for a in artifacts if (a["repository"], a["tag"]) == ("library/app", "1.0"))
        referrers = c.get(f"/v2/library/app/referrers/{app['digest']}").json()["manifests"]
        assert [r["digest"] for r in referrers] == [up.made["sbom"]]


def pulled(c: httpx.Client, repo: str, digest: str) -> None:
    """The manifest ``digest`` by digest, and everything it references, bytes as their
    digests say."""
    r = c.get(f"/v2/{repo}/manifests/{digest}", headers={"Accept": ACCEPT})
    assert r.status_code == 200 and sha256(r.content) == digest, (repo, digest, r.status_code)
    doc = r.json()
    if doc.get("mediaType") in INDEX_TYPES:
        for child in doc["manifests"]:
            pulled(c, repo, child["digest"])
        return
    for blob in [doc["config"], *doc["layers"]]:
        got = c.get(f"/v2/{repo}/blobs/{blob['digest']}", follow_redirects=True)
        assert got.status_code == 200 and sha256(got.content) == blob["digest"], blob


def kept_accounts(up: Upgraded) -> None:
    """The user and the robot log in with what they had, with the rights they had."""
    ((alice, password),) = OLD["users"].items()
    with client(up.server.url, alice, password) as c:
        assert c.get("/v2/library/app/tags/list").status_code == 200
    robot = OLD["robots"][0]
    with client(up.server.url, robot, up.made["robot_secret"]) as c:
        assert c.get("/v2/team/tool/tags/list").status_code == 200
        assert c.get("/v2/library/app/tags/list").status_code in (401, 403)


def kept_endpoints_policies_and_webhooks(up: Upgraded) -> None:
    with api(up.server.url, ADMIN) as a:
        endpoints = {r["name"]: r for r in a.get("/registries").json()}
        keys = {name: r["credential"]["access_key"] for name, r in endpoints.items()}
        assert keys == OLD["endpoints"]
        policies = {p["name"]: p for p in a.get("/replication/policies").json()}
        assert sorted(policies) == sorted(OLD["policies"])
        nightly = policies["nightly"]
        assert nightly["trigger"]["type"] == "scheduled"
        assert nightly["trigger"]["trigger_settings"]["cron"] == "0 0 3 * * *"
        assert nightly["dest_registry"]["name"] == "far"
        for name, hooks in OLD["webhooks"].items():
            found = a.get(f"/replication/policies/{policies[name]['id']}/webhooks").json()
            assert sorted(h["name"] for h in found) == sorted(hooks)
    box = SecretBox(load_or_create_secret_key(up.data / "secrets.key"))
    sealed = up.rows("SELECT name, access_secret_encrypted FROM registry_endpoint")
    assert {row[0]: box.decrypt(row[1]) for row in sealed} == OLD["endpoint_secrets"]

    def webhook_auth() -> list[tuple[str, ...]]:  # sealed by this code's notifier on start
        return up.rows("SELECT auth_header, auth_header_encrypted FROM notify_webhook")

    ((clear, sealed_auth),) = eventually(webhook_auth, lambda rows: rows[0][1] != "", 30)
    assert clear == "" and box.decrypt(sealed_auth) == OLD["webhook_auth"]


def old_policy_runs(up: Upgraded) -> None:
    """The old ``mirror`` policy, its endpoint pointed at this server, runs to success: what
    the old run copied (and its ledger says) is found identical."""
    with api(up.server.url, ADMIN) as a:
        endpoints = {r["name"]: r["id"] for r in a.get("/registries").json()}
        r = a.put(
            f"/registries/{endpoints['self']}",
            json={"url": up.server.url, "access_secret": ADMIN},
        )
        assert r.status_code == 200, r.text
        policies = {p["name"]: p["id"] for p in a.get("/replication/policies").json()}
        execution, tasks = run(a, policies["mirror"], timeout_s=120)
    assert execution["status"] == "Succeed", (execution, tasks)
    assert tasks and {t["status"] for t in tasks} == {"Succeed"}


# ------------------------------------------------------------------------ the command line


def seawall(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    return subprocess.run(
        [sys.executable, "-m", "seawall", *args, "--data-dir", str(data)],
        env={**clean, "SEAWALL_ADMIN_PASSWORD": ADMIN, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_current_and_upgrade(tmp_path: Path) -> None:
    data = unpack(tmp_path)
    current = seawall(data, "db", "current")
    assert (current.returncode, current.stdout) == (
        0,
        "un-versioned (made before migrations; holds the schema of revision 0001): "
        f"`seawall db upgrade` brings it to revision {HEAD}\n",
    ), current.stderr
    done = seawall(data, "db", "upgrade")
    assert (done.returncode, done.stdout) == (
        0,
        f"database schema made before migrations upgraded (stamped 0001) to {HEAD}\n",
    ), done.stderr
    now = seawall(data, "db", "current")
    assert (now.returncode, now.stdout) == (0, f"revision {HEAD} (head: up to date)\n")


def test_db_upgrade_takes_the_database_url_as_serve_does(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = old_database("postgresql", tmp_path, request)
    done = seawall(tmp_path / "data", "db", "upgrade", env={"SEAWALL_DATABASE_URL": url})
    assert (done.returncode, done.stdout) == (
        0,
        f"database schema made before migrations upgraded (stamped 0001) to {HEAD}\n",
    ), done.stderr


def test_a_newer_database_is_refused_in_one_line(tmp_path: Path) -> None:
    data = unpack(tmp_path)
    anyio.run(_stamp, f"sqlite:///{data / 'seawall.db'}", "0999")
    line = (
        f"the database schema is at revision 0999, newer than this Seawall knows (its newest "
        f"is {HEAD}): upgrade Seawall, or restore the backup taken before the newer version "
        "upgraded the database"
    )
    for args, prefix in [
        (("serve", "--port", str(free_port())), "seawall: "),
        (("db", "upgrade"), "seawall db: "),
    ]:
        out = seawall(data, *args)
        assert (out.returncode, out.stderr) == (1, f"{prefix}{line}\n"), (args, out.stdout)
    current = seawall(data, "db", "current")
    assert (current.returncode, current.stdout) == (1, f"{line}\n")
    with sqlite3.connect(data / "seawall.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0999",)]


async def _stamp(url: str, revision: str) -> None:
    """The database upgraded, then stamped at ``revision`` (as a newer Seawall would leave it)."""
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()


def test_downgrade_is_refused_and_a_missing_database_is_not_made(tmp_path: Path) -> None:
    down = seawall(tmp_path, "db", "downgrade", "0001")
    assert (down.returncode, down.stderr) == (
        1,
        "seawall db: downgrading the database schema is not supported: to go back to an older "
        "Seawall, restore the backup taken before the upgrade\n",
    )
    missing = seawall(tmp_path / "nowhere", "db", "upgrade")
    assert missing.returncode == 1
    assert missing.stderr.startswith("seawall db: no Seawall database at ")
    assert not (tmp_path / "nowhere").exists()
