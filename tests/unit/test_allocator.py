"""The allocation rules, and property tests for the invariants in DESIGN.md."""

import pytest
from allocation_model import expected_refusal
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import (
    AllocationError,
    Request,
    parse_owners,
    parse_pool,
    plan,
)
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import IdRange, RangeError, find_overlaps

TODAY = "2026-11-24"
POOL = parse_pool({"ranges": [{"start": 100000, "count": 600000000}]})


def run(blocks, owners, host="h1", pool=POOL, today=TODAY):
    return plan(blocks, pool, parse_owners(owners, pool), host, today)


def entries(outcome):
    return {name: [(r.start, r.count) for r in ranges] for name, ranges in outcome.entries.items()}


def test_first_owners_get_consecutive_aligned_blocks_in_sorted_order():
    outcome = run([], ["carol", "alice", {"name": "bob", "count": 4194304}])
    assert entries(outcome) == {
        "carol": [(4359840, 65536)],
        "alice": [(100000, 65536)],
        "bob": [(165536, 4194304)],
    }
    assert [b.owner for b in outcome.added] == ["alice", "bob", "carol"]
    assert outcome.changed


def test_second_run_changes_nothing():
    first = run([], ["alice", "bob"])
    again = run(first.blocks, ["bob", "alice"])
    assert not again.changed
    assert entries(again) == entries(first)


def test_fleet_owner_has_the_same_blocks_on_every_host():
    first = run([], ["alice"], host="h1")
    second = run(first.blocks, ["dave", "alice"], host="h2")
    assert entries(second)["alice"] == entries(first)["alice"]
    assert entries(second)["dave"] == [(165536, 65536)]


def test_host_scope_gives_each_host_its_own_block():
    first = run([], [{"name": "containers", "scope": "host", "count": 131072}], host="node1")
    second = run(first.blocks, [{"name": "containers", "scope": "host", "count": 131072}], host="node2")
    assert entries(first)["containers"] == [(100000, 131072)]
    assert entries(second)["containers"] == [(231072, 131072)]
    assert {b.scope for b in second.blocks} == {"host:node1", "host:node2"}


def test_kubelet_gets_one_range_aligned_to_ids_per_pod_from_zero():
    first = run([], ["alice", {"name": "kubelet", "scope": "host", "count": 7208960}], host="node1")
    # 165536 is the pool's next aligned start, but the kubelet needs a multiple of 65536.
    assert entries(first)["kubelet"] == [(196608, 7208960)]
    # The 31072 IDs left before it are too few for a block: the next one follows the kubelet's.
    assert entries(run(first.blocks, ["dave"]))["dave"] == [(7440032, 65536)]
    with pytest.raises(AllocationError, match=r"owner 'kubelet' \(host:node1\) already has 196608-7405567 .* exactly one range"):
        run(first.blocks, [{"name": "kubelet", "scope": "host", "count": 2 * 7208960}], host="node1")
    with pytest.raises(RangeError, match="count of owner 'kubelet' must be a multiple of 65536"):
        run([], [{"name": "kubelet", "count": 100000}])


@pytest.mark.parametrize("name, engine", [("containers", "--userns=auto"), ("dockremap", "--userns-remap")])
def test_container_engine_owners_get_at_least_the_16_bit_space(name, engine):
    with pytest.raises(RangeError, match=r"count of owner '%s' must be at least 65536: .*%s.* got 65535"
                       % (name, engine)):
        run([], [{"name": name, "scope": "host", "count": 65535}])
    small_blocks = parse_pool({"ranges": [{"start": 100000, "count": 600000000}], "block_size": 1000, "min_count": 1000})
    with pytest.raises(RangeError, match="got 1000"):  # even where the pool allows small counts
        run([], [name], pool=small_blocks)
    assert entries(run([], [{"name": name, "scope": "host", "count": 65536}]))[name] == [(100000, 65536)]


