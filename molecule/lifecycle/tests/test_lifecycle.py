"""After adoption, audit, onboarding two accounts and offboarding one: the ledger's
states, each host's files, and the audit report, checked by content."""

import json
import os

import pytest
import testinfra
import yaml

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
HOSTS = ["subid-life-1", "subid-life-2"]


@pytest.fixture(scope="module")
def ledger():
    with open(os.path.join(EPHEMERAL, "subid-ledger.yml")) as handle:
        blocks = yaml.safe_load(handle)["blocks"]
    return {(b["owner"], b["scope"]): b for b in blocks}


@pytest.fixture(scope="module")
def report():
    with open(os.path.join(EPHEMERAL, "reports", "subid-audit.json")) as handle:
        return json.load(handle)


def lines(host, path):
    return testinfra.get_host("podman://" + host).file(path).content_string.splitlines()


def test_ledger_states(ledger):
    # alice agreed on both hosts: adopted as she was; bob conflicts: held, not recorded.
    assert (ledger[("alice", "fleet")]["start"], ledger[("alice", "fleet")]["count"]) == (100000, 65536)
    assert not any(owner in ("bob", "mallory", "trudy") for owner, scope in ledger)
    assert ledger[("carol", "fleet")]["start"] == 1000000 and ledger[("carol", "fleet")]["state"] == "active"
    assert ledger[("erin", "fleet")]["state"] == "quarantined" and ledger[("erin", "fleet")]["released"]
    assert (ledger[("frank", "fleet")]["count"], ledger[("frank", "fleet")]["state"]) == (131072, "active")
    assert ledger[("erin", "fleet")]["start"] == 1065536 and ledger[("frank", "fleet")]["start"] == 1131072


@pytest.mark.parametrize("path", ["/etc/subuid", "/etc/subgid"])
def test_host_files(path):
    first, second = lines(HOSTS[0], path), lines(HOSTS[1], path)
    # Adopted and held entries are untouched; mallory's line over root is removed
    # (subid_unsafe_lines: remove), trudy's over host UIDs is left for the audit.
    assert first[:3] == ["alice:100000:65536", "bob:165536:65536", "trudy:1990:100"]
    assert not [line for line in first if line.startswith("mallory:")]
    assert second[:2] == ["alice:100000:65536", "bob:300000:65536"]
    for content in (first, second):
        assert "carol:1000000:65536" in content
        assert "frank:1131072:131072" in content
        assert not [line for line in content if line.startswith("erin:")]


def test_offboarded_account_storage_was_reset():
    host = testinfra.get_host("podman://" + HOSTS[0])
    assert host.user("erin").exists  # the account stays unless asked otherwise
    assert not host.file("/home/erin/.local/share/containers/storage/vfs-images").exists


def test_audit_report_names_each_problem(report):
    found = {(f["host"], f["kind"], f["owner"]) for f in report["findings"]}
    # subid_info's findings on a line name that line's owner
    assert not [f for f in report["findings"] if f["owner"] == "mallory"]  # removed by site
    assert ("subid-life-1", "host_id_collision", "trudy") in found  # trudy over UID 2001
    assert ("subid-life-1", "unknown_owner", "trudy") in found
    for host in HOSTS:
        assert (host, "unmanaged", "bob") in found  # held: not in the ledger, left alone
    messages = [f["message"] for f in report["findings"]]
    assert any("trudy:1990:100) contains UID 2001" in m for m in messages)
    assert report["summary"]["critical"] >= 1
    assert not [f for f in report["findings"] if f["owner"] in ("alice", "carol")]
    with open(os.path.join(EPHEMERAL, "reports", "subid-audit.md")) as handle:
        # one row per line of a host, every kind found on it; _ escaped too
        rows = [row for row in handle.read().splitlines() if row.startswith("| critical | subid-life-1 | ")]
        cells = [row.split(" | ") for row in rows]  # severity, host, kinds, owner, file:line, finding
        assert any("host\\_id\\_collision" in c[2] and c[3] == "trudy" and c[4].startswith("/etc/subuid:")
                   for c in cells), rows
    with open(os.path.join(EPHEMERAL, "reports", "subid-idspace.svg")) as handle:
        assert "alice (fleet) 100000-165535 (65536 IDs) active" in handle.read()
