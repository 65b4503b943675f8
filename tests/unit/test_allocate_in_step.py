"""allocate's in_step: the host's files, as owner_groups read them, hold exactly the
allocated entries in both files, in each owner's order, with no write to repair."""

import pytest

from ansible_collections.fleetid.subid.plugins.action.allocate import _in_step

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
