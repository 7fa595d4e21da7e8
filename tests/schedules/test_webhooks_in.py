"""Incoming webhooks: a remote registry's push triggers a pull-based policy at once —
Harbor's payloads (default and CloudEvents), CNCF distribution's own notifications (a real
distribution calling Seawall), a generic form; authenticated by the endpoint's secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.replication.support import add_policy, api, digest_of, dumps
from tests.schedules.test_events import eventually, executions
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

SECRET = "hook-secret-0123456789"
EVENT = {"type": "event_based"}


def add_source(a: httpx.Client, name: str, url: str, secret: str = SECRET) -> int:
    r = a.post(
        "/registries",
        json={"name": name, "type": "docker-registry", "url": url, "webhook_secret": secret},
    )
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def harbor_default(repo: str, digest: str, tag: str) -> dict[str, Any]:
    namespace, name = repo.split("/", 1)
    return {
        "type": "PUSH_ARTIFACT",
        "occur_at": 1700000000,
        "operator": "ci-robot",
        "event_data": {
            "resources": [
                {"digest": digest, "tag": tag, "resource_url": f"harbor.example/{repo}:{tag}"}
            ],
            "repository": {
                "date_created": 1700000000,
                "name": name,
                "namespace": namespace,
                "repo_full_name": repo,
                "repo_type": "private",
            },
        },
    }


def harbor_cloudevent(repo: str, digest: str, tag: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "4b1a7e0f-3f5c-4b0e-9d7f-2f0b8d2c1e11",
        "source": "/projects/1/webhook/policies/1",
        "type": "harbor.artifact.pushed",
        "datacontenttype": "application/json",
        "time": "2026-11-23T10:00:00Z",
        "operator": "ci-robot",
        "data": harbor_default(repo, digest, tag)["event_data"],
    }


def test_harbor_webhooks_trigger_a_pull_policy(local: SeawallProcess, tmp_path: Path) -> None:
    remote = DistributionProcess(tmp_path / "remote").start()
    try:
        with (
            api(local.url, local.admin_password) as a,
            httpx.Client(base_url=remote.url) as r,
            client(local.url, "admin", local.admin_password) as c,
        ):
            src = add_source(a, "harbor-ish", remote.url)
            pid = add_policy(a, "pull-on-push", src=src, trigger=EVENT)
            web, _ = push_image(r, "library/web", "1.0", seed="web")
            db, _ = push_image(r, "library/db", "2.0", seed="db")
            hook = f"/registries/{src}/webhook"
            # Harbor's default format, the secret as Harbor's auth_header sends it (bare)
            got = a.post(
                hook,
                json=harbor_default("library/web", web, "1.0"),
                headers={"Authorization": SECRET},
                auth=None,
            )
            assert got.status_code == 202, got.text
            assert got.json()["events"] == 1 and got.json()["executions"], got.text
            eventually(lambda: digest_of(c, "library/web", "1.0") == web, what="web")
            # CloudEvents, as a bearer token
            got = a.post(
                hook,
                json=harbor_cloudevent("library/db", db, "2.0"),
                headers={"Authorization": f"Bearer {SECRET}"},
                auth=None,
            )
            assert got.status_code == 202, got.text
            eventually(lambda: digest_of(c, "library/db", "2.0") == db, what="db")
            runs = executions(a, pid)
            assert runs and all(x["trigger"] == "event_based" for x in runs), dumps(runs)
    finally:
        remote.stop()


def test_distribution_notifications_trigger_a_pull_policy(
    local: SeawallProcess, tmp_path: Path
) -> None:
    """A real CNCF distribution configured to notify Seawall of its pushes."""
    remote = DistributionProcess(tmp_path / "remote")
    with api(local.url, local.admin_password) as a:
        src = add_source(a, "dist", remote.url)
        add_policy(
            a, "mirror-apps", src=src, trigger=EVENT, filters=[{"type": "name", "value": "apps/**"}]
        )
    remote.extra_config = {
        "notifications": {
            "endpoints": [
                {
                    "name": "seawall",
                    "url": f"{local.url}/api/v2.0/registries/{src}/webhook",
                    "headers": {"Authorization": [f"Bearer {SECRET}"]},
                    "timeout": "2s",
                    "threshold": 3,
                    "backoff": "1s",
                }
            ]
        }
    }
    remote.start()
    try:
        with (
            httpx.Client(base_url=remote.url) as r,
            client(local.url, "admin", local.admin_password) as c,
        ):
            digest, _ = push_image(r, "apps/api", "v7", seed="api")
            push_image(r, "scratch/tmp", "x", seed="tmp")
            eventually(lambda: digest_of(c, "apps/api", "v7") == digest, what="apps/api:v7")
            assert digest_of(c, "scratch/tmp", "x") is None  # outside the policy's filter
    finally:
        remote.stop()


def test_webhook_auth_and_bad_payloads(local: SeawallProcess) -> None:
    with api(local.url, local.admin_password) as a:
        with_secret = add_source(a, "with-secret", "http://127.0.0.1:9")
        without = add_source(a, "without", "http://127.0.0.1:9", secret="")
        add_policy(a, "p", src=with_secret, trigger=EVENT)
        registry = a.get(f"/registries/{with_secret}").json()
        assert registry["webhook_secret"] == "*****"  # never returned
        hook = f"/registries/{with_secret}/webhook"
        generic = {"repository": "team/app", "tag": "1", "action": "push"}
        ok = {"Authorization": SECRET}

        def post(path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
            return a.post(path, headers=headers, auth=None, **kw)

        assert post(hook, {}, json=generic).status_code == 401
        assert post(hook, {"Authorization": "Bearer nope"}, json=generic).status_code == 401
        off = post(f"/registries/{without}/webhook", ok, json=generic)
        assert off.status_code == 401 and "webhook_secret" in off.text
        assert post("/registries/999/webhook", ok, json=generic).status_code == 404
        bad = post(hook, ok, content=b"{not json")
        assert bad.status_code == 400 and "payload" in bad.text
        odd = post(hook, ok, json={"hello": "world"})
        assert odd.status_code == 400 and "unrecognised payload" in odd.text
        pulled = {**harbor_default("team/app", "sha256:" + "0" * 64, "1"), "type": "PULL_ARTIFACT"}
        got = post(hook, ok, json=pulled)
        assert got.status_code == 202 and got.json() == {"events": 0, "executions": []}
        got = post(hook, ok, json=generic)
        assert got.status_code == 202 and len(got.json()["executions"]) == 1, got.text
        assert post(hook, ok, json={"repository": "x", "action": "zap"}).status_code == 400
        short = a.put(f"/registries/{without}", json={"webhook_secret": "short"})
        assert short.status_code == 400 and "16 characters" in short.text
