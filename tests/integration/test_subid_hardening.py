"""fleetid.subid.subid against what goes wrong on a real host: symbolic links, folders
other users can write, a failure or a kill -9 between writing the subuid and the subgid
file. The kills hit the process that writes: a process forked from this one that runs
the module's core function, apply(), as the race test does (ansible-playbook's workers
setsid() and would finish the write)."""

import array
import fcntl
import os
import random
import signal
import time

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.fleetid.subid.plugins.module_utils._subid_transaction import SubidTransaction
from ansible_collections.fleetid.subid.plugins.modules import subid

SEED = "# by hand\nbob:500000:10\n"
ALICE = [{"name": "alice", "start": 100000, "count": 65536}]
KEEP = (".pwd.lock", "subuid", "subgid")  # glibc's .pwd.lock stays, as with useradd


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    paths = {"subuid": folder / "subuid", "subgid": folder / "subgid"}
    for kind, path in paths.items():
        path.write_text(SEED + "# %s\n" % kind)
    return paths


@pytest.fixture
def root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it is marked needs_root; deselect with -m 'not needs_root')")


def args(files, entries, **extra):
    result = {"subuid": entries, "subgid": entries, "subuid_path": str(files["subuid"]),
              "subgid_path": str(files["subgid"])}
    result.update(extra)
    return result


def build(files, entries, **extra):
    with patch_module_args(args(files, entries, **extra)):
        return subid.build_module()


def snapshot(files):
    return {k: p.read_bytes() for k, p in files.items()}


def leftovers(files):
    return sorted(p.name for p in files["subuid"].parent.iterdir() if p.name not in KEEP)


def fork(work):
    """Run ``work()`` in a forked child; its PID. The child never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        try:
            work()
        finally:
            os._exit(0)
    return pid


# --- symbolic links and unsafe folders -------------------------------------------------------

def test_a_symlinked_subuid_path_is_refused_and_its_target_never_shown(run_module, files, tmp_path):
    secret = tmp_path / "shadow-like"
    secret.write_text("secret-owner:4242:1\n")
    secret.chmod(0o600)
    files["subuid"].unlink()
    files["subuid"].symlink_to(secret)
    res = run_module("fleetid.subid.subid", args(files, ALICE), diff=True)
    assert res["failed"]
    assert res["msg"] == ("%s is a symbolic link: shadow refuses to read a linked subid file, and this module "
                          "neither reads nor replaces one; point the path at the file itself" % files["subuid"])
    assert "secret-owner" not in str(res)
    assert files["subuid"].is_symlink() and secret.read_text() == "secret-owner:4242:1\n"
    assert files["subgid"].read_text() == SEED + "# subgid\n"
    check = run_module("fleetid.subid.subid", args(files, ALICE), check_mode=True, diff=True)
    assert check["failed"] and "secret-owner" not in str(check)


def test_files_in_a_folder_others_can_write_are_refused(run_module, files):
    before = snapshot(files)
    files["subuid"].parent.chmod(0o1777)
    res = run_module("fleetid.subid.subid", args(files, ALICE))
    assert res["failed"]
    assert res["msg"].startswith("%s: refused, nothing was written: folder %s is writable by users other than its "
                                 "owner (mode 1777)" % (files["subuid"], files["subuid"].parent))
    assert snapshot(files) == before and leftovers(files) == []


# --- a failure, and a kill, between the two renames -------------------------------------------

FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def set_immutable(path, on):
    """chattr +i / -i: even root cannot replace an immutable file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        flags[0] = flags[0] | FS_IMMUTABLE_FL if on else flags[0] & ~FS_IMMUTABLE_FL
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags)
    finally:
        os.close(fd)


def test_a_failure_replacing_subgid_rolls_subuid_back(files, monkeypatch):
    # The rename of the subgid file fails after the subuid file was replaced. (A real
    # cause, an immutable subgid file, is refused earlier: it cannot be linked.)
    before = snapshot(files)
    real = SubidTransaction._swap_in

    def swap_in(transaction, tmp, path):
        if path == str(files["subgid"]):
            raise PermissionError(1, "Operation not permitted", tmp, None, path)
        real(transaction, tmp, path)

    monkeypatch.setattr(SubidTransaction, "_swap_in", swap_in)
    with pytest.raises(subid.SubidError) as refused:
        subid.apply(build(files, ALICE))
    assert str(refused.value) == (
        "%s could not be replaced ([Errno 1] Operation not permitted: '%s/.subgid.fleetid-new' -> '%s'): %s was "
        "rolled back to its previous content, so neither file changed" % (
            files["subgid"], files["subgid"].parent, files["subgid"], files["subuid"]))
    assert snapshot(files) == before
    assert leftovers(files) == []  # no journal, no kept file, no temp file, no lock


@pytest.mark.needs_root
def test_an_old_file_that_cannot_be_kept_stops_the_write_before_either_file_changes(run_module, files, root):
    before = snapshot(files)
    set_immutable(files["subgid"], True)  # an immutable file cannot be linked
    try:
        res = run_module("fleetid.subid.subid", args(files, ALICE))
    finally:
        set_immutable(files["subgid"], False)
    assert res["failed"]
    assert res["msg"] == ("%s could not be kept as %s/.subgid.fleetid-old to roll it back if this run were "
                          "interrupted (Operation not permitted): neither file changed" % (
                              files["subgid"], files["subgid"].parent))
    assert snapshot(files) == before
    assert leftovers(files) == []


