"""The host rules allocate applies (plugin_utils/host_rules). in_step: the host's files, as owners_info read them, hold exactly the
allocated entries in both files, in each owner's order, with no write to repair."""

import pytest

from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool
from ansible_collections.fleetid.subid.plugins.plugin_utils.host_rules import in_step as _in_step, retired, storage_moves

ENTRIES = [{"name": "alice", "start": 100000, "count": 65536}, {"name": "alice", "start": 300000, "count": 10},
           {"name": "bob", "start": 165536, "count": 65536}]
HELD = {"alice": [[100000, 65536], [300000, 10]], "bob": [[165536, 65536]], "zed": None}


@pytest.mark.parametrize("current, expected", [
    ({"subuid": HELD, "subgid": HELD, "interrupted_write": False}, True),
    (None, False),
    ({}, False),
    ({"subuid": HELD, "subgid": HELD, "interrupted_write": True}, False),
    ({"subuid": HELD, "subgid": HELD}, False),  # not known whether a write was interrupted
    ({"subuid": HELD, "subgid": None, "interrupted_write": False}, False),  # a file read otherwise
    ({"subuid": HELD, "subgid": dict(HELD, bob=None), "interrupted_write": False}, False),
    ({"subuid": HELD, "subgid": dict(HELD, alice=[[300000, 10], [100000, 65536]]), "interrupted_write": False},
     False),  # the same ranges in another order: the module writes them in its order
    ({"subuid": dict(HELD, bob=[[165536, 65537]]), "subgid": HELD, "interrupted_write": False}, False),
    ({"subuid": {"alice": HELD["alice"]}, "subgid": HELD, "interrupted_write": False}, False),  # bob has no line
])
def test_in_step(current, expected):
    assert _in_step(current, ENTRIES) is expected


def test_no_entries_are_in_step_with_any_files_read():
    assert _in_step({"subuid": {}, "subgid": {"zed": None}, "interrupted_write": False}, []) is True


def test_owners_listed_only_as_released_or_reclaimed_are_retired_from_the_host():
    pool = parse_pool({"ranges": [{"start": 100000, "count": 1000000}]})
    requests = parse_owners(["alice", {"name": "bob", "state": "released"}, {"name": "carol", "state": "reclaimed"},
                             {"name": "alice", "state": "released", "scope": "host"}], pool)
    assert retired(requests) == ["bob", "carol"]


def test_an_owner_with_podman_state_whose_lines_differ_is_held_unless_moved():
    entries = [{"name": "alice", "start": 100000, "count": 65536}, {"name": "bob", "start": 165536, "count": 65536},
               {"name": "carol", "start": 231072, "count": 65536}, {"name": "dave", "start": 296608, "count": 65536}]
    current = {"subuid": {"alice": [[165536, 65536]], "bob": [[165536, 65536]], "carol": [[900000, 65536]],
                          "erin": None},
               "subgid": {"alice": [[165536, 65536]], "bob": [[165536, 65536]], "carol": [[900000, 65536]]}}
    state = {"alice": ["storage /home/alice/.local/share/containers/storage"],
             "bob": ["storage /home/bob/.local/share/containers/storage"], "dave": ["processes in a user namespace"]}
    holds, shifts = storage_moves(current, entries, state, set(), {})
    # alice: other ranges and storage; bob: already the ledger's; carol: no Podman state; dave: no line yet.
    assert holds == [{"owner": "alice", "current": {"subuid": [[165536, 65536]], "subgid": [[165536, 65536]]},
                      "ledger": [[100000, 65536]], "evidence": ["storage /home/alice/.local/share/containers/storage"]}]
    assert shifts == []
    # Listed in move, alice moves with her storage.
    assert storage_moves(current, entries, state, {"alice"}, {}) == (
        [], [{"owner": "alice", "subuid": [[100000, 65536]], "subgid": [[100000, 65536]]}])
    assert storage_moves(None, entries, state, set(), {}) == ([], [])


def test_a_shift_begun_and_not_closed_is_finished_whatever_move_says():
    entries = [{"name": "alice", "start": 100000, "count": 65536}]
    # The lines still hold the old range (stopped before the write) or already the new one.
    for lines in ([[165536, 65536]], [[100000, 65536]]):
        current = {"subuid": {"alice": lines}, "subgid": {"alice": lines}}
        assert storage_moves(current, entries, {}, set(), {"alice": {"owner": "alice"}}) == (
            [], [{"owner": "alice", "subuid": [[100000, 65536]], "subgid": [[100000, 65536]]}])


def test_an_owner_without_an_account_anywhere_in_the_play_is_named_and_refused_on_request():
    from ansible_collections.fleetid.subid.plugins.plugin_utils.host_rules import unresolved_owners

    owners = ["alice", "alcie", {"name": "dora", "may_be_absent": True}, "containers", "erik"]
    here = ["alcie", "dora", "containers", "erik"]
    play = [["alcie", "dora", "containers", "erik"], ["alcie", "dora", "containers"]]  # erik exists on host 2
    warnings, refused = unresolved_owners([o for o in owners if isinstance(o, dict)], here, play, refuse=False)
    assert refused == []
    assert [w.split(" ", 1)[0] for w in warnings] == ["alcie", "erik"]  # dora marked, containers read by name
    assert "alcie has no account on any host of this play (getent passwd alcie finds nothing)" in warnings[0]
    assert "A typo?" in warnings[0] and "erik has no account on this host" in warnings[1]
    warnings, refused = unresolved_owners([{"name": "dora", "may_be_absent": True}], here, play, refuse=True)
    assert [r["name"] for r in refused] == ["alcie"] and [w.split(" ", 1)[0] for w in warnings] == ["erik"]
    assert "{name: alcie, may_be_absent: true}" in refused[0]["reason"]
    # A leaver whose account is already gone is released all the same, without a word.
    assert unresolved_owners([{"name": "alcie", "state": "released"}], ["alcie"], [["alcie"]], refuse=True) == ([], [])
    # Without the play's view, nothing is called a typo or refused.
    warnings, refused = unresolved_owners([], ["alcie"], [], refuse=True)
    assert refused == [] and warnings[0].startswith("alcie has no account on this host")
