"""The fleet audit: findings by content, Markdown and SVG."""

import xml.etree.ElementTree as ET

from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit import audit, console_lines, owners_info_problem, to_markdown
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit_svg import render as to_svg

POOL = parse_pool({"ranges": [{"start": 100000, "count": 10000000}], "reserved": [{"start": 5000000, "count": 100000}]})


def ledger_blocks():
    owners = ["alice", "bob", "dave", {"name": "kubelet", "scope": "host", "count": 131072}]
    outcome = plan([], POOL, parse_owners(owners, POOL), "h1", "2026-11-24")
    outcome = plan(outcome.blocks, POOL, parse_owners([{"name": "dave", "state": "released"}], POOL), "h1",
                   "2026-11-25")
    return outcome.blocks  # alice 100000, bob 165536, dave 231072 (quarantined), kubelet@h1 327680


def info(subuid, subgid=None, findings=()):
    def rows(entries):
        return [{"owner": o, "start": s, "count": c, "line": i + 1} for i, (o, s, c) in enumerate(entries)]
    return {"subuid": rows(subuid), "subgid": rows(subgid if subgid is not None else subuid),
            "findings": list(findings)}


def test_a_matching_fleet_has_no_findings():
    hosts = {"h1": {"info": info([("alice", 100000, 65536), ("bob", 165536, 65536), ("kubelet", 327680, 131072)]),
                    "owners": ["alice", "bob", "kubelet"]},
             "h2": {"info": info([("alice", 100000, 65536), ("bob", 165536, 65536)]), "owners": ["alice", "bob"]}}
    report = audit(ledger_blocks(), POOL, hosts)
    assert report["findings"] == []
    assert report["summary"]["critical"] == 0
    assert report["summary"]["quarantined_blocks"] == 1
    assert report["summary"]["allocated_ids"] == 65536 * 2 + 131072


def test_each_kind_of_problem_is_reported_with_host_owner_and_line():
    hosts = {
        "h1": {"info": info([("alice", 200000000, 65536), ("dave", 231072, 65536), ("eve", 170000, 10),
                             ("zed", 9000000, 10), ("kubelet", 327680, 131072)],
                            findings=[{"severity": "critical", "kind": "maps_root", "file": "/etc/subuid", "line": 9,
                                       "owner": "root", "message": "root:0:65536 contains ID 0"}]),
               "owners": ["alice", "bob"]},
        "h2": {"info": info([("kubelet", 327680, 131072)]), "owners": []},
        "h3": {"info": {"failed": True, "msg": "unreachable"}, "owners": []},
    }
    report = audit(ledger_blocks(), POOL, hosts)
    got = {(f["host"], f["kind"], f["owner"]) for f in report["findings"]}
    assert ("h1", "drift", "alice") in got
    assert ("h1", "missing", "bob") in got
    assert ("h1", "released_present", "dave") in got
    assert ("h1", "ledger_conflict", "eve") in got
    assert ("h1", "unmanaged", "zed") in got
    assert ("h1", "maps_root", "root") in got  # the owner of the host's finding
    assert ("h2", "not_for_this_host", "kubelet") in got
    assert ("h3", "unreachable", None) in got
    drift = next(f for f in report["findings"] if f["kind"] == "drift" and f["file"] == "/etc/subuid")
    assert drift["message"] == ("/etc/subuid line 1: alice has 200000000+65536 but the ledger says 100000+65536; "
                                "run site.yml to apply the ledger")
    assert report["findings"][0]["severity"] == "critical"
    assert report["summary"]["critical"] == sum(1 for f in report["findings"] if f["severity"] == "critical")


def test_markdown_and_svg_carry_the_content():
    report = audit(ledger_blocks(), POOL, {"h1": {"info": info([("zed", 9000000, 10)]), "owners": []}})
    md = to_markdown(report)
    assert "| warning | h1 | unmanaged | zed |" in md
    assert "| dave | fleet | 231072-296607 | 65536 | quarantined |" in md
    svg = ET.fromstring(to_svg(report, POOL))
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert "alice (fleet) 100000-165535 (65536 IDs) active" in titles
    assert "dave (fleet) 231072-296607 (65536 IDs) quarantined" in titles
    assert "reserved 5000000-5099999 (100000 IDs)" in titles


def test_lines_shadow_skips_count_for_nothing():
    """A CR-terminated or NIS (+/-) line is not read by shadow, so it is neither drift nor unmanaged."""
    skipped = info([("alice", 100000, 65536), ("alice", 900000, 10), ("mallory", 100000, 10)])
    for kind in ("subuid", "subgid"):
        for row in skipped[kind][1:]:
            row["ignored"] = True
    report = audit(ledger_blocks(), POOL, {"h1": {"info": skipped, "owners": ["alice"]}})
    assert report["findings"] == []
    skipped["subuid"][2]["ignored"] = False  # shadow reads it: mallory overlaps alice's block
    kinds = {f["kind"] for f in audit(ledger_blocks(), POOL, {"h1": {"info": skipped, "owners": ["alice"]}})["findings"]}
    assert kinds == {"ledger_conflict"}


