"""Registry pings and outgoing webhooks never reach link-local addresses (cloud metadata
services) unless the operator allows it; private ranges keep working; a ping says what failed,
never what the target's body said."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import update

from engine.api import create_api
from engine.notify.models import Webhook
from engine.notify.notifier import Notifier, NotifySettings
from tests.api.harness import BASE_URL, InProcessApi, PortalTransport
from tests.api.helpers import created_id, make_policy, make_registry, registry_body
from tests.replication.support import api as live_api
from tests.support.server import SeawallProcess, free_port

W = Webhook.__table__  # type: ignore[attr-defined]
METADATA = ("http://169.254.169.254", "http://[fe80::1]:8080", "http://[::ffff:169.254.169.254]")
SECRET_PAGE = "ami-id instance-id iam/security-credentials/TOPSECRET"


@pytest.mark.parametrize("url", METADATA)
def test_link_local_endpoints_and_webhooks_are_refused(api: InProcessApi, url: str) -> None:
    with api.client() as c:
        r = c.post("/registries", json=registry_body("meta", url=url))
        assert r.status_code == 400 and "link-local" in r.text, r.text
        r = c.post("/registries/ping", json={"type": "docker-registry", "url": url})
        assert r.status_code == 400 and "link-local" in r.text, r.text
        rid = make_registry(c, "private", url="http://10.0.0.5:5000")  # private: fine
        r = c.post("/registries/ping", json={"id": rid, "url": url, "access_secret": "x"})
        assert r.status_code == 400 and "link-local" in r.text, r.text
        assert c.put(f"/registries/{rid}", json={"url": url}).status_code == 400
        pid = make_policy(c, "p", None, dest=rid)
        hook = {"name": "h", "address": f"{url}/latest/meta-data"}
        r = c.post(f"/replication/policies/{pid}/webhooks", json=hook)
        assert r.status_code == 400 and "link-local" in r.text, r.text
    assert [p["url"] for p in api.fakes.pinged] == []


def test_the_operator_can_allow_link_local(api: InProcessApi) -> None:
    app = create_api(dataclasses.replace(api.ctx, allow_link_local=True))
    transport = PortalTransport(api.portal, app)
    auth = ("admin", api.admin_password)
    with httpx.Client(base_url=f"{BASE_URL}/api/v2.0", transport=transport, auth=auth) as c:
        created_id(c.post("/registries", json=registry_body("meta", url=METADATA[0])))


def test_a_webhook_aimed_at_link_local_is_not_sent(api: InProcessApi) -> None:
    with api.client() as c:
        pid = make_policy(c, "p", None, dest=make_registry(c, "d"))
        hooks = f"/replication/policies/{pid}/webhooks"
        wid = created_id(c.post(hooks, json={"name": "h", "address": "http://10.0.0.9/hook"}))

        async def aim() -> None:  # as a row from before the check would hold it
            async with api.ctx.db.write() as conn:
                address = "http://169.254.169.254/latest"
                await conn.execute(update(W).where(W.c.id == wid).values(address=address))

        api.call(aim)
        created_id(c.post(f"{hooks}/{wid}/test"))
        sent: list[httpx.Request] = []

        async def deliver() -> None:
            transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200))
            notifier = Notifier(api.ctx.db, NotifySettings(), transport=transport)
            async with notifier._clients() as clients:
                await notifier.deliver_due(clients)

        api.call(deliver)
        (delivery,) = c.get(f"{hooks}/{wid}/deliveries").json()
    assert sent == []
    assert delivery["status"] == "Failed" and "link-local" in delivery["last_error"], delivery


class _Talkative(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 401 if self.server.mode == "json" else 404
        body = json.dumps({"errors": [{"code": "DENIED", "message": SECRET_PAGE}]}).encode()
        if self.server.mode == "html":
            body = f"<html>{SECRET_PAGE}</html>".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def talkative() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Talkative)
    server.mode = "html"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_ping_does_not_reflect_the_targets_body(
    live: SeawallProcess, talkative: ThreadingHTTPServer
) -> None:
    url = f"http://127.0.0.1:{talkative.server_address[1]}"
    with live_api(live.url, live.admin_password) as a:
        for mode in ("html", "json"):
            talkative.mode = mode  # type: ignore[attr-defined]
            r = a.post("/registries/ping", json={"type": "docker-registry", "url": url})
            assert r.status_code == 400, r.text
            assert "TOPSECRET" not in r.text and "meta-data" not in r.text, r.text
            assert "HTTP " in r.text, r.text  # it still says what failed


def test_a_ping_of_a_closed_port_answers_at_once(live: SeawallProcess) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with live_api(live.url, live.admin_password) as a:
        started = time.monotonic()
        r = a.post("/registries/ping", json={"type": "docker-registry", "url": url})
        took = time.monotonic() - started
    assert r.status_code == 400 and "cannot connect" in r.text, r.text
    assert took < 3, f"{took:.1f} s"
