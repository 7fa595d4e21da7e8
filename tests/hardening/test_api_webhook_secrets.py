"""A webhook's ``auth_header`` is stored sealed (never in clear in the database), is still sent
as ``Authorization``, and rows written in clear by earlier versions keep working and are sealed
when the notifier starts."""

from __future__ import annotations

import httpx
from sqlalchemy import select, update

from engine.notify.models import Webhook
from engine.notify.notifier import Notifier, NotifySettings
from tests.api.harness import InProcessApi
from tests.api.helpers import created_id, make_policy, make_registry

W = Webhook.__table__  # type: ignore[attr-defined]
HEADER = "Bearer s3cret-webhook-token"


def _rows(api: InProcessApi) -> list[dict[str, object]]:
    async def go() -> list[dict[str, object]]:
        async with api.ctx.db.read() as c:
            return [dict(r) for r in (await c.execute(select(W))).mappings().all()]

    return api.call(go)


def _deliver(api: InProcessApi) -> list[str | None]:
    """Send what is due through a notifier; the Authorization headers it sent."""
    sent: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("authorization"))
        return httpx.Response(200)

    async def go() -> None:
        notifier = Notifier(
            api.ctx.db,
            NotifySettings(),
            transport=httpx.MockTransport(answer),
            secrets=api.ctx.secrets,
        )
        await notifier.seal_legacy_headers()
        async with notifier._clients() as clients:
            await notifier.deliver_due(clients)

    api.call(go)
    return sent


def test_auth_headers_are_sealed_at_rest_and_sent_in_clear(api: InProcessApi) -> None:
    with api.client() as c:
        pid = make_policy(c, "p", None, dest=make_registry(c, "d"))
        hooks = f"/replication/policies/{pid}/webhooks"
        wid = created_id(
            c.post(hooks, json={"name": "ci", "address": "http://h.test/x", "auth_header": HEADER})
        )
        assert c.get(f"{hooks}/{wid}").json()["auth_header_set"] is True
        created_id(c.post(f"{hooks}/{wid}/test"))
    (row,) = _rows(api)
    assert "s3cret" not in repr(row), row
    assert str(row["auth_header_encrypted"]).startswith("v1:")
    assert _deliver(api) == [HEADER]


def test_a_header_stored_in_clear_still_works_and_gets_sealed(api: InProcessApi) -> None:
    with api.client() as c:
        pid = make_policy(c, "p", None, dest=make_registry(c, "d"))
        hooks = f"/replication/policies/{pid}/webhooks"
        wid = created_id(c.post(hooks, json={"name": "old", "address": "http://h.test/x"}))

        async def legacy() -> None:  # as an earlier version stored it
            async with api.ctx.db.write() as conn:
                await conn.execute(update(W).where(W.c.id == wid).values(auth_header=HEADER))

        api.call(legacy)
        assert c.get(f"{hooks}/{wid}").json()["auth_header_set"] is True
        created_id(c.post(f"{hooks}/{wid}/test"))
    assert _deliver(api) == [HEADER]
    (row,) = _rows(api)
    assert "s3cret" not in repr(row), row
