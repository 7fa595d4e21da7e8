"""Reads of the replication state are scoped: a robot granted ``team/*`` sees the tasks (and
logs) of ``team/`` repositories only — not other repositories' names and digests."""

from __future__ import annotations

import httpx

from registry.auth.passwords import hash_password
from registry.meta.accounts import GrantRow
from tests.api.harness import InProcessApi
from tests.api.helpers import created_id, make_policy, make_registry

ROBOT, ROBOT_PASSWORD = "robot$team", "robot-secret-1"
EXECUTIONS = "/replication/executions"


def _task(repo: str, digest: str) -> dict[str, object]:
    return {
        "status": "Succeed",
        "src_repository": repo,
        "dst_repository": f"mirror/{repo}",
        "src_resource": f"{repo}:1.0",
        "dst_resource": f"mirror/{repo}:1.0",
        "digest": digest,
        "log": f"copied {repo}@{digest}",
    }


def _setup(api: InProcessApi, c: httpx.Client, *, push: bool) -> int:
    async def robot() -> None:
        grants = [GrantRow("team/*", frozenset({"pull"}))]
        await api.ctx.registry_ctx.accounts.create(
            ROBOT, "robot", hash_password(ROBOT_PASSWORD), grants
        )

    api.call(robot)
    remote = make_registry(c, "hub")
    pid = make_policy(c, "p", None if push else remote, **({"dest": remote} if push else {}))
    eid = created_id(c.post(EXECUTIONS, json={"policy_id": pid}))
    if push:  # local team/app -> remote mirror/team/app
        rows = [_task("team/app", "sha256:" + "a" * 64), _task("secret/db", "sha256:" + "b" * 64)]
    else:  # remote -> local: the destination is this registry's repository
        rows = [_task("x", "sha256:" + "a" * 64), _task("y", "sha256:" + "b" * 64)]
        rows[0]["dst_repository"], rows[1]["dst_repository"] = "team/x", "secret/y"
    api.add_tasks(eid, rows)
    return eid


def test_a_scoped_robot_sees_only_tasks_of_repositories_it_may_pull(api: InProcessApi) -> None:
    with api.client() as c:
        eid = _setup(api, c, push=True)
        everything = c.get(f"{EXECUTIONS}/{eid}/tasks").json()
    assert len(everything) == 2
    with api.client(ROBOT, ROBOT_PASSWORD) as robot:
        r = robot.get(f"{EXECUTIONS}/{eid}/tasks")
        assert r.status_code == 200 and r.headers["x-total-count"] == "1", r.text
        seen = r.json()
        assert [t["src_resource"] for t in seen] == ["team/app:1.0"], seen
        assert "secret" not in r.text and "b" * 64 not in r.text
        hidden = next(t["id"] for t in everything if t["src_resource"].startswith("secret"))
        assert robot.get(f"{EXECUTIONS}/{eid}/tasks/{seen[0]['id']}/log").status_code == 200
        r = robot.get(f"{EXECUTIONS}/{eid}/tasks/{hidden}/log")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NOT_FOUND"
        assert "b" * 64 not in r.text


def test_remote_to_remote_tasks_are_for_admins_only(api: InProcessApi) -> None:
    with api.client() as c:
        a, b = make_registry(c, "a"), make_registry(c, "b")
        body = {"name": "r2r", "src_registry": {"id": a}, "dest_registry": {"id": b}}
        pid = created_id(c.post("/replication/policies", json=body))
        eid = created_id(c.post(EXECUTIONS, json={"policy_id": pid}))
        api.add_tasks(eid, [_task("team/app", "sha256:" + "a" * 64)])
        assert len(c.get(f"{EXECUTIONS}/{eid}/tasks").json()) == 1

    async def robot() -> None:
        grants = [GrantRow("*", frozenset({"pull"}))]
        await api.ctx.registry_ctx.accounts.create(
            ROBOT, "robot", hash_password(ROBOT_PASSWORD), grants
        )

    api.call(robot)
    with api.client(ROBOT, ROBOT_PASSWORD) as r:
        assert r.get(f"{EXECUTIONS}/{eid}/tasks").json() == []


def test_a_pull_policy_is_scoped_by_its_local_destination(api: InProcessApi) -> None:
    with api.client() as c:
        eid = _setup(api, c, push=False)
    with api.client(ROBOT, ROBOT_PASSWORD) as robot:
        seen = robot.get(f"{EXECUTIONS}/{eid}/tasks").json()
    assert [t["dst_resource"] for t in seen] == ["mirror/x:1.0"], seen