def test_findings_name_the_files_the_host_read():
    read = info([("alice", 200000000, 65536)])
    read["files"] = {"subuid": "/srv/ids/subuid", "subgid": "/srv/ids/subgid"}
    report = audit(ledger_blocks(), POOL, {"h1": {"info": read, "owners": ["alice", "bob"]}})
    drift = {(f["file"], f["message"].split(":")[0]) for f in report["findings"] if f["kind"] == "drift"}
    assert drift == {("/srv/ids/subuid", "/srv/ids/subuid line 1"), ("/srv/ids/subgid", "/srv/ids/subgid line 1")}
    missing = [f["message"] for f in report["findings"] if f["kind"] == "missing"]
    assert "bob should have 165536+65536 in /srv/ids/subuid (ledger) but has no line" in missing


HOSTILE = "<script>alert(1)</script>|forged cell|`x`[link](http://e)**b**\nnext row"


def test_hostile_names_from_a_host_stay_text_in_every_report():
    read = info([(HOSTILE, 9000000, 10)],
                findings=[{"severity": "warning", "kind": "unknown_owner", "file": "/etc/subuid", "line": 1,
                           "owner": HOSTILE, "message": "owner %s has no account" % HOSTILE}])
    report = audit(ledger_blocks(), POOL, {"h1": {"info": read, "owners": []}})
    md = to_markdown(report)
    assert "<script" not in md and "[link](" not in md and "**b**" not in md and "`x`" not in md
    rows = [line for line in md.splitlines() if line.startswith("| warning |")]
    assert len(rows) == 2  # subuid line 1 (unknown_owner, unmanaged) and subgid line 1: no forged row
    for row in rows:
        # six cells: the escaped | of the hostile name does not split one
        assert len(row.replace("\\|", "").split("|")[1:-1]) == 6, row
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;\\|forged cell\\|" in md
    ET.fromstring(to_svg(report, POOL))  # still well-formed XML
    lines = console_lines(report, ["r/subid-audit.md"])
    assert lines[0] == "0 critical, 3 warning, 0 info on 1 hosts; 4 blocks in the ledger, %d IDs free" % (
        report["summary"]["free_ids"])
    assert len(lines) == 4 and lines[-1] == "reports: r/subid-audit.md"
    assert all("\n" not in line for line in lines)
    assert lines[1].startswith("WARNING h1 /etc/subuid:1 <script>alert(1)</script>|forged cell")


def test_a_malformed_host_result_is_a_finding_on_that_host_and_the_others_are_audited():
    good = info([("alice", 100000, 65536), ("bob", 165536, 65536)])
    bad_results = {
        "b1": {"subuid": "alice:1:2", "subgid": [], "findings": []},
        "b2": {"subuid": [{"owner": "alice", "start": "100000", "count": 65536}], "subgid": [], "findings": []},
        "b3": {"subuid": [], "subgid": [], "findings": [{"severity": "fatal", "kind": "x", "message": "m"}]},
        "b4": {"subuid": [], "subgid": [], "findings": [], "files": {"subuid": ["/etc/subuid"]}},
        "b5": ["not", "a", "mapping"],
        "b6": {"subuid": [{"owner": None, "start": 1, "count": 1}], "subgid": [], "findings": []},
        "b7": {"subuid": [], "subgid": [], "findings": [
            {"severity": "warning", "kind": "k", "message": "m", "owner": ["a list"], "file": None, "line": None}]},
        "b8": {"subuid": [{"owner": "alice", "start": 100000, "count": 65536, "line": "1"}], "subgid": [],
               "findings": []},
    }
    hosts = {"ok1": {"info": good, "owners": ["alice", "bob"]}}
    hosts.update({name: {"info": result, "owners": ["alice"]} for name, result in bad_results.items()})
    report = audit(ledger_blocks(), POOL, hosts)
    bad = {f["host"]: f["message"] for f in report["findings"] if f["kind"] == "bad_host_result"}
    assert sorted(bad) == sorted(bad_results)
    assert bad["b1"] == "the subid_info result from b1 cannot be read (subuid is a str, not a list): the host was not audited"
    assert "subuid[0].start is not a number" in bad["b2"]
    assert "findings[0].severity is not critical, warning or info" in bad["b3"]
    assert "files is not a mapping of paths" in bad["b4"]
    assert "the result is a list, not a mapping" in bad["b5"]
    assert "subuid[0].owner is not a string" in bad["b6"]
    assert "findings[0].owner is not a string" in bad["b7"]
    assert "subuid[0].line is not a number" in bad["b8"]
    assert not [f for f in report["findings"] if f["host"] == "ok1"]
    assert {f["severity"] for f in report["findings"]} == {"critical"}


