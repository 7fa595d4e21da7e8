"""The planner between two Seawalls (pure, no registry): a tag written differently on both
sides is settled by the rule the same way in both directions; a tombstone is never copied
over and, with deletion on, deletes what it is newer than; sides that report no origins plan
as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.conflicts import ConflictRule, RuleKind, Side, parse_primaries, rule_from_options
from engine.filters import Filter
from engine.plan import Listing, Plan, PolicySpec, make_plan
from registry.oci.origin import Origin, OriginError, Tombstone

D1, D2, D3 = (f"sha256:{c * 64}" for c in "123")
T0 = datetime(2025, 1, 1, tzinfo=UTC)
REPO = "apps/web"
LWW = ConflictRule(RuleKind.LAST_WRITER_WINS)


def at(seconds: float, region: str) -> Origin:
    return Origin(T0 + timedelta(seconds=seconds), region)


def side(
    tags: dict[str, tuple[str, Origin]],
    tombstones: dict[str, tuple[str, Origin]] | None = None,
    *,
    reports: bool = True,
) -> Listing:
    return Listing(
        {REPO: {t: d for t, (d, _) in tags.items()}},
        reports_origins=reports,
        origins={REPO: {t: o for t, (_, o) in tags.items()}},
        tombstones={REPO: {t: Tombstone(d, o) for t, (d, o) in (tombstones or {}).items()}},
    )


def both_ways(
    a: Listing, b: Listing, rule: ConflictRule = LWW, **policy: object
) -> tuple[Plan, Plan]:
    spec = PolicySpec(policy_id=1, conflict_rule=rule, **policy)  # type: ignore[arg-type]
    return make_plan(spec, a, b), make_plan(spec, b, a)


def copied(plan: Plan) -> dict[str, str]:
    return {t: c.digest for c in plan.copies for t in c.tags}


def deleted(plan: Plan) -> dict[str, str]:
    return {d.tag: d.digest for d in plan.deletions}


def test_last_writer_wins_the_same_way_in_both_directions() -> None:
    a = side({"t": (D1, at(1, "a")), "u": (D1, at(9, "a"))})
    b = side({"t": (D2, at(5, "b")), "u": (D2, at(3, "b"))})
    a_to_b, b_to_a = both_ways(a, b)
    assert copied(a_to_b) == {"u": D1}  # A's u is later
    assert copied(b_to_a) == {"t": D2}  # B's t is later
    lost = {t: s.outcome for s in a_to_b.skips for t in s.tags}
    assert lost == {"t": "skipped-differs"}
    assert {(c.tag, c.winner) for c in a_to_b.conflicts} == {
        ("t", Side.DESTINATION),
        ("u", Side.SOURCE),
    }
    assert "last writer wins" in a_to_b.copies[0].reason


def test_a_tie_is_broken_by_region_then_digest() -> None:
    a = side({"t": (D1, at(1, "a"))})
    b = side({"t": (D2, at(1, "b"))})
    a_to_b, b_to_a = both_ways(a, b)
    assert copied(a_to_b) == {} and copied(b_to_a) == {"t": D2}  # "b" > "a"
    same = side({"t": (D3, at(1, "a"))})
    x, y = both_ways(a, same)
    assert copied(x) == {} and copied(y) == {"t": D3}  # then the greater digest


def test_primary_region_wins_whatever_the_time() -> None:
    rule = ConflictRule(RuleKind.PRIMARY, parse_primaries("apps/**=a,c"))
    a = side({"t": (D1, at(1, "a"))})
    b = side({"t": (D2, at(5, "b"))})
    a_to_b, b_to_a = both_ways(a, b, rule)
    assert copied(a_to_b) == {"t": D1} and copied(b_to_a) == {}
    assert "primary a" in a_to_b.copies[0].reason
    # neither write from the primary: the last writer wins
    c = side({"t": (D3, at(9, "c2"))})
    b_to_c, c_to_b = both_ways(b, c, rule)
    assert copied(b_to_c) == {} and copied(c_to_b) == {"t": D3}
    assert rule.primary_for("other/x") == "c" and rule.primary_for("apps/x/y") == "a"


def test_a_deleted_tag_is_never_copied_back() -> None:
    """A deleted t (B had put it there); B still has it: A → B deletes it there (deletion on)
    or leaves it (off), B → A never copies it back, with or without deletion."""
    a = side({}, {"t": (D1, at(5, "a"))})
    b = side({"t": (D1, at(1, "b"))})
    for deletion in (True, False):
        a_to_b, b_to_a = both_ways(a, b, deletion=deletion)
        assert copied(b_to_a) == {}
        assert [s.reason for s in b_to_a.skips if s.tags == ("t",)] != []
        assert deleted(a_to_b) == ({"t": D1} if deletion else {})
        assert not a_to_b.deletions_blocked  # a tombstone is no inference from absence
    # the deletion reached B too: nothing to do either way
    gone = side({}, {"t": (D1, at(5, "a"))})
    x, y = both_ways(a, gone, deletion=True)
    assert x.total == y.total == 0


def test_a_write_after_the_deletion_wins_over_the_tombstone() -> None:
    a = side({}, {"t": (D1, at(5, "a"))})
    b = side({"t": (D2, at(7, "b"))})  # pushed at B after A's deletion
    a_to_b, b_to_a = both_ways(a, b, deletion=True)
    assert deleted(a_to_b) == {} and copied(b_to_a) == {"t": D2}


def test_a_deletion_of_the_digest_held_beats_the_primary() -> None:
    """The deletion saw that very write: no conflict, whatever the rule."""
    rule = ConflictRule(RuleKind.PRIMARY, (("", "a"),))
    a = side({"t": (D1, at(1, "a"))})
    b = side({}, {"t": (D1, at(5, "b"))})
    a_to_b, b_to_a = both_ways(a, b, rule, deletion=True)
    assert copied(a_to_b) == {} and deleted(b_to_a) == {"t": D1}
    assert b_to_a.deletions[0].src_repository == REPO
    # a deletion of another digest than A holds is a conflict: the primary's tag wins
    c = side({}, {"t": (D2, at(5, "b"))})
    a_to_c, c_to_a = both_ways(a, c, rule, deletion=True)
    assert copied(a_to_c) == {"t": D1} and deleted(c_to_a) == {}


def test_the_ledger_does_not_delete_a_newer_write() -> None:
    """A deleted t (the policy A → B had put it at B), then B's client pushed the same digest
    again: B's write is the later one, and stays."""
    a = side({}, {"t": (D1, at(5, "a"))})
    b = side({"t": (D1, at(7, "b"))})
    spec = PolicySpec(policy_id=1, deletion=True, conflict_rule=LWW)
    plan = make_plan(spec, a, b, {REPO: {"t": D1}})
    assert plan.deletions == ()
    older = side({"t": (D1, at(3, "a"))})
    assert deleted(make_plan(spec, a, older, {REPO: {"t": D1}})) == {"t": D1}


