"""fleetid.subid.subid through ansible-playbook, on temporary files.

Ranges from 100000 up are assumed to hold no host ID. The tests that aim at a host
account or group take one this host really has (HOST_USER, HOST_GROUP).
"""

import grp
import os
import pwd
import re
import subprocess
import time

import pytest

# An account and a group of this host below the ranges the tests use (every host has some).
HOST_USER = min((p for p in pwd.getpwall() if 1 <= p.pw_uid < 100000), key=lambda p: p.pw_uid)
HOST_GROUP = min((g for g in grp.getgrall() if 1 <= g.gr_gid < 100000), key=lambda g: g.gr_gid)

SEED = "# managed by hand\nzed:900000:65536\r\nlegacy line\n"
ALICE = [{"name": "alice", "start": 100000, "count": 65536}]


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    paths = {"subuid": folder / "subuid", "subgid": folder / "subgid"}
    for path in paths.values():
        path.write_text(SEED, newline="")
    return paths


def args(files, subuid, subgid=None, **extra):
    result = {"subuid": subuid, "subgid": subuid if subgid is None else subgid,
              "subuid_path": str(files["subuid"]), "subgid_path": str(files["subgid"])}
    result.update(extra)
    return result


def snapshot(files):
    return {k: p.read_bytes() for k, p in files.items()}


def leftovers(files):
    """Files the module left in the folder besides the two (the .pwd.lock stays, as glibc's does)."""
    return sorted(p.name for p in files["subuid"].parent.iterdir() if p.name not in ("subuid", "subgid", ".pwd.lock"))


def test_apply_check_diff_and_idempotence(run_module, files):
    before = snapshot(files)
    res = run_module("fleetid.subid.subid", args(files, ALICE), check_mode=True, diff=True)
    assert res["changed"] is True and res["changed_owners"] == ["alice"]
    assert snapshot(files) == before
    assert not (files["subuid"].parent / ".pwd.lock").exists() and leftovers(files) == []  # check mode locks nothing
    assert [(d["before_header"], d["after_header"]) for d in res["diff"]] == [
        (str(files["subuid"]), str(files["subuid"])), (str(files["subgid"]), str(files["subgid"]))]
    assert res["diff"][0]["before"] == SEED
    assert res["diff"][0]["after"] == SEED + "alice:100000:65536\n"
    assert res["subuid"] == res["subgid"] == ALICE

    res = run_module("fleetid.subid.subid", args(files, ALICE))
    assert res["changed"] is True and "diff" not in res
    for path in files.values():
        assert path.read_bytes() == (SEED + "alice:100000:65536\n").encode()
    assert res["files"]["subuid"] == {"path": str(files["subuid"]), "changed": True,
                                      "added": ["alice:100000:65536"], "removed": []}
    assert leftovers(files) == []  # locks released, no temp files

    again = run_module("fleetid.subid.subid", args(files, ALICE), diff=True)
    assert again["changed"] is False and again["changed_owners"] == []
    assert again["files"]["subuid"]["changed"] is False
    assert again["diff"][0]["before"] == again["diff"][0]["after"]
    check = run_module("fleetid.subid.subid", args(files, ALICE), check_mode=True)
    assert check["changed"] is False


def test_numeric_uid_owner_is_rewritten_in_place_by_name(run_module, files):
    name, uid = HOST_USER.pw_name, HOST_USER.pw_uid  # "<uid>:..." is that account's line
    for path in files.values():
        path.write_text("a:200000:10\n%d:300000:65536\nb:400000:10\n" % uid)
    entries = [{"name": name, "start": 500000, "count": 65536}, {"name": name, "start": 700000, "count": 10}]
    res = run_module("fleetid.subid.subid", args(files, entries))
    assert res["changed"] is True and res["changed_owners"] == [name]
    assert files["subuid"].read_text() == "a:200000:10\n%s:500000:65536\n%s:700000:10\nb:400000:10\n" % (name, name)
    assert res["files"]["subuid"]["removed"] == ["%d:300000:65536" % uid]
    gone = run_module("fleetid.subid.subid", args(files, [{"name": str(uid)}], state="absent"))
    assert gone["changed"] is True and gone["subuid"] == []
    assert files["subgid"].read_text() == "a:200000:10\nb:400000:10\n"


def test_growth_and_state_absent(run_module, files):
    run_module("fleetid.subid.subid", args(files, ALICE))
    grown = ALICE + [{"name": "alice", "start": 300000, "count": 65536}]
    res = run_module("fleetid.subid.subid", args(files, grown))
    assert res["changed_owners"] == ["alice"] and res["subgid"] == grown
    assert files["subgid"].read_text().endswith("alice:100000:65536\nalice:300000:65536\n")
    res = run_module("fleetid.subid.subid", args(files, [{"name": "alice"}], state="absent"))
    assert res["changed"] is True
    assert files["subuid"].read_bytes() == SEED.encode() and files["subgid"].read_bytes() == SEED.encode()
    res = run_module("fleetid.subid.subid", args(files, [{"name": "alice"}], state="absent"))
    assert res["changed"] is False