def test_the_findings_on_one_line_are_one_row_with_every_kind():
    root_line = [{"severity": "critical", "kind": kind, "file": "/etc/subuid", "line": 4, "owner": "root",
                  "message": message} for kind, message in (
        ("maps_root", "/etc/subuid line 4 (root:0:65536) contains ID 0: its owner can become the host's root"),
        ("owner_id_in_range", "/etc/subuid line 4 (root:0:65536) contains its owner's own UID 0"),
        ("host_id_collision", "/etc/subuid line 4 (root:0:65536) contains UID 1, which the host uses"))]
    root_line.append({"severity": "warning", "kind": "below_floor", "file": "/etc/subuid", "line": 4, "owner": "root",
                      "message": "below the floor"})
    report = audit(ledger_blocks(), POOL, {"h1": {"info": info([("alice", 100000, 65536)], findings=root_line),
                                                  "owners": ["alice"]}})
    lines = console_lines(report)
    assert lines[1] == ("CRITICAL h1 /etc/subuid:4 root host_id_collision, maps_root, owner_id_in_range: "
                        "/etc/subuid line 4 (root:0:65536) contains UID 1, which the host uses; "
                        "/etc/subuid line 4 (root:0:65536) contains ID 0: its owner can become the host's root; "
                        "/etc/subuid line 4 (root:0:65536) contains its owner's own UID 0")
    assert lines[2] == "WARNING h1 /etc/subuid:4 root below_floor: below the floor"
    assert len(lines) == 3
    assert report["summary"]["critical"] == 3  # the JSON keeps every finding
    assert sum(1 for row in to_markdown(report).splitlines() if row.startswith("| critical |")) == 1


def test_a_malformed_owners_info_result_is_a_finding_and_the_inventory_owners_are_used():
    good = {"owners": ["alice", {"name": "bob", "count": 4194304}], "groups": [{"name": "dev", "members": []}],
            "added": {"bob": "dev"}, "host_state": {"resolved_ids": [{"kind": "uid", "id": 2001, "name": "alice"}]}}
    assert owners_info_problem(good) is None
    for broken, why in (
            ([1, 2], "the result is a list, not a mapping"),
            (dict(good, owners="alice"), "owners is not a list"),
            (dict(good, owners=["alice", 7]), "owners[1] is neither a name nor a mapping with a name"),
            (dict(good, owners=[{"name": ["x"]}]), "owners[0] is neither a name nor a mapping with a name"),
            (dict(good, groups=[{"members": []}]), "groups is not a list of mappings with a name"),
            (dict(good, added={"bob": ["dev"]}), "added is not a mapping of names to groups"),
            (dict(good, host_state={"resolved_ids": [{"kind": "uid", "id": True, "name": "x"}]}),
             "host_state.resolved_ids[0] is not a {kind, id, name} of a UID or GID"),
            (dict(good, host_state={"resolved_ids": "all"}), "host_state.resolved_ids is not a list")):
        assert owners_info_problem(broken) == why, broken
    report = audit(ledger_blocks(), POOL, {"h1": {"info": info([("alice", 100000, 65536)]), "owners": ["alice"],
                                                  "resolved": None, "resolved_problem": "owners is not a list"}})
    assert [f["message"] for f in report["findings"]] == [
        "the owners_info result from h1 cannot be read (owners is not a list): its owners and groups were not "
        "compared, only the owners in the inventory"]


def test_drift_with_podman_state_behind_it_says_so_and_the_fix():
    resolved = {"owners": ["alice"], "host_state": {
        "podman_state": {"alice": ["storage /home/alice/.local/share/containers/storage"]}}}
    report = audit(ledger_blocks(), POOL, {"h1": {"info": info([("alice", 200000000, 65536)]), "owners": ["alice"],
                                                  "resolved": resolved}})
    drift = [f["message"] for f in report["findings"] if f["kind"] == "drift"]
    assert drift[0] == ("/etc/subuid line 1: alice has 200000000+65536 but the ledger says 100000+65536, and has "
                        "Podman state here (storage /home/alice/.local/share/containers/storage), whose files a move "
                        "would strand: site.yml holds it; move it with subid_move and reset its storage, or adopt "
                        "the range")
    assert owners_info_problem(dict(resolved, host_state={"podman_state": {"alice": "storage"}})) == (
        "host_state.podman_state is not a mapping of names to lists of text")