def test_growth_adds_a_block_and_never_moves_the_first():
    first = run([], ["alice", "bob"])
    grown = run(first.blocks, [{"name": "alice", "count": 4194304}])
    assert entries(grown)["alice"] == [(100000, 65536), (231072, 4194304 - 65536)]
    assert sum(c for s, c in entries(grown)["alice"]) == 4194304
    smaller = run(grown.blocks, [{"name": "alice", "count": 65536}])
    assert not smaller.changed and entries(smaller) == entries(grown)


def test_counts_that_are_not_a_multiple_keep_later_blocks_aligned():
    outcome = run([], [{"name": "a", "count": 123456}, "b"])
    assert entries(outcome) == {"a": [(100000, 123456)], "b": [(231072, 65536)]}


def test_reserved_ranges_and_the_floor_are_skipped():
    pool = parse_pool({"ranges": [{"start": 1000, "count": 600000}],
                       "reserved": [{"start": 1000, "count": 65536}, {"start": 100000, "count": 100000}],
                       "block_size": 65536})
    outcome = run([], ["a", "b", "c"], pool=pool)
    # Aligned starts are 1000 + k*65536. 1000 is reserved; 66536 has only 33464 free IDs
    # before the reserved 100000-199999; 132072 and 197608 are inside or run into it.
    assert entries(outcome) == {"a": [(263144, 65536)], "b": [(328680, 65536)], "c": [(394216, 65536)]}


def test_exhausted_pool_names_owner_count_and_largest_free_run():
    pool = parse_pool({"ranges": [{"start": 100000, "count": 200000}]})
    outcome = run([], ["a", "b"], pool=pool)
    with pytest.raises(AllocationError) as err:
        run(outcome.blocks, ["a", {"name": "zed", "count": 131072}], pool=pool)
    assert str(err.value) == (
        "pool exhausted: cannot allocate 131072 IDs for owner 'zed' (scope fleet); the largest free run "
        "is 231072-299999 (68928 IDs), nothing was written")


def test_release_quarantines_and_blocks_stay_taken():
    first = run([], ["alice", "bob"])
    released = run(first.blocks, [{"name": "alice", "state": "released"}])
    assert [(b.owner, b.state, b.released) for b in released.released] == [("alice", "quarantined", TODAY)]
    assert "alice" not in released.entries
    # A newcomer does not get alice's old IDs.
    newcomer = run(released.blocks, ["carol"])
    assert entries(newcomer)["carol"] == [(231072, 65536)]
    assert not run(released.blocks, [{"name": "alice", "state": "released"}]).changed


def test_an_offboarded_owner_still_listed_present_is_held_not_taken_back():
    first = run([], ["alice", "bob"])
    released = run(first.blocks, [{"name": "alice", "state": "released"}])
    again = run(released.blocks, ["alice", "bob"])  # the routine run, alice still in the inventory
    assert not again.changed and not again.reactivated and not again.added
    assert "alice" not in again.entries and entries(again)["bob"] == [(165536, 65536)]
    assert [(owner, scope, [b.state for b in blocks]) for owner, scope, blocks in again.held] == [
        ("alice", "fleet", ["quarantined"])]
    # A larger count does not get around it either: nothing new for a held owner.
    assert not run(released.blocks, [{"name": "alice", "count": 131072}]).added


def test_an_owner_listed_reactivated_gets_its_quarantined_blocks_back():
    first = run([], ["alice"])
    released = run(first.blocks, [{"name": "alice", "state": "released"}])
    back = run(released.blocks, [{"name": "alice", "state": "reactivated"}])
    assert entries(back)["alice"] == [(100000, 65536)]
    assert [b.state for b in back.reactivated] == ["active"]
    assert not back.added and not back.held
    # Once active, reactivated is present: nothing more to do.
    assert not run(back.blocks, [{"name": "alice", "state": "reactivated"}]).changed