def test_only_the_listed_file_is_touched(run_module, files):
    res = run_module("fleetid.subid.subid", {"subuid": ALICE, "subuid_path": str(files["subuid"]),
                                             "subgid_path": str(files["subgid"])})
    assert res["changed"] is True and list(res["files"]) == ["subuid"]
    assert files["subgid"].read_bytes() == SEED.encode()


def test_backup_keeps_the_old_file(run_module, files):
    res = run_module("fleetid.subid.subid", args(files, ALICE, backup=True))
    assert len(res["backup_files"]) == 2 and res["backup_file"] == res["backup_files"][0]
    assert res["files"]["subgid"]["backup_file"] == res["backup_files"][1]
    for backup in res["backup_files"]:
        with open(backup, "rb") as handle:
            assert handle.read() == SEED.encode()
    again = run_module("fleetid.subid.subid", args(files, ALICE, backup=True))
    assert again["backup_files"] == [] and "backup_file" not in again


@pytest.fixture
def root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it is marked needs_root; deselect with -m 'not needs_root')")


@pytest.mark.needs_root
def test_owner_mode_are_kept_and_a_new_file_is_0644_root(run_module, files, root):
    os.chown(files["subuid"], 0, 4242)
    os.chmod(files["subuid"], 0o640)
    files["subgid"].unlink()
    old_umask = os.umask(0o077)
    try:
        res = run_module("fleetid.subid.subid", args(files, ALICE))
    finally:
        os.umask(old_umask)
    assert res["changed"] is True
    st = os.stat(files["subuid"])
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 0, 4242)
    st = os.stat(files["subgid"])
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)
    assert files["subgid"].read_text() == "alice:100000:65536\n"


@pytest.mark.parametrize(
    "subuid,subgid,message",
    [
        ([{"name": "bob", "start": 950000, "count": 65536}], None,
         "{dir}/subuid: refused, nothing was written: bob:950000:65536 (new line 4) overlaps {dir}/subuid "
         "line 2 (zed:900000:65536), which ends in CR"),
        (ALICE, [{"name": "alice", "start": 0, "count": 65536}],
         "{dir}/subgid: refused, nothing was written: subgid[0]: alice:0:65536 reaches below 1000: ID 0 is root"),
        ([{"name": "alice", "start": 500, "count": 65536}], None,
         "{dir}/subuid: refused, nothing was written: subuid[0]: alice:500:65536 reaches below 1000"),
        ([{"name": "root:0:65536\nx", "start": 100000, "count": 1}], None, "subuid[0] owner name "),
        ([{"name": "alice", "start": 4294967000, "count": 65536}], None, "leaves the 32-bit ID space"),
        ([{"name": "alice", "start": "100k", "count": 1}], None, "must be an integer"),
        # A range over an account or group of this host is refused (floor 1 lets it through).
        ([{"name": "alice", "start": HOST_USER.pw_uid, "count": 1}], None,
         "{dir}/subuid: refused, nothing was written: alice:%d:1 (new line 4) contains UID %d (%s), "
         "which the host uses" % (HOST_USER.pw_uid, HOST_USER.pw_uid, pwd.getpwuid(HOST_USER.pw_uid).pw_name)),
        (ALICE, [{"name": "alice", "start": HOST_GROUP.gr_gid, "count": 1}],
         "alice:%d:1 (new line 4) contains GID %d (%s), which the host uses" % (
             HOST_GROUP.gr_gid, HOST_GROUP.gr_gid, grp.getgrgid(HOST_GROUP.gr_gid).gr_name)),
        # The account's own UID: floor 1 allows the range, the own-ID rule does not.
        ([{"name": HOST_USER.pw_name, "start": HOST_USER.pw_uid, "count": 1}], None,
         "%s:%d:1 (new line 4) contains %s's own UID %d"
         % (HOST_USER.pw_name, HOST_USER.pw_uid, HOST_USER.pw_name, HOST_USER.pw_uid)),
        (ALICE + [{"name": "bob", "start": 150000, "count": 10}], None,
         "bob:150000:10 (new line 5) overlaps alice:100000:65536 (new line 4)"),
    ],
)
def test_refusals_leave_both_files_untouched(run_module, files, subuid, subgid, message):
    before = snapshot(files)
    extra = {} if "reaches below" in message else {"floor": 1}  # floor 1 lets host IDs through to their check
    res = run_module("fleetid.subid.subid", args(files, subuid, subgid, **extra))
    assert res["failed"]
    assert message.format(dir=files["subuid"].parent) in res["msg"]
    assert snapshot(files) == before
    assert leftovers(files) == []


