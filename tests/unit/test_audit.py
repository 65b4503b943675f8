"""The fleet audit: findings by content, Markdown and SVG."""

import xml.etree.ElementTree as ET

from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit import audit, to_markdown, to_svg

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
                                       "message": "root:0:65536 contains ID 0"}]),
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
    assert ("h1", "maps_root", None) in got
    assert ("h2", "not_for_this_host", "kubelet") in got
    assert ("h3", "unreachable", None) in got
    drift = next(f for f in report["findings"] if f["kind"] == "drift" and f["file"] == "subuid")
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
