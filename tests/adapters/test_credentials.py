"""Credentials that expire: cached, refreshed before expiry and once per 401, single flight,
never a loop on a provider whose tokens are always stale (moto's ECR token says 2015)."""

from __future__ import annotations

import anyio
import pytest

from adapters.oci import OciClient, Unauthorized
from adapters.oci.auth import Credentials
from adapters.oci.credentials import (
    CredentialsUnavailable,
    IssuedCredentials,
    RefreshingCredentials,
)
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Provider:
    """Issues ``admin`` with the passwords given, one per fetch (the last one repeats)."""

    def __init__(self, passwords: list[str], lifetime_seconds: float | None, clock: Clock):
        self.passwords, self.lifetime, self.clock = passwords, lifetime_seconds, clock
        self.calls = 0
        self.gate: anyio.Event | None = None

    async def __call__(self) -> IssuedCredentials:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        password = self.passwords[min(self.calls, len(self.passwords)) - 1]
        expires = None if self.lifetime is None else self.clock.now + self.lifetime
        return IssuedCredentials(Credentials("admin", password), expires)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_cached_until_shortly_before_expiry() -> None:
    clock = Clock()
    provider = Provider(["a", "b", "c"], lifetime_seconds=3600, clock=clock)
    creds = RefreshingCredentials(provider, refresh_before_seconds=300, clock=clock)
    assert (await creds.get()).password == "a"
    clock.now += 3299
    assert (await creds.get()).password == "a"
    assert provider.calls == 1
    clock.now += 2  # inside the 300 s margin: fetched again before it expires
    assert (await creds.get()).password == "b"
    assert provider.calls == 2


async def test_an_already_expired_answer_is_used_for_a_while_not_refetched_per_request() -> None:
    clock = Clock()
    provider = Provider(["stale"], lifetime_seconds=-10 * 365 * 86400, clock=clock)  # 10 y ago
    creds = RefreshingCredentials(provider, min_reuse_seconds=60, clock=clock)
    for _ in range(100):
        assert (await creds.get()).password == "stale"
    assert provider.calls == 1
    clock.now += 61
    await creds.get()
    assert provider.calls == 2


async def test_concurrent_requests_share_one_fetch() -> None:
    clock = Clock()
    provider = Provider(["a"], lifetime_seconds=3600, clock=clock)
    provider.gate = anyio.Event()
    creds = RefreshingCredentials(provider, clock=clock)
    got: list[str | None] = []

    async def one() -> None:
        got.append((await creds.get()).password)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        provider.gate.set()
    assert got == ["a"] * 20
    assert provider.calls == 1


async def test_a_401_refreshes_once_unless_another_request_already_did() -> None:
    clock = Clock()
    provider = Provider(["a", "b", "c"], lifetime_seconds=None, clock=clock)  # no expiry
    creds = RefreshingCredentials(provider, clock=clock)
    first = await creds.get()
    clock.now += 10 * 365 * 86400
    assert await creds.get() == first  # no expiry: only a 401 replaces it
    fresh = await creds.refresh(first)
    assert fresh.password == "b"
    assert await creds.refresh(first) == fresh  # a second request refused with "a": no fetch
    assert provider.calls == 2


async def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        RefreshingCredentials(Provider(["a"], 1, Clock()), refresh_before_seconds=-1)


# -- through the client, against a real registry (Seawall: Docker token flow) ----------------


async def test_client_refreshes_after_a_401_and_sends_the_request_again(
    seawall: SeawallProcess,
) -> None:
    clock = Clock()
    provider = Provider(["revoked", seawall.admin_password], lifetime_seconds=3600, clock=clock)
    async with OciClient(seawall.url, credential_provider=provider) as oci:
        tags = await oci.catalog()  # 401 with "revoked" → fetched again → resent
        assert isinstance(tags, list)
        assert provider.calls == 2
        await oci.catalog()
        assert provider.calls == 2  # cached now


async def test_client_never_loops_on_credentials_that_keep_failing(
    seawall: SeawallProcess,
) -> None:
    provider = Provider(["wrong"], lifetime_seconds=-3600, clock=Clock())
    async with OciClient(seawall.url, credential_provider=provider) as oci:
        for _ in range(3):
            with pytest.raises(Unauthorized):
                await oci.catalog()
    # one fetch, then one per 401 at most: never a loop
    assert 2 <= provider.calls <= 4


async def test_a_provider_failure_reaches_the_caller_as_itself(seawall: SeawallProcess) -> None:
    async def refuses() -> IssuedCredentials:
        raise CredentialsUnavailable("role arn:aws:iam::1:role/x cannot be assumed")

    async with OciClient(seawall.url, credential_provider=refuses) as oci:
        with pytest.raises(CredentialsUnavailable, match="cannot be assumed"):
            await oci.ping()


def test_a_token_answer_without_expires_in_lasts_as_long_as_its_jwt_says() -> None:
    import base64
    import json
    import time

    from adapters.oci.auth import RegistryAuth

    def jwt(exp: float) -> str:
        claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
        return f"eyJhbGciOiJub25lIn0.{claims}.sig"

    now = [0.0]
    auth = RegistryAuth(Credentials("u", "p"), clock=lambda: now[0])
    three_hours = jwt(time.time() + 3 * 3600)
    auth._remember("repository:a:pull", json.dumps({"token": three_hours}).encode(), "r")
    now[0] = 2 * 3600  # well past the 60 s default
    assert auth._preemptive_header("repository:a:pull") == "Bearer " + three_hours
    auth._remember("repository:b:pull", json.dumps({"token": "opaque"}).encode(), "r")
    now[0] += 61  # an opaque token without expires_in: the spec's 60 s
    assert auth._preemptive_header("repository:b:pull") != "Bearer opaque"


async def test_a_failed_fetch_answers_the_waiting_requests_and_is_not_repeated_at_once() -> None:
    clock = Clock()
    calls = 0
    gate = anyio.Event()

    async def down() -> IssuedCredentials:
        nonlocal calls
        calls += 1
        await gate.wait()
        raise CredentialsUnavailable("the identity service refused")

    creds = RefreshingCredentials(down, failure_reuse_seconds=2.0, clock=clock)
    errors: list[str] = []

    async def one() -> None:
        try:
            await creds.get()
        except CredentialsUnavailable as e:
            errors.append(e.message)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(one)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert errors == ["the identity service refused"] * 10
    assert calls == 1  # one fetch for all ten waiting requests
    with pytest.raises(CredentialsUnavailable):
        await creds.get()
    assert calls == 1  # still within failure_reuse_seconds
    clock.now += 3
    with pytest.raises(CredentialsUnavailable):
        await creds.get()
    assert calls == 2  # asked again once that time has passed