def test_floor_below_one_is_refused(run_module, files):
    res = run_module("fleetid.subid.subid", args(files, ALICE, floor=0))
    assert res["failed"] and res["msg"] == "floor must be at least 1: ID 0 is root"


def test_host_ids_can_be_ignored_for_a_foreign_root(run_module, files):
    res = run_module("fleetid.subid.subid", args(files, [{"name": "alice", "start": HOST_USER.pw_uid, "count": 1}],
                                                 check_host_ids=False, floor=1))
    assert res["changed"] is True


def test_a_held_lock_fails_clearly_and_writes_nothing(run_module, files):
    before = snapshot(files)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        lock = files["subgid"].parent / "subgid.lock"
        lock.write_text(str(holder.pid))
        start = time.monotonic()
        res = run_module("fleetid.subid.subid", args(files, ALICE, lock_timeout=0.5))
        assert res["failed"]
        assert res["msg"] == "could not lock %s within 0.5s: %s is held by PID %d" % (
            files["subgid"], lock, holder.pid)
        # It gave up instead of waiting for the holder (alive for 60 s), even on a loaded machine.
        assert time.monotonic() - start < 45 and holder.poll() is None
        assert snapshot(files) == before
        assert lock.read_text() == str(holder.pid)  # not ours to remove
        lock.unlink()
        assert leftovers(files) == []  # subuid.lock, taken first, was released
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_removed(run_module, files):
    dead = subprocess.Popen(["true"])
    dead.wait()
    (files["subuid"].parent / "subuid.lock").write_text(str(dead.pid))
    res = run_module("fleetid.subid.subid", args(files, ALICE, lock_timeout=2))
    assert res["changed"] is True
    assert leftovers(files) == []


def test_a_held_pwd_lock_blocks_the_write(run_module, files):
    """The folder's .pwd.lock (what useradd --root takes in that root) is honoured."""
    before = snapshot(files)
    holder = subprocess.Popen(["python3", "-c", (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"), str(files["subuid"].parent / ".pwd.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = run_module("fleetid.subid.subid", args(files, ALICE, lock_timeout=0.5))
        assert res["failed"] and "could not lock %s/.pwd.lock within 0.5s" % files["subuid"].parent in res["msg"]
        assert snapshot(files) == before
    finally:
        holder.kill()
        holder.wait()


def test_odd_files_keep_every_other_byte(run_module, files):
    odd = "# c\r\n\r\nbob:200000:10\r\n  \nalice:1:2\r\nx\x0cy\nweird:0x1:2\nlast:300000:1"
    for path in files.values():
        path.write_bytes(odd.encode() + b"\xff")  # not UTF-8, no final newline
    res = run_module("fleetid.subid.subid", args(files, ALICE))
    assert res["changed"] is True
    expected = "# c\r\n\r\nbob:200000:10\r\n  \nalice:100000:65536\nx\x0cy\nweird:0x1:2\nlast:300000:1".encode()
    assert files["subuid"].read_bytes() == expected + b"\xff\n"  # only the final newline is added


def test_a_file_without_a_final_newline_is_reported_then_repaired_by_the_next_write(run_module, files):
    """shadow 4.19 and later refuse a whole file whose last line has no newline."""
    for path in files.values():
        path.write_text("bob:200000:65536\nalice:100000:65536")  # alice's range as the ledger has it
    info = run_module("fleetid.subid.subid_info", {"subuid_path": str(files["subuid"]),
                                                   "subgid_path": str(files["subgid"])})
    minor = int(re.search(r"\b4\.(\d+)", info["shadow_version"]).group(1))  # Debian's 1:4.13+dfsg1-1+deb12u2
    newline = [(f["severity"], f["file"], f["line"]) for f in info["findings"] if f["kind"] == "missing_final_newline"]
    severity = "critical" if minor >= 19 else "warning"
    assert sorted(newline) == [(severity, str(files["subgid"]), 2), (severity, str(files["subuid"]), 2)]
    predicted = run_module("fleetid.subid.subid", args(files, ALICE), check_mode=True)
    assert predicted["changed"] is True and len(predicted["repaired"]) == 2
    assert all("a real run adds it" in note for note in predicted["repaired"])
    assert snapshot(files)["subuid"] == b"bob:200000:65536\nalice:100000:65536"
    res = run_module("fleetid.subid.subid", args(files, ALICE))
    assert res["changed"] is True and res["changed_owners"] == []  # the ranges were right: only the newline
    for path in files.values():
        assert [w for w in res["warnings"] if w.startswith("%s ended without a newline" % path)], res["warnings"]
    assert snapshot(files) == {k: b"bob:200000:65536\nalice:100000:65536\n" for k in files}
    again = run_module("fleetid.subid.subid", args(files, ALICE))
    assert again["changed"] is False and again["repaired"] == []
