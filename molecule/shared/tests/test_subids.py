"""Verify a converged scenario from outside: every host's files against the ledger, and
rootless Podman run for real as each user inside each host.

Hosts are reached with testinfra's podman:// backend (much faster than going through
Ansible); the host names come from molecule's inventory, the variables from its merged
configuration.
"""

import os

import pytest
import testinfra
import yaml


def _inventory():
    with open(os.environ["MOLECULE_INVENTORY_FILE"]) as handle:
        return yaml.safe_load(handle)


def _all_vars():
    """The scenario's group_vars for all, from molecule's merged configuration."""
    with open(os.environ["MOLECULE_FILE"]) as handle:
        return yaml.safe_load(handle)["provisioner"]["inventory"]["group_vars"]["all"]


def _hosts():
    data = _inventory()
    names = set()
    for group in data.values():
        names.update(((group or {}).get("hosts") or {}).keys())
    return sorted(names)


HOSTS = _hosts()
VARS = _all_vars()


def ledger_blocks():
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "subid-ledger.yml")
    with open(path) as handle:
        return yaml.safe_load(handle)["blocks"]


def expected_for(host):
    """owner -> sorted [(start, count)] this host must have, from the ledger."""
    wanted = {}
    for block in ledger_blocks():
        if block["state"] == "active" and block["scope"] in ("fleet", "host:" + host):
            wanted.setdefault(block["owner"], []).append((block["start"], block["count"]))
    return {owner: sorted(ranges) for owner, ranges in wanted.items()}


def entries(text):
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            owner, start, count = line.split(":")
            found.setdefault(owner, []).append((int(start), int(count)))
    return {owner: sorted(ranges) for owner, ranges in found.items()}


@pytest.fixture(params=HOSTS)
def node(request):
    return request.param, testinfra.get_host("podman://" + request.param)


def test_files_hold_exactly_the_ledger(node):
    name, host = node
    wanted = expected_for(name)
    assert wanted, "the ledger has no blocks for %s" % name
    for path in ("/etc/subuid", "/etc/subgid"):
        assert entries(host.file(path).content_string) == wanted, path
        assert host.file(path).mode == 0o644 and host.file(path).user == "root"


def test_fleet_owners_have_the_same_ranges_everywhere_and_nobody_overlaps():
    per_host = {name: expected_for(name) for name in HOSTS}
    fleet_owners = {b["owner"] for b in ledger_blocks() if b["scope"] == "fleet"}
    for owner in fleet_owners:
        assert len({tuple(ranges.get(owner, [])) for ranges in per_host.values()}) == 1, owner
    spans = sorted((b["start"], b["start"] + b["count"], b["owner"], b["scope"]) for b in ledger_blocks())
    for (s1, e1, o1, sc1), (s2, e2, o2, sc2) in zip(spans, spans[1:]):
        assert e1 <= s2, "%s (%s) overlaps %s (%s)" % (o1, sc1, o2, sc2)
    assert all(b["start"] >= 100000 for b in ledger_blocks())


def test_login_defs_leaves_allocation_to_the_pool(node):
    name, host = node
    values = dict(line.split()[:2] for line in host.file("/etc/login.defs").content_string.splitlines()
                  if line.startswith("SUB_"))
    assert values["SUB_UID_COUNT"] == "0" and values["SUB_GID_COUNT"] == "0"


def test_rootless_podman_maps_and_runs_as_each_user(node):
    name, host = node
    wanted = expected_for(name)
    for account in VARS["test_accounts"]:
        user = account["name"]
        if user not in wanted:
            continue
        as_user = "cd / && runuser -u %s -- env -u XDG_RUNTIME_DIR podman " % user
        uid_map = host.check_output(as_user + "unshare cat /proc/self/uid_map")
        rows = [tuple(int(f) for f in line.split()) for line in uid_map.splitlines()]
        assert rows[0] == (0, account["uid"], 1)
        assert sorted((outside, count) for inside, outside, count in rows[1:]) == wanted[user]
        highest = sum(count for start, count in wanted[user])
        out = host.check_output(
            as_user + "run --rm --network none %s sh -c 'touch /tmp/f && chown %d /tmp/f && stat -c %%u /tmp/f'"
            % (VARS["rootless_podman_test_image"], highest))
        assert out.strip() == str(highest)
