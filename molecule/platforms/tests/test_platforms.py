"""Verify the platforms scenario: one host per Debian release, each checked from outside
with testinfra's podman:// backend against the ledger, its own login.defs policy, and a
real rootless `podman run` per user that owns a file by the top ID of the user's range.
"""

import json
import os
import re
import subprocess

import pytest
import testinfra
import yaml

# What each release ships, as the README's platform table states it.
RELEASES = {
    "subid-plat-deb11": {"debian": "11.", "shadow": "1:4.8.", "podman": "3.0."},
    "subid-plat-deb12": {"debian": "12.", "shadow": "1:4.13+", "podman": "4.3."},
    "subid-plat-deb13": {"debian": "13.", "shadow": "1:4.17.", "podman": "5.4."},
    "subid-plat-debsid": {"debian": "forky/sid", "shadow": "1:4.20.", "podman": "5."},
}
SID = "subid-plat-debsid"


def _config():
    with open(os.environ["MOLECULE_FILE"]) as handle:
        return yaml.safe_load(handle)["provisioner"]["inventory"]


CONFIG = _config()
VARS = CONFIG["group_vars"]["all"]
HOST_VARS = CONFIG.get("host_vars") or {}
LATE = VARS["platforms_late_account"]


def _hosts():
    with open(os.environ["MOLECULE_INVENTORY_FILE"]) as handle:
        inventory = yaml.safe_load(handle)
    names = set()
    for group in inventory.values():
        names.update(((group or {}).get("hosts") or {}).keys())
    return sorted(names)


HOSTS = _hosts()


def test_every_release_is_in_the_scenario():
    assert HOSTS == sorted(RELEASES)


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


def policy(name):
    return HOST_VARS.get(name, {}).get("login_defs_policy", "disabled")


@pytest.fixture(params=HOSTS)
def node(request):
    return request.param, testinfra.get_host("podman://" + request.param)


def test_release_and_versions(node):
    name, host = node
    want = RELEASES[name]
    assert host.file("/etc/debian_version").content_string.startswith(want["debian"])
    assert host.package("passwd").version.startswith(want["shadow"])
    assert host.package("uidmap").version == host.package("passwd").version
    assert host.package("podman").version.startswith(want["podman"])


def test_helpers_are_setuid_root(node):
    # Debian ships newuidmap/newgidmap setuid root on all three releases (no file caps).
    name, host = node
    for helper in ("/usr/bin/newuidmap", "/usr/bin/newgidmap"):
        f = host.file(helper)
        assert f.user == "root" and f.mode & 0o4000, helper


def test_files_hold_exactly_the_ledger(node):
    name, host = node
    wanted = expected_for(name)
    assert set(wanted) == {"alice", "bob", "carol", "dave"}, wanted
    for path in ("/etc/subuid", "/etc/subgid"):
        assert entries(host.file(path).content_string) == wanted, path
        assert host.file(path).mode == 0o644 and host.file(path).user == "root"


def test_fleet_owners_have_the_same_ranges_on_every_release():
    per_host = [expected_for(name) for name in HOSTS]
    assert all(ranges == per_host[0] for ranges in per_host)
    spans = sorted((b["start"], b["start"] + b["count"], b["owner"]) for b in ledger_blocks())
    for (s1, e1, o1), (s2, e2, o2) in zip(spans, spans[1:]):
        assert e1 <= s2, "%s overlaps %s" % (o1, o2)


def test_a_file_without_a_final_newline_is_repaired_where_shadow_refused_it():
    """prepare left both files of the sid host without a final newline; shadow 4.20 then
    refused the whole file. After converge each ends with one and getsubids reads it."""
    host = testinfra.get_host("podman://" + SID)
    assert "Non-text file" in host.file("/root/getsubids.before-converge").content_string
    wanted = expected_for(SID)
    for path in ("/etc/subuid", "/etc/subgid"):
        text = host.file(path).content_string
        assert text.startswith("# edited by hand, without a final newline\n") and text.endswith("\n"), path
    for flag, path in (("", "subuid"), ("-g ", "subgid")):
        out = host.check_output("getsubids %salice" % flag)
        (start, count), = wanted["alice"]
        assert out.split() == ["0:", "alice", str(start), str(count)], (path, out)


def test_deterministic_allocation_was_switched_off():
    host = testinfra.get_host("podman://" + SID)
    values = [line.split() for line in host.file("/etc/login.defs").content_string.splitlines()
              if line.startswith("SUB_UID_DETERMINISTIC")]
    assert values == [["SUB_UID_DETERMINISTIC", "no"]]