def test_a_quarantined_block_beside_an_active_one_stays_quarantined():
    first = run([], [{"name": "alice", "scope": "host"}])
    released = run(first.blocks, [{"name": "alice", "scope": "host", "state": "released"}])
    grown = run(released.blocks, [{"name": "alice", "scope": "host", "state": "reactivated"},
                                  {"name": "alice", "scope": "fleet"}])
    assert sorted(r.start for r in grown.entries["alice"]) == [100000, 165536]


def test_reclaim_needs_release_first_then_frees_the_ids():
    first = run([], ["alice", "bob"])
    with pytest.raises(AllocationError, match="still has active blocks .*release it before reclaiming"):
        run(first.blocks, [{"name": "alice", "state": "reclaimed"}])
    released = run(first.blocks, [{"name": "alice", "state": "released"}])
    reclaimed = run(released.blocks, [{"name": "alice", "state": "reclaimed"}])
    assert [b.owner for b in reclaimed.reclaimed] == ["alice"]
    assert [b.owner for b in reclaimed.blocks] == ["bob"]
    assert entries(run(reclaimed.blocks, ["carol"]))["carol"] == [(100000, 65536)]


def test_a_new_reserved_range_over_an_existing_block_is_refused():
    first = run([], ["alice"])
    text = ledger.render(first.blocks)
    pool = parse_pool({"ranges": [{"start": 100000, "count": 600000000}],
                       "reserved": [{"start": 150000, "count": 10}]})
    first = ledger.HEADER.count("\n") + 3  # the first block's line
    with pytest.raises(AllocationError, match=r"line %d: alice \(fleet\) 100000-165535 .* overlaps the reserved range "
                                              r"150000-150009" % first):
        plan(ledger.parse(text), pool, parse_owners(["alice"], pool), "h1", TODAY)


@pytest.mark.parametrize(
    "pool,message",
    [
        ({}, "pool ranges must be a non-empty list"),
        ({"ranges": [{"start": 0, "count": 65536}]}, "reaches below the floor 1000"),
        ({"ranges": [{"start": 100000, "count": 10}], "floor": 0}, "floor must be at least 1"),
        ({"ranges": [{"start": 100000, "count": 10}, {"start": 100005, "count": 10}]}, "pool ranges overlap"),
        ({"ranges": [{"start": 100000}]}, r"pool ranges\[0\] must be a mapping with exactly start and count"),
        ({"ranges": [{"start": 4294967000, "count": 65536}]}, "leaves the 32-bit ID space"),
        ({"ranges": [{"start": 100000, "count": 10}], "size": 3}, "unknown key"),
        ({"ranges": [{"start": 100000, "count": 10}], "block_size": 0}, "block_size must be at least 1"),
    ],
)
def test_malformed_pools_are_refused(pool, message):
    with pytest.raises(RangeError, match=message):
        parse_pool(pool)


@pytest.mark.parametrize(
    "owners,message",
    [
        ("alice", "owners must be a list"),
        (["alice", "alice"], "listed twice"),
        (["root:0:65536"], "is not allowed"),
        ([{"name": "a", "count": 0}], "count of owner 'a' must be at least 1"),
        ([{"name": "a", "scope": "world"}], "scope of owner 'a' must be fleet or host"),
        ([{"name": "a", "state": "gone"}], "state of owner 'a' must be one of"),
        ([{"name": "a", "colour": "red"}], "unknown key"),
        ([{"count": 5}], "mapping with 'name'"),
        ([{"name": "kubelet", "count": 7208960},
          {"name": "kubelet", "count": 7208960, "scope": "host"}], "the kubelet refuses to start unless getsubids"),
    ],
)
def test_malformed_owner_lists_are_refused(owners, message):
    with pytest.raises(RangeError, match=message):
        parse_owners(owners, POOL)


def test_the_kubelet_in_both_scopes_may_move_from_one_to_the_other():
    # Released in one scope and present in the other is one line, so it is no double listing.
    requests = parse_owners([{"name": "kubelet", "count": 7208960, "state": "released"},
                             {"name": "kubelet", "count": 7208960, "scope": "host"}], POOL)
    assert [(r.scope, r.state) for r in requests] == [("fleet", "released"), ("host", "present")]