def killed_between_the_renames(files):
    """A run killed right after it replaced the subuid file: the subgid file is old."""
    module = build(files, ALICE)

    def work():
        real = SubidTransaction._swap_in

        def swap_in(transaction, tmp, path):
            real(transaction, tmp, path)
            if path == str(files["subuid"]):
                os.kill(os.getpid(), signal.SIGKILL)

        SubidTransaction._swap_in = swap_in
        subid.apply(module)

    dummy, status = os.waitpid(fork(work), 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_a_kill_between_the_two_renames_is_reported_and_rolled_back_by_the_next_run(run_module, files):
    before = snapshot(files)
    killed_between_the_renames(files)
    assert "alice" in files["subuid"].read_text() and files["subgid"].read_bytes() == before["subgid"]
    # The journal, and a hard link that keeps the old subuid file to roll back to.
    assert {".subuid.fleetid-journal", ".subuid.fleetid-old", ".subgid.fleetid-old"} <= set(leftovers(files))
    assert (files["subuid"].parent / ".subuid.fleetid-old").read_bytes() == before["subuid"]
    assert os.path.samefile(files["subgid"].parent / ".subgid.fleetid-old", files["subgid"])  # not replaced yet

    info = run_module("fleetid.subid.subid_info", {"subuid_path": str(files["subuid"]),
                                                   "subgid_path": str(files["subgid"])})
    found = [f for f in info["findings"] if f["kind"] == "interrupted_write"]
    assert [(f["severity"], f["file"]) for f in found] == [("critical", str(files["subuid"]))]

    # The next run, for another owner, repairs first and says so.
    res = run_module("fleetid.subid.subid", args(files, [{"name": "bob", "start": 500000, "count": 10}]))
    message = ("%s was rolled back to its content before an interrupted run, which had replaced it but not %s"
               % (files["subuid"], files["subgid"]))
    assert res["changed"] is True and res["repaired"] == [message]
    assert message in res["warnings"]
    assert snapshot(files) == before
    assert leftovers(files) == []
    again = run_module("fleetid.subid.subid", args(files, [{"name": "bob", "start": 500000, "count": 10}]))
    assert again["changed"] is False and again["repaired"] == []


def test_a_lost_copy_of_the_old_subuid_file_stops_the_rollback_and_says_what_to_check(run_module, files):
    killed_between_the_renames(files)
    kept = files["subuid"].parent / ".subuid.fleetid-old"
    kept.unlink()
    split = snapshot(files)
    res = run_module("fleetid.subid.subid", args(files, [{"name": "bob", "start": 500000, "count": 10}]))
    journal = files["subuid"].parent / ".subuid.fleetid-journal"
    assert res["failed"]
    assert res["msg"] == ("%s, the old content of %s that an interrupted run kept to roll it back, is missing, so it "
                          "cannot be rolled back to agree with %s: check both files, then remove %s" % (
                              kept, files["subuid"], files["subgid"], journal))
    assert snapshot(files) == split  # nothing written
    assert journal.exists()


def test_kill_9_at_random_points_leaves_old_or_new_and_the_next_run_repairs(files):
    """Kill the writing process at random points, many times: each file is always whole (old
    or new), and after the next run (for another owner, so it writes nothing of its own)
    both agree and nothing is left in the folder."""
    states = {}
    modules = {}
    for label, start in (("A", 100000), ("B", 300000)):
        entries = [{"name": "alice", "start": start, "count": 65536}]
        modules[label] = build(files, entries, lock_timeout=5)
        subid.apply(modules[label])
        states[label] = snapshot(files)
    bob = build(files, [{"name": "bob", "start": 500000, "count": 10}], lock_timeout=5)
    which = {kind: {states[label][kind]: label for label in states} for kind in files}

    started = time.monotonic()
    for dummy in range(5):
        subid.apply(modules["A"])
        subid.apply(modules["B"])
    per_write = (time.monotonic() - started) / 10

    def write_forever():
        while True:
            subid.apply(modules["A"])
            subid.apply(modules["B"])

    rng = random.Random(20261128)
    counts = {"kills": 0, "split": 0, "litter": 0, "repaired": 0}
    deadline = time.monotonic() + 45
    while counts["kills"] < 300 and (counts["kills"] < 100 or time.monotonic() < deadline):
        pid = fork(write_forever)
        time.sleep(rng.uniform(0, 3 * per_write))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        counts["kills"] += 1
        now = snapshot(files)
        assert all(now[kind] in which[kind] for kind in files), now  # each file whole: old or new
        split = which["subuid"][now["subuid"]] != which["subgid"][now["subgid"]]
        counts["split"] += split
        counts["litter"] += bool(leftovers(files))
        result, diffs = subid.apply(bob)
        after = snapshot(files)
        assert which["subuid"][after["subuid"]] == which["subgid"][after["subgid"]]
        if split:  # rolled back: the subgid file was not replaced, so both are its state
            assert which["subuid"][after["subuid"]] == which["subgid"][now["subgid"]]
            assert result.get("repaired")
        counts["repaired"] += bool(result.get("repaired"))
        assert leftovers(files) == []
    elapsed = time.monotonic() - started
    print("kill -9 of the writer: %(kills)d kills, %(split)d between the renames, %(repaired)d repaired, "
          "%(litter)d left files behind (all removed by the next run)" % counts,
          "in %.1fs (one apply %.1f ms)" % (elapsed, per_write * 1000))
    assert counts["kills"] >= 100
