"""shadow's locking protocol: <file>.lock by hard link with a PID, stale locks, the
account-database lock (fcntl on .pwd.lock) outside /etc."""

import os
import subprocess
import sys
import time

import pytest

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


def test_real_lckpwdf_is_available_here():
    """On this glibc system the module really takes lckpwdf (not the fallback)."""
    assert shadow_lock._libc() is not None


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
