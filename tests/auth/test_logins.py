"""The throttle of failed logins (fake clock) and the bounded pool password checks run on."""

from __future__ import annotations

import threading

import pytest

from registry.auth.logins import CheckPool, LoginThrottle, LoginThrottled


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_of_failures_then_refused_until_refilled(clock: FakeClock) -> None:
    throttle = LoginThrottle(burst=3, refill_per_second=0.5, clock=clock)
    keys = ["account:a", "source:1.2.3.4"]
    assert [throttle.reserve(keys) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.reserve(keys) == pytest.approx(2.0)  # one token at 0.5/s
    clock.now += 2.0
    assert throttle.reserve(keys) == 0.0
    assert throttle.reserve(keys) > 0


def test_successes_give_their_reservation_back(clock: FakeClock) -> None:
    throttle = LoginThrottle(burst=2, clock=clock)
    for _ in range(50):
        assert throttle.reserve(["account:a"]) == 0.0
        throttle.succeeded(["account:a"])


def test_one_exhausted_key_refuses_and_reserves_nothing_on_the_others(clock: FakeClock) -> None:
    throttle = LoginThrottle(burst=2, refill_per_second=1.0, clock=clock)
    for _ in range(2):
        throttle.reserve(["source:attacker"])
    assert throttle.reserve(["account:victim", "source:attacker"]) > 0
    # the victim's own bucket was not touched by the refused attempt
    assert throttle.reserve(["account:victim", "source:elsewhere"]) == 0.0
    assert throttle.reserve(["account:victim", "source:elsewhere"]) == 0.0


def test_keys_are_bounded(clock: FakeClock) -> None:
    throttle = LoginThrottle(burst=1, max_keys=100, clock=clock)
    for i in range(1000):
        throttle.reserve([f"source:{i}"])
    assert len(throttle._buckets) == 100


def test_throttled_rounds_retry_after_up_to_whole_seconds() -> None:
    e = LoginThrottled(0.2, "too many failed logins")
    assert e.retry_after_seconds == 1 and "retry after 1 s" in str(e)


def test_pool_refuses_instead_of_queueing_without_end() -> None:
    pool = CheckPool(workers=1, max_pending=2)
    release = threading.Event()
    futures = [pool.submit(release.wait, 5) for _ in range(2)]
    assert all(f is not None for f in futures)
    assert pool.submit(release.wait, 5) is None  # full: refused at once
    release.set()
    for f in futures:
        assert f is not None and f.result(timeout=5) is True
    again = pool.submit(lambda: 42)
    assert again is not None and again.result(timeout=5) == 42