def test_same_name_in_fleet_and_host_scope_gets_both():
    outcome = run([], ["containers", {"name": "containers", "scope": "host"}])
    assert entries(outcome)["containers"] == [(100000, 65536), (165536, 65536)]


# Property tests: random pools and random sequences of calls from random hosts.

names = st.sampled_from(["alice", "bob", "carol", "dave", "erin", "kubelet", "containers", "dev@corp.example"])
requests = st.lists(
    st.builds(
        Request,
        name=names,
        count=st.sampled_from([1, 100, 65536, 65537, 131072, 300000]),
        scope=st.sampled_from(["fleet", "host"]),
        state=st.sampled_from(["present"] * 6 + ["released", "reclaimed"]),
        reactivate=st.booleans(),
    ),
    max_size=6,
    unique_by=lambda r: (r.name, r.scope),
)


@st.composite
def pools(draw):
    floor = draw(st.sampled_from([1, 1000, 65536]))
    start = draw(st.integers(floor, 200000))
    ranges = [{"start": start, "count": draw(st.integers(1, 3000000))}]
    gap = draw(st.integers(0, 500000))
    ranges.append({"start": start + ranges[0]["count"] + gap, "count": draw(st.integers(1, 2000000))})
    reserved = [{"start": draw(st.integers(0, 3000000)), "count": draw(st.integers(1, 400000))}
                for dummy in range(draw(st.integers(0, 2)))]
    block = draw(st.sampled_from([1, 1000, 65536]))
    return parse_pool({"ranges": ranges, "reserved": reserved, "block_size": block, "floor": floor, "min_count": 1})


def check_invariants(blocks, pool):
    assert not find_overlaps(blocks, key=lambda b: b.range), "blocks overlap"
    for b in blocks:
        assert b.start >= pool.floor >= 1, "block reaches below the floor"
        for res in pool.reserved:
            assert not b.range.overlaps(res), "block in a reserved range"
        assert any(r.start <= b.start and b.end <= r.end for r in pool.ranges), "block outside the pool"
    written = ledger.parse(ledger.render(blocks))
    assert [b._replace(line=0) for b in written] == sorted((b._replace(line=0) for b in blocks), key=lambda b: b.start)


@settings(max_examples=300, deadline=None)
@given(pools(), st.lists(st.tuples(st.sampled_from(["h1", "h2", "h3"]), requests), max_size=8))
def test_invariants_hold_over_any_sequence_of_calls(pool, calls):
    blocks = []
    for host, reqs in calls:
        # Refused exactly when the inputs call for it (pool exhausted, reclaim before
        # release, a kubelet grown): any other refusal, or a missing one, fails.
        refusal = expected_refusal(blocks, pool, reqs, host)
        event("refused" if refusal else "served")
        if refusal:
            with pytest.raises(AllocationError, match=refusal):
                plan(blocks, pool, reqs, host, TODAY)
            continue
        outcome = plan(blocks, pool, reqs, host, TODAY)
        survivors = {(b.start, b.count, b.owner, b.scope) for b in outcome.blocks}
        reclaimed = {(b.start, b.count, b.owner, b.scope) for b in outcome.reclaimed}
        for old in blocks:  # sticky: never moved, shrunk or given to someone else
            assert (old.start, old.count, old.owner, old.scope) in survivors | reclaimed
        check_invariants(outcome.blocks, pool)
        held = {(owner, scope) for owner, scope, dummy in outcome.held}
        for req in reqs:  # every present owner has at least what it asked for, unless held in quarantine
            key = (req.name, "fleet" if req.scope == "fleet" else "host:" + host)
            if req.state == "present" and key in held:
                assert not req.reactivate and all(b.state == "quarantined" for b in blocks if (b.owner, b.scope) == key)
            elif req.state == "present":
                assert sum(r.count for r in outcome.entries[req.name]) >= req.count
        again = plan(outcome.blocks, pool, [r for r in reqs if r.state == "present"], host, TODAY)
        assert not again.changed, "a second run changed something"
        # Fleet-scoped owners read the same blocks from any host.
        fleet = [r for r in reqs if r.state == "present" and r.scope == "fleet"]
        for other in ("h1", "h2", "h3"):
            seen = plan(outcome.blocks, pool, fleet, other, TODAY)
            assert not seen.changed
            assert seen.entries == plan(outcome.blocks, pool, fleet, host, TODAY).entries
        blocks = ledger.parse(ledger.render(outcome.blocks))


