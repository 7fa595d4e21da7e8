"""The verified-token cache is bounded in bytes as well as entries, and expires entries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from registry.auth.token_cache import VerifiedTokens, entry_cost_bytes
from registry.auth.tokens import TokenClaims

CLAIMS = TokenClaims("alice", (), datetime.now(UTC))


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hit_then_expiry() -> None:
    clock = FakeClock()
    cache = VerifiedTokens(ttl_seconds=30, clock=clock)
    cache.put("t1", CLAIMS)
    assert cache.get("t1") is CLAIMS
    clock.now += 30
    assert cache.get("t1") is None
    assert cache.cost_bytes == 0 and len(cache) == 0


def test_bytes_bound_evicts_least_recently_used() -> None:
    token = "x" * 1000
    budget = entry_cost_bytes(token) * 3
    cache = VerifiedTokens(max_bytes=budget, max_entries=1000)
    tokens = [token[:-1] + str(i) for i in range(5)]
    for t in tokens[:3]:
        cache.put(t, CLAIMS)
    assert cache.get(tokens[0]) is CLAIMS  # now the most recently used
    for t in tokens[3:]:
        cache.put(t, CLAIMS)
    assert len(cache) == 3 and cache.cost_bytes <= budget
    assert cache.get(tokens[0]) is CLAIMS
    assert cache.get(tokens[1]) is None and cache.get(tokens[2]) is None


def test_many_big_tokens_stay_within_the_byte_budget() -> None:
    cache = VerifiedTokens(max_bytes=1 << 20, max_entries=4096)
    for i in range(300):
        cache.put(f"{i:04d}" + "y" * 100_000, CLAIMS)  # 300 tokens of ~100 KB
    assert cache.cost_bytes <= 1 << 20
    assert len(cache) <= (1 << 20) // entry_cost_bytes("y" * 100_000)


def test_a_token_costing_more_than_the_whole_budget_is_not_kept() -> None:
    cache = VerifiedTokens(max_bytes=10_000)
    cache.put("z" * 10_000, CLAIMS)
    assert len(cache) == 0 and cache.cost_bytes == 0


def test_entries_bound_still_holds() -> None:
    cache = VerifiedTokens(max_entries=2)
    for t in ("a", "b", "c"):
        cache.put(t, CLAIMS)
    assert len(cache) == 2 and cache.get("a") is None


def test_same_token_put_twice_is_charged_once() -> None:
    cache = VerifiedTokens()
    cache.put("same", CLAIMS)
    cache.put("same", CLAIMS)
    assert len(cache) == 1 and cache.cost_bytes == entry_cost_bytes("same")


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_entries": 0}, {"ttl_seconds": 0}])
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VerifiedTokens(**kwargs)  # type: ignore[arg-type]
