"""Adoption of existing entries: agree and adopt, or report the conflict and hold."""

from ansible_collections.fleetid.subid.plugins.plugin_utils.adoption import plan_adoption
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool, plan

POOL = parse_pool({"ranges": [{"start": 100000, "count": 10000000}], "reserved": [{"start": 5000000, "count": 10}]})


def info(entries, subgid=None, findings=()):
    def rows(items):
        return [{"owner": o, "start": s, "count": c, "line": i + 1} for i, (o, s, c) in enumerate(items)]
    return {"subuid": rows(entries), "subgid": rows(subgid if subgid is not None else entries),
            "findings": list(findings)}


def test_agreeing_entries_are_adopted_as_they_are():
    hosts = {"h1": info([("alice", 100000, 65536), ("bob", 165536, 65536)]),
             "h2": info([("alice", 100000, 65536)])}
    decision = plan_adoption([], POOL, hosts, today="2026-11-24")
    assert [(b.owner, b.scope, b.start, b.count, b.state) for b in decision["adopt"]] == [
        ("alice", "fleet", 100000, 65536, "active"), ("bob", "fleet", 165536, 65536, "active")]
    assert decision["conflicts"] == [] and decision["held"] == []


def test_conflicts_are_reported_with_the_fix_and_held_unless_opted_in():
    ledger = plan([], POOL, parse_owners(["zed"], POOL), "h1", "2026-11-24").blocks  # zed: 100000+65536
    hosts = {
        "h1": info([("bob", 165536, 65536), ("carol", 300000, 10), ("dave", 400000, 10), ("erin", 150000, 10),
                    ("frank", 5000000, 65536), ("root2", 500000, 10)],
                   subgid=[("bob", 165536, 65536), ("carol", 300001, 10), ("dave", 400000, 10), ("erin", 150000, 10),
                           ("frank", 5000000, 65536), ("root2", 500000, 10)],
                   findings=[{"kind": "host_id_collision", "file": "/etc/subuid", "line": 6,
                              "message": "root2:500000:10 contains UID 500001"}]),
        "h2": info([("bob", 231072, 65536), ("dave", 400000, 10)]),
    }
    decision = plan_adoption(ledger, POOL, hosts, remap=["dave"])
    by_owner = {c["owner"]: c for c in decision["conflicts"]}
    assert by_owner["bob"]["message"] == ("bob has different ranges on different hosts: 165536+65536 on h1; "
                                          "231072+65536 on h2")
    assert by_owner["bob"]["hosts"] == ["h1", "h2"]
    assert "opt in with subid_adopt_remap: [bob]" in by_owner["bob"]["fix"]
    assert "strands its container storage" in by_owner["bob"]["fix"]
    assert by_owner["carol"]["message"] == "carol has different subuid and subgid ranges on h1"
    assert "erin cannot be adopted as it is: 150000-150009 (10 IDs) overlaps zed's block" in by_owner["erin"]["message"]
    assert "overlaps the reserved range 5000000-5000009" in by_owner["frank"]["message"]
    assert "root2:500000:10 contains UID 500001" in by_owner["root2"]["message"]
    assert decision["held"] == ["bob", "carol", "erin", "frank", "root2"]  # dave opted in to a remap...
    assert "dave" not in by_owner  # ...but dave's entries agree anyway
    assert [b.owner for b in decision["adopt"]] == ["dave"]


def test_owners_already_in_the_ledger_are_left_to_the_ledger():
    ledger = plan([], POOL, parse_owners(["alice"], POOL), "h1", "2026-11-24").blocks
    decision = plan_adoption(ledger, POOL, {"h1": info([("alice", 900000, 65536)])})
    assert decision == {"adopt": [], "conflicts": [], "held": []}


def test_unreached_hosts_are_skipped():
    decision = plan_adoption([], POOL, {"h1": None, "h2": {"failed": True}, "h3": info([("a", 100000, 10)])})
    assert [b.owner for b in decision["adopt"]] == ["a"]