@settings(max_examples=100, deadline=None)
@given(st.permutations(["alice", "bob", "carol", "dave", {"name": "erin", "count": 200000}]))
def test_result_does_not_depend_on_owner_order(owners):
    outcome = run([], list(owners))
    reference = run([], ["alice", "bob", "carol", "dave", {"name": "erin", "count": 200000}])
    assert entries(outcome) == entries(reference)
    for ranges in entries(outcome).values():
        assert all((start - 100000) % 65536 == 0 for start, count in ranges)


def test_known_only_stops_before_placing_new_ids():
    """With only the requested owners' blocks at hand, new IDs cannot be placed safely."""
    pool = parse_pool({"ranges": [{"start": 100000, "count": 10000000}]})
    first = plan([], pool, parse_owners(["alice"], pool), "h1", "2026-11-28")
    mine = first.blocks
    assert plan(mine, pool, parse_owners(["alice"], pool), "h1", "2026-11-28", known_only=True).changed is False
    assert plan(mine, pool, parse_owners(["alice", "bob"], pool), "h1", "2026-11-28", known_only=True) is None
    grow = parse_owners([{"name": "alice", "count": 70000}], pool)
    assert plan(mine, pool, grow, "h1", "2026-11-28", known_only=True) is None
    release = parse_owners([{"name": "alice", "state": "released"}], pool)
    assert plan(mine, pool, release, "h1", "2026-11-28", known_only=True).changed is True


def test_the_pool_withholds_the_ids_below_its_floor_and_its_reserved_ranges_and_says_which():
    pool = parse_pool({"ranges": [{"start": 600, "count": 10000000}], "floor": 500,
                       "reserved": [{"start": 1000000, "count": 10}, {"start": 2000000, "count": 5}]})
    assert pool.withheld() == [(0, 500), (1000000, 1000010), (2000000, 2000005)]
    assert pool.refusals(IdRange(500, 999500)) == []  # ends just before the first reserved ID
    assert pool.refusals(IdRange(499, 3000000)) == [
        "499-3000498 (3000000 IDs) reaches below the floor 500",
        "499-3000498 (3000000 IDs) overlaps the reserved range 1000000-1000009 (10 IDs)",
        "499-3000498 (3000000 IDs) overlaps the reserved range 2000000-2000004 (5 IDs)",
    ]
    assert pool.refusals(IdRange(1000009, 1), "alice's line") == [
        "alice's line overlaps the reserved range 1000000-1000009 (10 IDs)"]


def test_blocks_and_counts_below_the_16_bit_space_are_refused_unless_the_pool_says_so():
    ranges = [{"start": 100000, "count": 10000000}]
    with pytest.raises(RangeError, match=r"pool block_size 50000 is below min_count 65536: .* set min_count: 50000"):
        parse_pool({"ranges": ranges, "block_size": 50000})
    with pytest.raises(RangeError, match=r"count of owner 'alice' is 50000, below the pool's min_count 65536"):
        run([], [{"name": "alice", "count": 50000}])
    small = parse_pool({"ranges": ranges, "block_size": 50000, "min_count": 50000})
    assert (small.block_size, small.min_count) == (50000, 50000)
    assert entries(run([], ["alice"], pool=small))["alice"] == [(100000, 50000)]
    # Only owners asked to be present need the IDs: releasing a small old block is fine.
    assert parse_owners([{"name": "old", "count": 10, "state": "released"}], POOL)[0].count == 10
