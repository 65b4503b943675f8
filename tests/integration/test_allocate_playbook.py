"""fleetid.subid.allocate through real ansible-playbook runs: a 50-host fleet with forks,
check and diff mode, failures that leave the ledger untouched, and several controllers
(ansible-playbook processes) sharing one ledger at once."""

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ansible_env, by_hand, run_playbook, sealed

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import find_overlaps

# min_count 1000: each host's own user takes a small count, so blocks of all sizes interleave.
POOL = {"ranges": [{"start": 100000, "count": 600000000}], "reserved": [{"start": 1000000, "count": 500000}],
        "min_count": 1000}

PLAYBOOK = """\
- name: Allocate subordinate IDs
  hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Allocate this host's blocks
      fleetid.subid.allocate:
        ledger: "{{ ledger_path }}"
        pool: "{{ pool }}"
        owners: "{{ owners }}"
        lock_timeout: "{{ lock_timeout | default(60) }}"
      register: alloc
    - name: Save the result
      ansible.builtin.copy:
        content: "{{ alloc | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0644"
      check_mode: false
      diff: false
"""


def write_fleet(tmp_path, hosts, owners_of, name="inventory.yml"):
    inventory = {"all": {"hosts": {h: {"owners": owners_of(h)} for h in hosts}}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(inventory))
    return path


def fleet_owners(host):
    """Every host has the shared developers, its team, its own user and a kubelet block."""
    number = int(host[4:])
    team = ["team%d-a" % (number % 5), "team%d-b" % (number % 5)]
    own = {"name": "local%d" % number, "count": 1000 + number}
    big = [{"name": "builder", "count": 4194304}] if number % 10 == 0 else []
    return ["alice", "bob", "carol"] + team + [own] + big + [{"name": "kubelet", "scope": "host", "count": 131072}]


def play(tmp_path, inventory, *flags, out="out", ledger_path=None, forks=10, check=True, extra=None):
    out_dir = tmp_path / out
    out_dir.mkdir(exist_ok=True)
    playbook = tmp_path / "allocate.yml"
    playbook.write_text(PLAYBOOK)
    evars = {"ledger_path": str(ledger_path or tmp_path / "subid-ledger.yml"), "pool": POOL,
             "out_dir": str(out_dir)}
    evars.update(extra or {})
    varfile = tmp_path / ("vars-%s.json" % out)
    varfile.write_text(json.dumps(evars))
    proc = run_playbook(playbook, "-f", str(forks), "-e", "@%s" % varfile, *flags,
                        inventory=str(inventory), check=check)
    results = {p.stem: json.loads(p.read_text()) for p in out_dir.glob("*.json")}
    return proc, results


def blocks_of(path):
    return ledger.parse(Path(path).read_text(), str(path))


def assert_consistent(results):
    """Fleet owners have identical ranges on every host; different owners never overlap."""
    by_owner = {}
    for host, res in results.items():
        assert not res.get("failed"), res
        assert res["subuid"] == res["subgid"]
        mine = {}
        for entry in res["subuid"]:
            mine.setdefault(entry["name"], []).append((entry["start"], entry["count"]))
        for name, ranges in mine.items():
            key = name if name != "kubelet" else "kubelet@" + host
            if key in by_owner:
                assert by_owner[key] == ranges, "%s differs on %s" % (name, host)
            by_owner[key] = ranges
    spans = [(owner, s, c) for owner, ranges in by_owner.items() for s, c in ranges]
    for i, (o1, s1, c1) in enumerate(spans):
        for o2, s2, c2 in spans[i + 1:]:
            assert s1 + c1 <= s2 or s2 + c2 <= s1, "%s and %s overlap" % (o1, o2)
    return by_owner


@pytest.mark.slow
def test_fifty_hosts_with_forks_then_a_second_run_changes_nothing(tmp_path):
    hosts = ["host%02d" % i for i in range(50)]
    inventory = write_fleet(tmp_path, hosts, fleet_owners)

    results = play(tmp_path, inventory)[1]
    assert len(results) == 50
    by_owner = assert_consistent(results)
    assert sum(1 for k in by_owner if k.startswith("kubelet@")) == 50
    assert sum(c for s, c in by_owner["builder"]) == 4194304
    assert all(sum(c for s, c in by_owner["local%d" % i]) == 1000 + i for i in range(50))
    ledger_text = (tmp_path / "subid-ledger.yml").read_text()
    blocks = ledger.parse(ledger_text)
    assert not find_overlaps(blocks, key=lambda b: b.range)
    assert all(not b.range.overlaps(ledger.IdRange(1000000, 500000)) for b in blocks)
    assert all(res["changed"] for res in results.values())  # every host has its own kubelet block

    again = play(tmp_path, inventory, out="again")[1]
    assert all(not res["changed"] for res in again.values())
    assert all(res["allocated"] == [] for res in again.values())
    assert {h: r["subuid"] for h, r in again.items()} == {h: r["subuid"] for h, r in results.items()}
    assert (tmp_path / "subid-ledger.yml").read_text() == ledger_text