def test_login_defs_policy_per_release(node):
    name, host = node
    values = dict(line.split()[:2] for line in host.file("/etc/login.defs").content_string.splitlines()
                  if line.startswith("SUB_"))
    values.pop("SUB_UID_DETERMINISTIC", None)  # see test_deterministic_allocation_was_switched_off
    if policy(name) == "disabled":
        assert values["SUB_UID_COUNT"] == "0" and values["SUB_GID_COUNT"] == "0"
        # The shipped window stays as it was (Debian 12 and 13 list it).
        assert values["SUB_UID_MIN"] == "100000" and values["SUB_UID_MAX"] == "600100000"
    else:
        hv = HOST_VARS[name]
        last = str(hv["login_defs_local_start"] + hv["login_defs_local_count"] - 1)
        assert values == {
            "SUB_UID_MIN": str(hv["login_defs_local_start"]), "SUB_UID_MAX": last, "SUB_UID_COUNT": "65536",
            "SUB_GID_MIN": str(hv["login_defs_local_start"]), "SUB_GID_MAX": last, "SUB_GID_COUNT": "65536"}


def test_useradd_after_the_range_was_written(node):
    """What useradd did to an owner whose range was written before his account: nothing
    where the counts are 0 (Debian 12 and 13); shadow 4.8 with a local window added a second
    range from that window (outside the pool), which converge's second pass removed."""
    name, host = node
    wanted = expected_for(name)[LATE["name"]]
    for path in ("subuid", "subgid"):
        after = entries(host.file("/root/%s.after-useradd" % path).content_string)[LATE["name"]]
        if policy(name) == "disabled":
            assert after == wanted, path
        else:
            hv = HOST_VARS[name]
            extra = [r for r in after if r not in wanted]
            assert sorted(set(after) - set(extra)) == wanted and len(extra) == 1, (path, after)
            start, count = extra[0]
            assert hv["login_defs_local_start"] <= start
            assert start + count <= hv["login_defs_local_start"] + hv["login_defs_local_count"]


def accounts():
    return [{"name": "alice", "uid": 2001}, {"name": "bob", "uid": 2002}, {"name": "carol", "uid": 2003}, LATE]


def test_rootless_podman_maps_the_top_of_each_range(node):
    """As each user, a container chowns a file on a bind mount to the highest ID inside
    the namespace; on the host that file must belong to the last ID of the user's range."""
    name, host = node
    wanted = expected_for(name)
    assert [a["name"] for a in VARS["test_accounts"]] == ["alice", "bob", "carol"]
    for account in accounts():
        user = account["name"]
        (start, count), = wanted[user]
        as_user = "cd / && runuser -u %s -- env -u XDG_RUNTIME_DIR podman " % user
        uid_map = host.check_output(as_user + "unshare cat /proc/self/uid_map")
        rows = [tuple(int(f) for f in line.split()) for line in uid_map.splitlines()]
        assert rows == [(0, account["uid"], 1), (1, start, count)], rows
        home = host.user(user).home
        # The proof ran the image built from this host's tools: it is in the user's storage.
        record = json.loads(host.file("/var/lib/fleetid-subid/rootless-proofs/%s.json" % user).content_string)
        assert (record["proven_by"], record["check_id"]) == ("container", count), record
        image = record["image"]
        assert image.startswith("localhost/fleetid-subid-proof:"), record
        host.check_output("runuser -u %s -- mkdir -p %s/top && rm -f %s/top/f" % (user, home, home))
        out = host.check_output(
            as_user + "run --rm --network none -v %s/top:/top %s sh -c "
            "'touch /top/f && chown %d:%d /top/f && stat -c %%u:%%g /top/f'"
            % (home, image, count, count))
        assert out.strip() == "%d:%d" % (count, count)
        top = start + count - 1
        assert host.check_output("stat -c %%u:%%g %s/top/f" % home) == "%d:%d" % (top, top)
        host.check_output("rm -rf %s/top" % home)


GUARD_PLAY = """\
- name: Apply login_defs with the policy under test
  hosts: subid-plat-deb11:subid-plat-deb12
  gather_facts: false
  become: true
  roles:
    - role: fleetid.subid.login_defs
"""


def test_disabled_policy_is_refused_only_where_useradd_would_break(tmp_path):
    """login_defs_policy disabled through ansible-playbook in check mode: Debian 11 refuses
    it with the reason and the fix and keeps its login.defs; Debian 12 accepts it."""
    deb11 = testinfra.get_host("podman://subid-plat-deb11")
    before = deb11.file("/etc/login.defs").sha256sum
    play = tmp_path / "guard.yml"
    play.write_text(GUARD_PLAY)
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(project, ".collections"),
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false", ANSIBLE_NOCOLOR="1",
               CONTAINERS_CONF=os.path.join(project, "tests", "podman", "containers.conf"))
    env.pop("ANSIBLE_FORCE_COLOR", None)  # molecule sets it; the recap is matched as plain text
    proc = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--check",
         "-e", "login_defs_policy=disabled", str(play)],
        env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "fatal: [subid-plat-deb11]" in out and "fatal: [subid-plat-deb12]" not in out, out
    assert "cannot work on Debian 11" in out and "login_defs_policy: local" in out, out
    assert re.search(r"subid-plat-deb12\s*: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", out), out
    assert deb11.file("/etc/login.defs").sha256sum == before