def test_tombstone_deletions_follow_the_filters_and_the_guard() -> None:
    a = side({}, {f"v{i}": (D1, at(5, "a")) for i in range(5)} | {"keep": (D1, at(5, "a"))})
    b = side({f"v{i}": (D1, at(1, "b")) for i in range(5)} | {"keep": (D1, at(1, "b"))})
    spec = PolicySpec(policy_id=1, deletion=True, filters=(Filter("tag", "v*"),), conflict_rule=LWW)
    plan = make_plan(spec, a, b)
    assert sorted(deleted(plan)) == [f"v{i}" for i in range(5)]
    assert plan.deletions_blocked == ""  # 5 of 6 tags: no fraction guard on tombstones
    limited = PolicySpec(policy_id=1, deletion=True, max_deletions=3, conflict_rule=LWW)
    assert make_plan(limited, a, b).deletions_blocked.startswith("deletion guard")
    labelled = PolicySpec(
        policy_id=1, deletion=True, filters=(Filter("label", "x"),), conflict_rule=LWW
    )
    assert make_plan(labelled, a, b).deletions == ()  # by tombstone only what it put there


def test_without_a_rule_or_origins_the_source_is_the_authority() -> None:
    """A side that reports no origins (not a Seawall), or a policy with no rule (a one-way
    mirror, which a re-run repairs): Harbor's override rule, no tombstone consulted."""
    a = side({"t": (D1, at(1, "a"))}, reports=False)
    b = side({"t": (D2, at(5, "b"))}, {"u": (D1, at(9, "b"))})
    a_to_b, b_to_a = both_ways(a, b, deletion=True)
    assert copied(a_to_b) == {"t": D1} and copied(b_to_a) == {"t": D2}  # override on
    assert a_to_b.conflicts == () and deleted(b_to_a) == {}
    mirror = side({"u": (D1, at(1, "a"))})
    repaired = side({}, {"u": (D1, at(9, "c"))})  # deleted at the mirror later
    a_to_c, _ = both_ways(mirror, repaired, ConflictRule())
    assert copied(a_to_c) == {"u": D1} and a_to_c.conflicts == ()


def test_rule_options_and_origin_headers() -> None:
    assert rule_from_options({}) == ConflictRule() and not ConflictRule().settles
    assert rule_from_options({"conflict_rule": "last-writer-wins"}) == LWW
    rule = rule_from_options({"conflict_rule": "primary", "primary_region": "a"})
    assert rule.primary_for("x") == "a"
    with pytest.raises(ValueError):
        rule_from_options({"conflict_rule": "primary"})
    origin = at(1.5, "eu-west")
    assert Origin.parse_header(origin.header()) == origin
    stone = Tombstone(D1, origin)
    assert Tombstone.parse_header(stone.header()) == stone
    assert Tombstone.from_json(stone.json()) == stone
    for bad in ("region=A; at=2025-01-01T00:00:00Z", "region=a", "at=x; region=a", "x" * 500):
        with pytest.raises(OriginError):
            Origin.parse_header(bad)