def test_check_mode_reports_and_writes_nothing_and_diff_shows_the_lines(tmp_path):
    inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice", {"name": "bob", "count": 131072}])
    proc, results = play(tmp_path, inventory, "--check", "--diff")
    assert not (tmp_path / "subid-ledger.yml").exists()
    res = results["web1"]
    assert res["changed"] is True
    assert res["allocated"] == [
        {"owner": "alice", "scope": "fleet", "start": 100000, "count": 65536},
        {"owner": "bob", "scope": "fleet", "start": 165536, "count": 131072},
    ]
    assert '+- {owner: "alice", scope: "fleet", start: 100000, count: 65536, state: active' in proc.stdout
    assert res["warnings"] == [
        "check mode: the new blocks shown (alice 100000+65536, bob 165536+131072) are predicted for this host "
        "alone; other hosts in this run may be shown the same free IDs, while a real run allocates new owners "
        "one after another"]

    proc, results = play(tmp_path, inventory, "--diff", out="real")
    assert results["web1"]["subuid"] == [
        {"name": "alice", "start": 100000, "count": 65536},
        {"name": "bob", "start": 165536, "count": 131072},
    ]
    assert (tmp_path / "subid-ledger.yml").exists()
    # Owners that have their blocks are predicted exactly, without a warning.
    proc, results = play(tmp_path, inventory, "--check", out="again")
    assert results["web1"]["changed"] is False and "warnings" not in results["web1"]


def test_release_and_reclaim_through_the_playbook(tmp_path):
    inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice", "bob"])
    play(tmp_path, inventory)
    inventory = write_fleet(tmp_path, ["web1"], lambda h: [{"name": "alice", "state": "released"}, "carol"])
    results = play(tmp_path, inventory, out="release")[1]
    assert results["web1"]["released"] == [{"owner": "alice", "scope": "fleet", "start": 100000, "count": 65536}]
    assert results["web1"]["subuid"] == [{"name": "carol", "start": 231072, "count": 65536}]
    states = {b.owner: b.state for b in blocks_of(tmp_path / "subid-ledger.yml")}
    assert states == {"alice": "quarantined", "bob": "active", "carol": "active"}
    inventory = write_fleet(tmp_path, ["web1"], lambda h: [{"name": "alice", "state": "reclaimed"}])
    results = play(tmp_path, inventory, out="reclaim")[1]
    assert results["web1"]["reclaimed"][0]["start"] == 100000
    assert {b.owner for b in blocks_of(tmp_path / "subid-ledger.yml")} == {"bob", "carol"}


def test_a_hand_edit_with_overlapping_blocks_is_refused_and_nothing_is_written(tmp_path):
    inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice", "bob"])
    play(tmp_path, inventory)
    path = tmp_path / "subid-ledger.yml"
    broken = by_hand(path.read_text().replace("start: 165536", "start: 160000"))  # accepted, so checked in full
    path.write_text(broken)
    inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice", "bob", "dave"])
    proc, results = play(tmp_path, inventory, out="broken", check=False)
    assert proc.returncode != 0
    msg = results["web1"]["msg"] if results else proc.stdout
    assert "refused, nothing was written" in proc.stdout
    first = ledger.HEADER.count("\n") + 3
    assert ("blocks overlap: line %d: alice (fleet) 100000-165535 (65536 IDs) and line %d: bob (fleet) 160000-225535"
            % (first, first + 1)) in proc.stdout, msg
    assert path.read_text() == broken


def test_pool_exhaustion_fails_with_the_largest_free_run_and_keeps_the_ledger(tmp_path):
    inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice"])
    small = {"pool": {"ranges": [{"start": 100000, "count": 100000}]}}
    play(tmp_path, inventory, extra=small)
    before = (tmp_path / "subid-ledger.yml").read_bytes()
    inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice", {"name": "zed", "count": 65536}])
    proc = play(tmp_path, inventory, out="full", check=False, extra=small)[0]
    assert proc.returncode != 0
    assert ("pool exhausted: cannot allocate 65536 IDs for owner 'zed' (scope fleet); the largest free run "
            "is 165536-199999 (34464 IDs), nothing was written") in proc.stdout
    assert (tmp_path / "subid-ledger.yml").read_bytes() == before


