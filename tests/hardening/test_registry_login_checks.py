"""Password checks run off the event loop, under a throttle (in process, real scrypt).

Wrong passwords each cost a full scrypt (~40-60 ms of CPU); run on the event loop, a handful
of them stall every other request of the worker. These tests watch where and how often the
checks run (a recording wrapper around the real ``verify_password``), which holds however busy
the machine is; the loop's latency under a flood is measured from the outside in
``test_registry_login_flood.py``.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest

import registry.http.auth as http_auth
from registry.auth.logins import LoginThrottle
from registry.auth.passwords import VerifiedCache, hash_password
from registry.auth.tokens import TokenIssuer
from registry.http.auth import check_basic
from registry.http.context import RegistryContext
from registry.meta.accounts import AccountStore
from registry.meta.db import Database, create_engine, init_schema


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Recorder:
    """Wraps the real ``verify_password``: counts the checks and the threads they ran on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: list[int] = []
        real = http_auth.verify_password

        def verify(password: str, encoded: str) -> bool:
            self.threads.append(threading.get_ident())
            return real(password, encoded)

        monkeypatch.setattr(http_auth, "verify_password", verify)


@asynccontextmanager
async def _context(data: Path, passwords: VerifiedCache) -> AsyncIterator[RegistryContext]:
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'accounts.db'}")
    try:
        await init_schema(engine)
        accounts = AccountStore(Database(engine), cache_ttl_seconds=0.0)
        await accounts.create("alice", "user", hash_password("right"), [])
        yield RegistryContext(
            content=cast(Any, None),
            blobs=cast(Any, None),
            accounts=accounts,
            tokens=TokenIssuer(b"k" * 32),
            passwords=passwords,
        )
    finally:
        await engine.dispose()  # its connection threads end before the loop closes


def test_password_checks_never_run_on_the_event_loop_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = Recorder(monkeypatch)
    passwords = VerifiedCache(throttle=LoginThrottle(burst=1000))

    async def scenario() -> tuple[int, list[object]]:
        async with _context(tmp_path, passwords) as ctx:
            logins = [check_basic(ctx, basic("alice", f"wrong-{i}")) for i in range(4)]
            logins += [
                check_basic(ctx, basic("nobody", "x")),
                check_basic(ctx, basic("alice", "right")),
            ]
            return threading.get_ident(), list(await asyncio.gather(*logins))

    loop_thread, results = asyncio.run(scenario())
    assert results[:5] == [None] * 5 and results[5] is not None
    assert len(checks.threads) == 6, "every login costs one scrypt (unknown names too)"
    assert loop_thread not in checks.threads, "scrypt ran on the event loop thread"


def test_a_flood_is_throttled_without_scrypt_and_a_known_client_still_gets_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = Recorder(monkeypatch)
    passwords = VerifiedCache(throttle=LoginThrottle(burst=5, refill_per_second=0.01))

    async def scenario() -> tuple[list[object], object, object]:
        async with _context(tmp_path, passwords) as ctx:
            assert await check_basic(ctx, basic("alice", "right"), "10.0.0.1") is not None
            flood = [await check_basic(ctx, basic("alice", "bad"), "10.6.6.6") for _ in range(55)]
            known = await check_basic(ctx, basic("alice", "right"), "10.0.0.1")  # remembered
            other = await check_basic(ctx, basic("alice", "bad"), "10.0.0.2")  # account empty
            return flood, known, other

    flood, known, other = asyncio.run(scenario())
    assert flood == [None] * 55
    assert len(checks.threads) == 1 + 5, "after the burst, refused logins must not run scrypt"
    assert known is not None and known.name == "alice"  # type: ignore[attr-defined]
    assert other is None
