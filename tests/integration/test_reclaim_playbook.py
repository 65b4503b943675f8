"""playbooks/reclaim.yml: a released block returns to the pool only when no file on any
host is owned by one of its IDs and no process maps one."""

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import TOP, run_playbook, sleep_in_user_namespace

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger

POOL = {"ranges": [{"start": 100000, "count": 1000000}]}
RELEASE = """\
- name: Allocate, then release dave
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Allocate
      fleetid.subid.allocate:
        ledger: "{{ subid_ledger }}"
        pool: "{{ subid_pool }}"
        owners: [alice, dave]
    - name: Release dave
      fleetid.subid.allocate:
        ledger: "{{ subid_ledger }}"
        pool: "{{ subid_pool }}"
        owners: [{name: dave, state: released}]
"""


def setup_fleet(tmp_path):
    scan = tmp_path / "scan"
    scan.mkdir()
    evars = {"subid_ledger": str(tmp_path / "subid-ledger.yml"), "subid_pool": POOL,
             "subid_reclaim": ["dave"], "subid_reclaim_scan_paths": [str(scan)]}
    varfile = tmp_path / "vars.json"
    varfile.write_text(json.dumps(evars))
    (tmp_path / "release.yml").write_text(RELEASE)
    run_playbook(tmp_path / "release.yml", "-e", "@%s" % varfile)
    return scan, varfile


def states(tmp_path):
    return {b.owner: b.state for b in ledger.parse((tmp_path / "subid-ledger.yml").read_text())}


def reclaim(varfile):
    return run_playbook(TOP / "playbooks" / "reclaim.yml", "-e", "@%s" % varfile, "-c", "local", check=False,
                        env={"ANSIBLE_BECOME": "false"})


def test_a_file_owned_by_a_released_id_stops_the_reclaim(tmp_path):
    scan, varfile = setup_fleet(tmp_path)
    assert states(tmp_path) == {"alice": "active", "dave": "quarantined"}
    leftover = scan / "dave-layer"
    leftover.write_text("still here")
    os.chown(leftover, 165536 + 1000, 0)  # inside dave's block 165536-231071
    before = (tmp_path / "subid-ledger.yml").read_bytes()
    proc = reclaim(varfile)
    assert proc.returncode != 0
    # The refusal names the host, the block's owner, the file and its IDs, not just "failed".
    assert "Not reclaiming: files on localhost are still owned by IDs of released blocks" in proc.stdout
    assert "dave 165536+65536: %s (uid 166536, gid 0)" % leftover in proc.stdout
    assert (tmp_path / "subid-ledger.yml").read_bytes() == before

    os.chown(leftover, 0, 165536 + 5)  # a group ID in the block counts too
    proc = reclaim(varfile)
    assert proc.returncode != 0
    assert "dave 165536+65536: %s (uid 0, gid 165541)" % leftover in proc.stdout

    leftover.unlink()
    proc = reclaim(varfile)
    assert proc.returncode == 0, proc.stdout
    assert states(tmp_path) == {"alice": "active"}
    assert yaml.safe_load((tmp_path / "subid-ledger.yml").read_text())["blocks"][0]["owner"] == "alice"


def test_a_failed_search_stops_the_reclaim_and_says_why(tmp_path):
    scan, varfile = setup_fleet(tmp_path)
    evars = json.loads(varfile.read_text())
    evars["subid_reclaim_scan_paths"] = [str(scan), str(tmp_path / "no-such-folder"), str(tmp_path / "nor-this")]
    varfile.write_text(json.dumps(evars))
    before = (tmp_path / "subid-ledger.yml").read_bytes()
    proc = reclaim(varfile)
    assert proc.returncode != 0
    assert "The search for files failed on localhost:" in proc.stdout
    assert "find: '%s': No such file or directory; find: '%s': No such file or directory" % (
        tmp_path / "no-such-folder", tmp_path / "nor-this") in proc.stdout
    assert (tmp_path / "subid-ledger.yml").read_bytes() == before


PODMAN_ENV = {"CONTAINERS_CONF": str(TOP / "tests" / "podman" / "containers.conf")}


@pytest.mark.needs_root
def test_a_process_that_still_maps_a_released_block_stops_the_reclaim(tmp_path):
    """The leaver's lines are gone, but a user namespace made before keeps dave's block:
    whoever got those IDs next would share files with it."""
    scan, varfile = setup_fleet(tmp_path)
    name = "fr" + uuid.uuid4().hex[:8]
    saved = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")}
    subprocess.run(["useradd", "--create-home", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
    sleeper = None
    try:
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as handle:
                handle.write("%s:165536:65536\n" % name)  # dave's block, as the leaver had it
        sleeper = sleep_in_user_namespace(name, PODMAN_ENV)
        for path, data in saved.items():  # the lines leave, as offboard.yml removes them
            Path(path).write_bytes(data)
        before = (tmp_path / "subid-ledger.yml").read_bytes()
        proc = reclaim(varfile)
        text = " ".join(proc.stdout.split())
        assert proc.returncode != 0
        assert "Not reclaiming: on localhost, process" in text, text
        assert re.search(r"\(\S+ of %s\) maps? UIDs 165536-231071 of dave's block" % name, text), text
        assert "GIDs 165536-231071 of dave's block" in text
        assert (tmp_path / "subid-ledger.yml").read_bytes() == before
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        if sleeper:
            sleeper.wait(timeout=30)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        for path, data in saved.items():
            Path(path).write_bytes(data)
    proc = reclaim(varfile)
    assert proc.returncode == 0, proc.stdout
    assert states(tmp_path) == {"alice": "active"}
