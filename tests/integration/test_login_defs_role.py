"""Role fleetid.subid.login_defs through ansible-playbook, on a copy of a real login.defs."""

import json
import shutil

import pytest

from conftest import run_recorded

PLAY = """\
- name: Apply login_defs
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: fleetid.subid.login_defs
"""

POOL = {"ranges": [{"start": 100000, "count": 500000000}]}


@pytest.fixture
def login_defs(tmp_path):
    path = tmp_path / "login.defs"
    shutil.copy("/etc/login.defs", path)
    return path


def apply(tmp_path, path, *flags, check=True, **role_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    varfile = tmp_path / "vars.json"
    role_vars.update(login_defs_path=str(path), subid_pool=POOL)
    varfile.write_text(json.dumps(role_vars))
    return run_recorded(playbook, "-e", "@%s" % varfile, *flags, check=check)


def keys(text):
    return {line.split()[0]: line.split()[1] for line in text.splitlines()
            if line.strip() and not line.startswith("#") and "SUB_" in line.split()[0]}


def other_lines(text):
    return [line for line in text.splitlines() if not line.strip().startswith("SUB_")]


def test_disabled_sets_counts_to_zero_and_leaves_other_lines(tmp_path, login_defs):
    before = login_defs.read_text()
    proc = apply(tmp_path, login_defs, "--diff")
    after = login_defs.read_text()
    assert keys(after)["SUB_UID_COUNT"] == "0" and keys(after)["SUB_GID_COUNT"] == "0"
    assert keys(after)["SUB_UID_MIN"] == keys(before)["SUB_UID_MIN"]
    assert other_lines(after) == other_lines(before)
    assert proc.recap["localhost"]["changed"] == 1
    assert proc.status("fleetid.subid.os_vars : Gather the facts the OS-specific variables need") == "ok"  # the release decides
    again = apply(tmp_path, login_defs)
    assert again.recap["localhost"]["changed"] == 0
    assert login_defs.read_text() == after
    # Nothing to set: no release to ask about, so no fact gathering (a remote module run).
    assert again.status("Set platform variables for fleetid.subid.login_defs") == "skipped"
    assert not [t for t in again.tasks if t["task"].startswith("fleetid.subid.os_vars")]


def test_check_mode_writes_nothing(tmp_path, login_defs):
    before = login_defs.read_bytes()
    proc = apply(tmp_path, login_defs, "--check")
    assert proc.recap["localhost"]["changed"] == 1
    assert login_defs.read_bytes() == before


def test_local_window_is_written(tmp_path, login_defs):
    apply(tmp_path, login_defs, login_defs_policy="local", login_defs_local_start=1879048192,
          login_defs_local_count=268435456, login_defs_local_per_user=65536)
    assert keys(login_defs.read_text()) == {
        "SUB_UID_MIN": "1879048192", "SUB_UID_MAX": "2147483647", "SUB_UID_COUNT": "65536",
        "SUB_GID_MIN": "1879048192", "SUB_GID_MAX": "2147483647", "SUB_GID_COUNT": "65536"}


def test_local_window_overlapping_the_pool_is_refused(tmp_path, login_defs):
    before = login_defs.read_bytes()
    proc = apply(tmp_path, login_defs, check=False, login_defs_policy="local",
                 login_defs_local_start=400000000, login_defs_local_count=300000000)
    assert proc.returncode != 0
    assert ("the local window 400000000-699999999 overlaps the central pool range 100000-500099999: "
            "useradd would hand out IDs the pool also gives to others") in proc.stdout
    assert login_defs.read_bytes() == before


def test_the_deterministic_switches_set_in_the_file_are_turned_off_and_absent_ones_stay_absent(tmp_path, login_defs):
    # shadow 4.19+ computes ranges from the UID with these, ignoring the lines already there.
    text = login_defs.read_text() + "SUB_UID_DETERMINISTIC yes\nUNSAFE_SUB_UID_DETERMINISTIC_WRAP\tyes\n" \
                                    "#SUB_GID_DETERMINISTIC yes\n"
    login_defs.write_text(text)
    checked = apply(tmp_path, login_defs, "--check")
    assert checked.recap["localhost"]["changed"] == 1 and login_defs.read_text() == text
    proc = apply(tmp_path, login_defs)
    after = keys(login_defs.read_text())
    assert after["SUB_UID_DETERMINISTIC"] == "no" and after["UNSAFE_SUB_UID_DETERMINISTIC_WRAP"] == "no"
    assert "SUB_GID_DETERMINISTIC" not in after and "UNSAFE_SUB_GID_DETERMINISTIC_WRAP" not in after
    assert "#SUB_GID_DETERMINISTIC yes" in login_defs.read_text()
    assert proc.recap["localhost"]["changed"] == 1
    assert apply(tmp_path, login_defs).recap["localhost"]["changed"] == 0