def test_lock_timeout_names_the_holder_and_keeps_the_ledger(tmp_path):
    inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice"])
    play(tmp_path, inventory)
    path = tmp_path / "subid-ledger.yml"
    before = path.read_bytes()
    with open(str(path) + ".lock", "r+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write("pid 4242 on testhost\n")
        lock.flush()
        # All allocated: no lock is needed, so this succeeds while the lock is held.
        proc, results = play(tmp_path, inventory, out="nolock", extra={"lock_timeout": 1})
        assert results["web1"]["changed"] is False
        inventory = write_fleet(tmp_path, ["web1"], lambda h: ["alice", "newbie"])
        proc = play(tmp_path, inventory, out="locked", check=False, extra={"lock_timeout": 1})[0]
    assert proc.returncode != 0
    assert "could not lock the ledger within 1s: %s.lock is held by pid 4242 on testhost" % path in proc.stdout
    assert path.read_bytes() == before


@pytest.mark.slow
def test_several_controllers_at_once_never_hand_one_id_to_two_owners(tmp_path):
    """Six ansible-playbook processes, each its own slice of the fleet, one ledger."""
    ledger_path = tmp_path / "shared-ledger.yml"
    procs = []
    for n in range(6):
        hosts = ["host%02d" % (n * 8 + i) for i in range(8)]
        inventory = write_fleet(tmp_path, hosts, fleet_owners, name="inv%d.yml" % n)
        out_dir = tmp_path / ("out%d" % n)
        out_dir.mkdir()
        playbook = tmp_path / "allocate.yml"
        playbook.write_text(PLAYBOOK)
        varfile = tmp_path / ("vars%d.json" % n)
        varfile.write_text(json.dumps({"ledger_path": str(ledger_path), "pool": POOL, "out_dir": str(out_dir)}))
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-f", "4",
               "-e", "@%s" % varfile, str(playbook)]
        procs.append(subprocess.Popen(cmd, env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outputs = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(outputs)

    results = {}
    for n in range(6):
        for f in (tmp_path / ("out%d" % n)).glob("*.json"):
            results[f.stem] = json.loads(f.read_text())
    assert len(results) == 48
    by_owner = assert_consistent(results)
    blocks = blocks_of(ledger_path)
    assert not find_overlaps(blocks, key=lambda b: b.range)
    # Every owner seen by any host is in the ledger, with exactly the ranges hosts were given.
    recorded = {}
    for b in blocks:
        key = b.owner if b.scope == "fleet" else "%s@%s" % (b.owner, b.scope[len("host:"):])
        recorded.setdefault(key, []).append((b.start, b.count))
    assert {k: sorted(v) for k, v in recorded.items()} == {k: sorted(v) for k, v in by_owner.items()}
    assert ledger_path.read_text() == sealed(ledger.render(blocks))  # canonical: sorted, one block a line
    assert not any(name.startswith(".shared-ledger.yml.") for name in os.listdir(tmp_path))


def test_owners_on_the_host_that_no_run_requests_any_more_are_named_and_keep_their_blocks(run_module, tmp_path):
    """A member who left an owner group: a line on the host (present_owners), an active
    block, not requested. Named in the result, nothing released, on a ledger the store has
    indexed and on one edited by hand (read in full)."""
    path = tmp_path / "ledger.yml"
    first = run_module("fleetid.subid.allocate", {"ledger": str(path), "pool": POOL, "owners": ["alice", "erik"]})
    assert first["changed"], first
    for edit_by_hand in (False, True):
        if edit_by_hand:
            lines = by_hand(path.read_text()).splitlines(keepends=True)
            path.write_text("".join(lines[:-1] + ["# a comment added by hand\n", lines[-1]]))
        before = path.read_text()
        res = run_module("fleetid.subid.allocate", {"ledger": str(path), "pool": POOL, "owners": ["alice"],
                                                    "host_state": {"present_owners": ["alice", "erik", "nobody"]}})
        assert not res.get("failed"), res
        assert res["unrequested"] == ["erik"]
        assert not res["changed"] and path.read_text() == before
        quiet = run_module("fleetid.subid.allocate", {"ledger": str(path), "pool": POOL, "owners": ["alice"],
                                                      "host_state": {"present_owners": ["alice", "erik"]},
                                                      "report_unrequested": False})
        assert quiet["unrequested"] == [] and not quiet["changed"] and path.read_text() == before


def test_an_odd_name_is_refused_alone_and_the_hosts_other_owners_are_served(run_module, tmp_path):
    """Names a directory hands over (group members): SSSD's user@domain is served; a name
    with a space, non-ASCII letters, a leading '-' or digits only is refused on its own."""
    path = tmp_path / "ledger.yml"
    odd = ["John Smith", "jos\u00e9", "-rf", "0", "2001"]
    res = run_module("fleetid.subid.allocate", {"ledger": str(path), "pool": POOL,
                                                "owners": ["alice"] + odd + ["dev@corp.example"]})
    assert not res.get("failed") and res["changed"], res
    assert [e["name"] for e in res["subuid"]] == ["alice", "dev@corp.example"]
    assert [(r["name"], r["reason"].split(",")[0].split(":")[0]) for r in res["refused"]] == [
        ("John Smith", "it holds whitespace"), ("jos\u00e9", "it holds characters that are not ASCII"),
        ("-rf", "use 1-32 characters from letters"), ("0", "it is all digits"), ("2001", "it is all digits")]
    warned = [w for w in res["warnings"] if "is refused, nothing was allocated or written for it" in w]
    assert len(warned) == len(odd) and all(repr(name) in w for name, w in zip(odd, warned))
    assert sorted(b.owner for b in ledger.parse(path.read_text())) == ["alice", "dev@corp.example"]
