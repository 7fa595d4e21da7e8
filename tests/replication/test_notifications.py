"""Outgoing webhooks from a real ``seawall serve``: a push run to CNCF distribution announces
itself to a local receiver in Harbor's default JSON and in CloudEvents, with the Authorization
header; 500s are retried with backoff and the delivery log shows every attempt; 4xx answers
and endless 500s end as Failed; pending deliveries survive a kill -9 and a restart."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from seawall import cli, replication_cli
from tests.replication.support import add_endpoint, add_policy, api, dumps, run, start, wait
from tests.replication.webhook_receiver import Receiver
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

FAST_RETRIES = {
    "SEAWALL_NOTIFY_BACKOFF_SECONDS": "0.2",
    "SEAWALL_NOTIFY_POLL_SECONDS": "0.2",
    "SEAWALL_NOTIFY_MAX_ATTEMPTS": "4",
    "SEAWALL_NOTIFY_EXTERNAL_URL": "https://seawall.example.com:5000",
}
ALL_EVENTS = ("run_started", "artifact_replicated", "artifact_replicated", "run_finished")


def add_hook(a: httpx.Client, pid: int, name: str, address: str, **extra: Any) -> int:
    body = {"name": name, "address": address, **extra}
    r = a.post(f"/replication/policies/{pid}/webhooks", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


def log_of(a: httpx.Client, pid: int, wid: int) -> list[dict[str, Any]]:
    r = a.get(f"/replication/policies/{pid}/webhooks/{wid}/deliveries", params={"page_size": 100})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()
    return items


def settled(a: httpx.Client, pid: int, wid: int, count: int) -> list[dict[str, Any]]:
    """The webhook's delivery log once it holds ``count`` deliveries, none of them Pending."""
    deadline = time.monotonic() + 30
    log: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        log = log_of(a, pid, wid)
        if len(log) == count and all(d["status"] != "Pending" for d in log):
            return log
        time.sleep(0.1)
    raise AssertionError(f"deliveries of webhook {wid} did not settle: {dumps(log)}")


