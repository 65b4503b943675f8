"""shadow's locking protocol: <file>.lock by hard link with a PID, stale locks, the
account-database lock (fcntl on .pwd.lock) outside /etc."""

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_until_open
from ansible_collections.fleetid.subid.plugins.module_utils import shadow_lock
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import (
    LockError,
    file_lock,
    pwd_lock,
    pwd_lock_path,
    subid_locks,
)


@pytest.fixture
def subuid(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("")
    return str(path)


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_file_lock_is_a_hard_link_holding_our_pid_and_is_released(subuid):
    with file_lock(subuid):
        with open(subuid + ".lock") as handle:
            assert handle.read() == str(os.getpid())
        assert os.stat(subuid + ".lock").st_nlink == 1  # our <file>.<pid> was unlinked after linking
        assert not os.path.exists("%s.%d" % (subuid, os.getpid()))
    assert not os.path.exists(subuid + ".lock")


def test_file_lock_is_released_on_error(subuid):
    with pytest.raises(RuntimeError):
        with file_lock(subuid):
            raise RuntimeError("boom")
    assert not os.path.exists(subuid + ".lock")


def test_a_live_holder_makes_us_wait_then_fail_naming_lock_and_pid(subuid):
    holder = subprocess.Popen(["sleep", "30"])
    try:
        with open(subuid + ".lock", "w") as handle:
            handle.write(str(holder.pid))
        start = time.monotonic()
        with pytest.raises(LockError) as err:
            with file_lock(subuid, timeout=0.3):
                pass
        assert time.monotonic() - start >= 0.3
        assert str(err.value) == "could not lock %s within 0.3s: %s.lock is held by PID %d" % (
            subuid, subuid, holder.pid)
        # Their lock is left alone, ours is cleaned up.
        assert open(subuid + ".lock").read() == str(holder.pid)
        assert not os.path.exists("%s.%d" % (subuid, os.getpid()))
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_whose_process_is_gone_is_taken_over(subuid):
    with open(subuid + ".lock", "w") as handle:
        handle.write(str(dead_pid()))
    with file_lock(subuid, timeout=0.3):
        assert open(subuid + ".lock").read() == str(os.getpid())


def test_a_lock_without_a_pid_is_not_stolen(subuid):
    with open(subuid + ".lock", "w") as handle:
        handle.write("garbage")
    with pytest.raises(LockError, match="held by PID unknown"):
        with file_lock(subuid, timeout=0.1):
            pass


def test_a_lock_released_meanwhile_is_taken(subuid):
    # A live holder that removes its lock after 0.3 s, as useradd does when it is done.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import os, sys, time\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "print('locked', flush=True)\n"
        "time.sleep(0.3)\n"
        "os.unlink(sys.argv[1])\n"
        "time.sleep(30)\n"), subuid + ".lock"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        with file_lock(subuid, timeout=5):
            assert time.monotonic() - start >= 0.2
            assert open(subuid + ".lock").read() == str(os.getpid())
    finally:
        holder.kill()
        holder.wait()


def test_pwd_lock_outside_etc_is_an_fcntl_lock_on_that_folders_pwd_lock(tmp_path):
    assert pwd_lock_path(str(tmp_path)) == str(tmp_path / ".pwd.lock")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(30)\n"), str(tmp_path / ".pwd.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match="could not lock %s/.pwd.lock within 0.2s" % tmp_path):
            with pwd_lock(str(tmp_path), timeout=0.2):
                pass
    finally:
        holder.kill()
        holder.wait()
    with pwd_lock(str(tmp_path), timeout=0.2):
        # While we hold it, another process cannot take it.
        probe = subprocess.run([sys.executable, "-c", (
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY)\n"
            "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)\n"),
            str(tmp_path / ".pwd.lock")], check=False)
        assert probe.returncode == 3
    assert (os.stat(tmp_path / ".pwd.lock").st_mode & 0o777) == 0o600


