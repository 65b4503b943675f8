"""Directory users as owners, verified from outside after converge and the side effect:
the same ranges on both hosts for every member of the LDAP group developers, no local
accounts, one new block when frank joined, a clean audit, erik reported and not released
after he left, and a real rootless `podman run` as a directory user whose file shows, on
the host, as the top ID of the user's range."""

import json
import os

import pytest
import testinfra
import yaml

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
HOSTS = ["subid-dir-1", "subid-dir-2"]
MEMBERS = ["dana", "erik", "frank"]  # erik left after the second run, and keeps his block


def host(name):
    return testinfra.get_host("podman://" + name)


def read_ledger(name):
    with open(os.path.join(EPHEMERAL, name)) as handle:
        return yaml.safe_load(handle)["blocks"]


def entries(text):
    found = {}
    for line in text.splitlines():
        owner, start, count = line.split(":")
        found.setdefault(owner, []).append((int(start), int(count)))
    return found


def report(folder):
    with open(os.path.join(EPHEMERAL, folder, "subid-audit.json")) as handle:
        return json.load(handle)


@pytest.mark.parametrize("name", HOSTS)
def test_directory_users_resolve_without_local_accounts_or_enumeration(name):
    node = host(name)
    for person in MEMBERS + ["svc-backup"]:
        assert node.run("getent passwd %s" % person).rc == 0, person
        assert person not in node.file("/etc/passwd").content_string
    # enumerate = false: listing the database shows none of them.
    listing = node.check_output("getent passwd")
    assert not [p for p in MEMBERS if "\n%s:" % p in "\n" + listing]


def test_every_member_has_the_same_range_on_both_hosts_and_the_service_account_none():
    ledger = {b["owner"]: b for b in read_ledger("subid-ledger.yml")}
    assert sorted(ledger) == MEMBERS
    for name in HOSTS:
        for path in ("/etc/subuid", "/etc/subgid"):
            found = entries(host(name).file(path).content_string)
            assert found == {p: [(ledger[p]["start"], ledger[p]["count"])] for p in MEMBERS}, (name, path)
    for block in ledger.values():
        # Above the directory's reserved IDs (10000-1999999), in scope fleet.
        assert block["start"] >= 2000000 and block["scope"] == "fleet" and block["state"] == "active"


def test_frank_joining_added_one_block_and_changed_nobody_else():
    before = read_ledger("ledger-before-frank.yml")
    after = read_ledger("subid-ledger.yml")
    assert [b["owner"] for b in before] == ["dana", "erik"]
    assert [b for b in after if b["owner"] != "frank"] == before
    assert [b["owner"] for b in after if b not in before] == ["frank"]


def test_audit_after_frank_joined_is_clean_and_says_the_directory_is_not_enumerated():
    found = report("reports")
    assert found["summary"]["critical"] == 0 and found["summary"]["warning"] == 0, found["findings"]
    info = {(f["host"], f["kind"]) for f in found["findings"] if f["severity"] == "info"}
    assert info == {(name, "directory_not_enumerated") for name in HOSTS}
    assert all("enumerate = false" in f["message"] for f in found["findings"])


def test_erik_who_left_is_reported_by_the_audit_and_keeps_his_lines():
    found = report("reports-left")
    left = [f for f in found["findings"] if f["kind"] == "unrequested"]
    assert sorted((f["host"], f["owner"], f["severity"]) for f in left) == [
        (name, "erik", "warning") for name in HOSTS]
    assert found["summary"]["critical"] == 0
    for name in HOSTS:
        assert "erik:" in host(name).file("/etc/subuid").content_string


@pytest.mark.parametrize("name", HOSTS)
def test_homes_were_made_as_pam_mkhomedir_would(name):
    home = host(name).file("/home/dana")
    assert home.is_directory and home.uid == 70001 and home.mode == 0o700
    assert host(name).file("/home/dana/.profile").uid == 70001  # /etc/skel was copied


@pytest.mark.parametrize("name", HOSTS)
def test_rootless_podman_as_a_directory_user_owns_a_file_as_the_top_id_of_the_range(name):
    node = host(name)
    block = {b["owner"]: b for b in read_ledger("subid-ledger.yml")}["dana"]
    top = block["start"] + block["count"] - 1
    node.check_output("runuser -u dana -- mkdir -p /home/dana/proof")
    # Inside, dana is 0 and her range is 1..count: the highest inside ID is count.
    out = node.check_output(
        "cd / && runuser -u dana -- env -u XDG_RUNTIME_DIR podman run --rm --network none "
        "-v /home/dana/proof:/proof localhost/fleetid-busybox:latest "
        "sh -c 'rm -f /proof/f && touch /proof/f && chown %d:%d /proof/f && stat -c %%u:%%g /proof/f'"
        % (block["count"], block["count"]))
    assert out.strip() == "%d:%d" % (block["count"], block["count"])
    assert node.check_output("stat -c %u:%g /home/dana/proof/f") == "%d:%d" % (top, top)