def by_event(bodies: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for b in bodies:
        out.setdefault(b[key]["seawall"]["event"], []).append(b)
    return out


def test_webhooks_arrive_in_both_formats_and_500s_are_retried(
    fresh_seawall: SeawallProcess, dist: DistributionProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    fresh_seawall.extra_env.update(FAST_RETRIES)
    local = fresh_seawall.start()
    receiver = Receiver(fail_first={"/ce": 2}, always={"/gone": 410, "/down": 503})
    with (
        receiver,
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        digests = {
            tag: push_image(c, "team/app", tag, layers=2, seed=f"n{tag}")[0]
            for tag in ("1.0", "2.0")
        }
        dest = add_endpoint(a, "dist", dist.url)
        pid = add_policy(
            a,
            "to-dist",
            dest=dest,
            dest_namespace="mirror",
            filters=[{"type": "name", "value": "team/**"}],
            description="team images to the mirror",
        )
        plain = add_hook(a, pid, "plain", receiver.url("/plain"), auth_header="Bearer one")
        ce = add_hook(
            a, pid, "ce", receiver.url("/ce"), format="cloudevents", auth_header="Token two"
        )
        finished = add_hook(
            a, pid, "finished", receiver.url("/finished"), event_types=["REPLICATION_FINISHED"]
        )
        gone = add_hook(a, pid, "gone", receiver.url("/gone"), event_types=["REPLICATION_STARTED"])
        down = add_hook(a, pid, "down", receiver.url("/down"), event_types=["REPLICATION_STARTED"])
        add_hook(a, pid, "off", receiver.url("/off"), enabled=False)

        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed" and ex["succeed"] == 2, dumps([ex, tasks])
        eid = ex["id"]

        # ---- the delivery log: everything settles; 500s were retried, 4xx were not
        plain_log = settled(a, pid, plain, 4)
        ce_log = settled(a, pid, ce, 4)
        assert [d["status"] for d in plain_log + ce_log] == ["Success"] * 8, dumps(ce_log)
        assert all(d["attempts"] == 1 for d in plain_log)
        retried = [d for d in ce_log if d["attempts"] > 1]
        assert sum(d["attempts"] - 1 for d in ce_log) == 2, dumps(ce_log)
        for d in retried:
            codes = [attempt["http_status"] for attempt in d["attempt_log"]]
            assert codes == [500] * (d["attempts"] - 1) + [200], dumps(d)
            assert d["attempt_log"][0]["error"].startswith("HTTP 500")
            assert d["last_http_status"] == 200 and d["last_error"] == ""
        [finished_one] = settled(a, pid, finished, 1)
        assert finished_one["event"] == "run_finished" and finished_one["status"] == "Success"
        [gone_one] = settled(a, pid, gone, 1)
        assert (gone_one["status"], gone_one["attempts"], gone_one["last_http_status"]) == (
            "Failed",
            1,
            410,
        )
        [down_one] = settled(a, pid, down, 1)
        assert down_one["status"] == "Failed" and down_one["attempts"] == 4  # the max
        assert [x["http_status"] for x in down_one["attempt_log"]] == [503] * 4
        assert receiver.at("/off") == []
        every = a.get(f"/replication/policies/{pid}/deliveries", params={"page_size": 100})
        assert every.headers["X-Total-Count"] == "11"
        for text in (every.text, a.get(f"/replication/policies/{pid}/webhooks").text):
            assert "Bearer one" not in text and "Token two" not in text

        # ---- the CLI shows the log
        argv = ["policy", "deliveries", "to-dist", "--webhook", "ce"]
        args = cli._parser().parse_args(
            [*argv, "--url", local.url, "--password", local.admin_password]
        )
        capsys.readouterr()
        assert replication_cli.run(args) == 0
        out = capsys.readouterr().out
        assert "run_started" in out and "artifact_replicated" in out and "Success" in out
        assert out.count("\n") == 5  # header and four deliveries

    # ---- Harbor's default format, with the Authorization header
    got = receiver.at("/plain")
    assert len(got) == 4
    assert all(r.headers["authorization"] == "Bearer one" for r in got)
    assert all(r.headers["content-type"] == "application/json" for r in got)
    bodies = [r.json() for r in got]
    assert sorted(b["event_data"]["seawall"]["event"] for b in bodies) == sorted(ALL_EVENTS)
    events = by_event(bodies, "event_data")
    for b in bodies:
        assert b["type"] == "REPLICATION" and b["operator"] == "MANUAL"
        assert isinstance(b["occur_at"], int) and abs(b["occur_at"] - time.time()) < 300
        rep, sw = b["event_data"]["replication"], b["event_data"]["seawall"]
        assert rep["harbor_hostname"] == "seawall.example.com"
        assert rep["trigger_type"] == "MANUAL" and rep["override_mode"] is True
        assert rep["description"] == "team images to the mirror"
        assert rep["dest_resource"]["registry_name"] == "dist"
        assert rep["dest_resource"]["registry_type"] == "docker-registry"
        assert rep["dest_resource"]["endpoint"] == dist.url
        assert rep["dest_resource"]["namespace"] == "mirror"
        assert rep["src_resource"]["registry_type"] == "seawall"
        assert rep["src_resource"]["endpoint"] == "https://seawall.example.com:5000"
        assert sw["policy"] == {"id": pid, "name": "to-dist"}
        assert sw["execution"]["id"] == eid and sw["execution"]["trigger"] == "manual"
    [started] = events["run_started"]
    assert started["event_data"]["replication"]["job_status"] == "Running"
    assert started["event_data"]["seawall"]["event_type"] == "REPLICATION_STARTED"
    assert started["event_data"]["seawall"]["execution"]["status"] == "InProgress"
    artifacts = {
        b["event_data"]["seawall"]["artifact"]["tags"][0]: b for b in events["artifact_replicated"]
    }
    assert set(artifacts) == {"1.0", "2.0"}
    for tag, b in artifacts.items():
        rep, art = b["event_data"]["replication"], b["event_data"]["seawall"]["artifact"]
        assert rep["job_status"] == "Success" and rep["src_resource"]["namespace"] == "team"
        assert rep["successful_artifact"] == [
            {"type": "artifact", "status": "Succeed", "name_tag": f"app:{tag}"}
        ]
        assert art["digest"] == digests[tag] and art["outcome"] == "copied"
        assert art["src_repository"] == "team/app" and art["dst_repository"] == "mirror/app"
        assert art["operation"] == "copy" and art["bytes_copied"] > 0
    [done] = events["run_finished"]
    rep, sw = done["event_data"]["replication"], done["event_data"]["seawall"]
    assert rep["job_status"] == "Success" and sw["event_type"] == "REPLICATION_FINISHED"
    assert sorted(x["name_tag"] for x in rep["successful_artifact"]) == ["app:1.0", "app:2.0"]
    assert "failed_artifact" not in rep
    assert sw["execution"]["status"] == "Succeed" and sw["execution"]["succeed"] == 2
    assert sw["execution"]["end_time"].endswith("Z")

    # ---- CloudEvents, retried with the same bytes
    got = receiver.at("/ce")
    assert [r.answered for r in got].count(500) == 2 and len(got) == 6
    assert all(r.headers["authorization"] == "Token two" for r in got)
    assert all(r.headers["content-type"] == "application/cloudevents+json" for r in got)
    first_tries = {r.body for r in got if r.answered == 500}
    assert first_tries <= {r.body for r in got if r.answered == 200}  # a retry sends the same
    bodies = [r.json() for r in got if r.answered == 200]
    assert len({b["id"] for b in bodies}) == 4
    for b in bodies:
        assert b["specversion"] == "1.0" and b["type"] == "harbor.replication.status.changed"
        assert b["source"] == f"/api/v2.0/replication/policies/{pid}/webhooks/{ce}"
        assert b["datacontenttype"] == "application/json" and b["time"].endswith("Z")
        assert b["operator"] == "MANUAL" and b["seawallevent"] == b["data"]["seawall"]["event"]
        assert b["data"]["seawall"]["execution"]["id"] == eid
        assert b["data"]["seawall"]["event_id"] == b["id"]
    ce_events = by_event(bodies, "data")
    assert sorted(ce_events) == ["artifact_replicated", "run_finished", "run_started"]
    digests_seen = {
        b["data"]["seawall"]["artifact"]["digest"] for b in ce_events["artifact_replicated"]
    }
    assert digests_seen == set(digests.values())

    # ---- only the subscribed event type
    [only] = receiver.at("/finished")
    assert only.json()["event_data"]["seawall"]["event"] == "run_finished"
    assert "authorization" not in only.headers


def test_a_failed_run_notifies_run_failed_with_the_failed_artifacts(
    fresh_seawall: SeawallProcess, tmp_path: Path
) -> None:
    """The source refuses the credentials: listing it fails, the run fails."""
    fresh_seawall.extra_env.update(FAST_RETRIES)
    local = fresh_seawall.start()
    with Receiver() as receiver, api(local.url, local.admin_password) as a:
        wrong = add_endpoint(a, "wrong", local.url, "seawall", "admin", "not-the-password")
        pid = add_policy(a, "broken", src=wrong)
        hook = add_hook(
            a, pid, "alerts", receiver.url("/alerts"), event_types=["REPLICATION_FAILED"]
        )
        ex = wait(a, start(a, pid))
        assert ex["status"] == "Failed", dumps(ex)
        [d] = settled(a, pid, hook, 1)
        assert d["event"] == "run_failed" and d["event_type"] == "REPLICATION_FAILED"
        assert d["execution_id"] == ex["id"]
    [got] = receiver.at("/alerts")
    body = got.json()
    rep, sw = body["event_data"]["replication"], body["event_data"]["seawall"]
    assert rep["job_status"] == "Error" and sw["event"] == "run_failed"
    assert sw["execution"]["status"] == "Failed" and sw["execution"]["failed"] >= 1
    assert rep["failed_artifact"][0]["status"] == "Failed"
    assert "listing failed" in rep["failed_artifact"][0]["fail_reason"]


@pytest.mark.slow
def test_pending_deliveries_survive_a_restart(fresh_seawall: SeawallProcess) -> None:
    fresh_seawall.extra_env.update(
        {**FAST_RETRIES, "SEAWALL_NOTIFY_BACKOFF_SECONDS": "3", "SEAWALL_NOTIFY_MAX_ATTEMPTS": "6"}
    )
    local = fresh_seawall.start()
    receiver = Receiver(always={"/hook": 503})
    with receiver, api(local.url, local.admin_password) as a:
        itself = add_endpoint(a, "self", local.url, "seawall", "admin", local.admin_password)
        pid = add_policy(
            a, "nothing", dest=itself, filters=[{"type": "name", "value": "no-such/**"}]
        )
        hook = add_hook(a, pid, "h", receiver.url("/hook"))
        ex = wait(a, start(a, pid))
        assert ex["status"] == "Succeed", dumps(ex)
        receiver.wait(lambda: len(receiver.at("/hook")) >= 2, what="two first attempts")
        deadline = time.monotonic() + 10
        while not all(d["attempts"] >= 1 for d in log_of(a, pid, hook)):
            assert time.monotonic() < deadline, dumps(log_of(a, pid, hook))
            time.sleep(0.05)
        local.kill()  # kill -9 while both deliveries wait for their second attempt
        del receiver.always["/hook"]
        local.start()
        log = settled(a, pid, hook, 2)
    assert sorted(d["event"] for d in log) == ["run_finished", "run_started"]
    for d in log:
        assert d["status"] == "Success" and d["attempts"] >= 2, dumps(d)
        assert d["attempt_log"][0]["http_status"] == 503
        assert d["attempt_log"][-1]["http_status"] == 200
    bodies: dict[str, set[bytes]] = {}
    for r in receiver.at("/hook"):
        bodies.setdefault(r.json()["event_data"]["seawall"]["event_id"], set()).add(r.body)
    assert len(bodies) == 2 and all(len(b) == 1 for b in bodies.values())