def test_pwd_lock_for_etc_uses_lckpwdf_and_falls_back_to_fcntl(monkeypatch, tmp_path):
    calls = []

    class FakeLibc:
        def lckpwdf(self):
            calls.append("lck")
            return 0

        def ulckpwdf(self):
            calls.append("unlck")
            return 0

    monkeypatch.setattr(shadow_lock, "_libc", FakeLibc)
    with pwd_lock("/etc"):
        assert calls == ["lck"]
    assert calls == ["lck", "unlck"]
    # Not /etc: never lckpwdf (it would lock the host's /etc/.pwd.lock, not this root's).
    with pwd_lock(str(tmp_path)):
        assert calls == ["lck", "unlck"]
        assert (tmp_path / ".pwd.lock").exists()
    # /etc without lckpwdf in libc (musl): the fcntl lock on /etc/.pwd.lock.
    monkeypatch.setattr(shadow_lock, "_libc", lambda: None)
    taken = []
    monkeypatch.setattr(shadow_lock, "fcntl_lock", lambda path, timeout: _record(taken, path))
    with pwd_lock("/etc"):
        assert taken == ["/etc/.pwd.lock"]


class _record:
    def __init__(self, taken, path):
        taken.append(path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_lckpwdf_failure_is_a_clear_error(monkeypatch):
    class Busy:
        def lckpwdf(self):
            return -1

    monkeypatch.setattr(shadow_lock, "_libc", Busy)
    with pytest.raises(LockError, match="could not lock /etc/.pwd.lock within 15s"):
        with pwd_lock("/etc"):
            pass


@pytest.mark.needs_root
def test_pwd_lock_for_etc_holds_the_systems_account_database_lock(root):
    """Whether libc's lckpwdf() or the fcntl fallback takes it, pwd_lock("/etc") holds the
    fcntl lock on /etc/.pwd.lock that useradd and passwd wait for."""
    holder = child("with shadow_lock.pwd_lock('/etc'):\n    print('locked', flush=True)\n    sys.stdin.readline()\n")
    try:
        assert holder.stdout.readline().strip() == "locked"
        fd = os.open("/etc/.pwd.lock", os.O_WRONLY)
        try:
            with pytest.raises(OSError):
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        holder.communicate("\n", timeout=20)


def test_subid_locks_take_everything_and_release_in_reverse(tmp_path):
    paths = [str(tmp_path / "subuid"), str(tmp_path / "subgid")]
    with subid_locks(paths, timeout=0.2):
        assert sorted(p.name for p in tmp_path.iterdir()) == [".pwd.lock", "subgid.lock", "subuid.lock"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".pwd.lock"]
    # A failure on the second file releases the first.
    holder = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "subuid.lock").write_text(str(holder.pid))
        with pytest.raises(LockError):
            with subid_locks(paths, timeout=0.2):
                pass
        assert not (tmp_path / "subgid.lock").exists()
    finally:
        holder.kill()
        holder.wait()


# --- root-only tests fail, never skip, when not run as root (CI runs as root) --------------

@pytest.fixture
def root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it is marked needs_root; deselect with -m 'not needs_root')")


COLLECTIONS = str(Path(__file__).resolve().parents[2] / ".collections")


def child(body, *args):
    """A Python process running ``body`` with shadow_lock imported; stdin and stdout are
    pipes for the test to drive it line by line."""
    code = ("import os, sys\nsys.path.insert(0, %r)\n"
            "from ansible_collections.fleetid.subid.plugins.module_utils import shadow_lock\n" % COLLECTIONS) + body
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


# --- lock files are created safely ---------------------------------------------------------

def test_the_pid_file_is_never_opened_through_a_planted_link(subuid, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root-only content\n")
    os.symlink(victim, "%s.%d" % (subuid, os.getpid()))
    with file_lock(subuid, timeout=1):
        assert open(subuid + ".lock").read() == str(os.getpid())
    assert victim.read_text() == "root-only content\n"
    assert not os.path.lexists("%s.%d" % (subuid, os.getpid())) and not os.path.exists(subuid + ".lock")


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o775, 0o757])
def test_a_folder_other_users_can_write_is_refused_before_any_lock(tmp_path, mode):
    folder = tmp_path / "etc"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(LockError) as err:
        with subid_locks([str(folder / "subuid"), str(folder / "subgid")], timeout=0.2):
            pass
    assert str(err.value).startswith("%s/subuid: refused, nothing was written: folder %s is writable by users other "
                                     "than its owner (mode %04o)" % (folder, folder, mode))
    assert list(folder.iterdir()) == []


@pytest.mark.needs_root
def test_a_folder_owned_by_another_user_is_refused(tmp_path, root):
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o755)
    os.chown(folder, 65534, 65534)
    with pytest.raises(LockError, match="folder %s belongs to UID 65534, not root" % folder):
        with subid_locks([str(folder / "subuid")], timeout=0.2):
            pass


def test_pid_files_of_dead_processes_are_removed_once_locked(subuid):
    dead, other = dead_pid(), subprocess.Popen(["sleep", "30"])
    try:
        for pid in (dead, other.pid):
            Path("%s.%d" % (subuid, pid)).write_text(str(pid))
        Path(subuid + ".1").write_text("alice:100000:65536\n")  # not a PID file: someone's copy
        with file_lock(subuid, timeout=1):
            pass
        assert not os.path.exists("%s.%d" % (subuid, dead))
        assert os.path.exists("%s.%d" % (subuid, other.pid))  # a live process may be linking it
        assert Path(subuid + ".1").read_text() == "alice:100000:65536\n"
    finally:
        other.kill()
        other.wait()


# --- a lock file removed while held --------------------------------------------------------

def test_a_pwd_lock_removed_while_waited_for_is_retaken_on_the_new_file(tmp_path):
    """P2 waits for .pwd.lock, which is removed meanwhile; when P1 lets go, P2 must lock the
    file that now has the name, or a third process would lock that one beside P2."""
    hold = ("with shadow_lock.pwd_lock(sys.argv[1], timeout=20):\n"
            "    print('locked', flush=True)\n    sys.stdin.readline()\n")
    first = child(hold, str(tmp_path))
    second = None
    try:
        assert first.stdout.readline().strip() == "locked"
        second = child(hold, str(tmp_path))
        wait_until_open(second.pid, tmp_path / ".pwd.lock")  # the second has opened it and waits for it
        os.unlink(tmp_path / ".pwd.lock")
        first.communicate("\n", timeout=20)
        assert second.stdout.readline().strip() == "locked"
        with pytest.raises(LockError, match="could not lock %s/.pwd.lock within 0.3s" % tmp_path):
            with pwd_lock(str(tmp_path), timeout=0.3):
                pass
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.communicate("\n", timeout=20)


def test_a_file_lock_removed_while_held_is_reported_and_not_removed_again(subuid):
    """P1 holds subuid.lock; someone removes it and we take a new one. P1's check says its
    lock is lost, and P1 does not remove our lock when it lets go."""
    holder = child("with shadow_lock.file_lock(sys.argv[1], timeout=5) as check:\n"
                   "    print('locked', flush=True)\n    sys.stdin.readline()\n"
                   "    try:\n        check()\n        print('held', flush=True)\n"
                   "    except shadow_lock.LockError as exc:\n        print('lost:', exc, flush=True)\n", subuid)
    try:
        assert holder.stdout.readline().strip() == "locked"
        os.unlink(subuid + ".lock")
        with file_lock(subuid, timeout=1) as check:
            out, dummy = holder.communicate("\n", timeout=20)
            assert out.strip() == "lost: %s.lock was removed or replaced while this run held it, so another " \
                                  "program may be writing meanwhile: nothing more was written" % subuid
            assert open(subuid + ".lock").read() == str(os.getpid())
            check()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert not os.path.exists(subuid + ".lock")


def test_subid_locks_verify_sees_a_replaced_pwd_lock(tmp_path):
    paths = [str(tmp_path / "subuid")]
    with subid_locks(paths, timeout=0.2) as locks:
        locks.verify()
        os.unlink(tmp_path / ".pwd.lock")
        (tmp_path / ".pwd.lock").write_text("")
        with pytest.raises(LockError, match="%s/.pwd.lock was removed or replaced" % tmp_path):
            locks.verify()
