"""shadow's own lock files against the subid module, with a real useradd (--prefix, so the
machine's files are never touched): a lock left by a killed useradd (its PID and a NUL
byte) is cleared as shadow clears it, and the module takes the subuid lock before the
subgid lock, as useradd does, so the two never wait for each other."""

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from ansible_collections.fleetid.subid.plugins.module_utils import shadow_lock
from ansible_collections.fleetid.subid.plugins.modules import subid
from ansible.module_utils.testing import patch_module_args

pytestmark = pytest.mark.needs_root
ZED = [{"name": "zed", "start": 300000, "count": 65536}]


@pytest.fixture
def prefix(tmp_path):
    """A root for ``useradd --prefix``: copies of the account files, empty subid files."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it is marked needs_root; deselect with -m 'not needs_root')")
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        shutil.copy2("/etc/" + name, etc / name)
    for name in ("subuid", "subgid"):
        (etc / name).write_text("")
        (etc / name).chmod(0o644)
    (tmp_path / "home").mkdir()
    return tmp_path


def wait_for(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


class LiveLock:
    """``<path>.lock`` held by a live process (a sleep), in shadow's format (or, without
    ``nul``, in the module's own: the PID alone)."""

    def __init__(self, path, nul=True):
        self.holder = subprocess.Popen(["sleep", "60"])
        self.pid_file = "%s.%d" % (path, self.holder.pid)
        self.lock = path + ".lock"
        with open(self.pid_file, "wb") as handle:
            handle.write(b"%d%s" % (self.holder.pid, b"\0" if nul else b""))
        os.link(self.pid_file, self.lock)

    def release(self):
        for name in (self.lock, self.pid_file):
            if os.path.lexists(name):
                os.unlink(name)
        self.holder.kill()
        self.holder.wait()


def useradd(prefix, name):
    return subprocess.Popen(["useradd", "--prefix", str(prefix), "-M", "-K", "SUB_UID_COUNT=65536",
                             "-K", "SUB_GID_COUNT=65536", name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def apply(prefix, **extra):
    etc = prefix / "etc"
    args = dict(subuid=ZED, subgid=ZED, subuid_path=str(etc / "subuid"), subgid_path=str(etc / "subgid"),
                check_host_ids=False, lock_timeout=4.0)
    args.update(extra)
    with patch_module_args(args):
        return subid.apply(subid.build_module())[0]


def test_a_lock_left_by_a_killed_useradd_is_cleared_as_shadow_clears_it(prefix):
    etc = prefix / "etc"
    held = LiveLock(str(etc / "subgid"))  # useradd locks subuid, then waits here
    try:
        adding = useradd(prefix, "fleetid-lock-probe")
        wait_for((etc / "subuid.lock").exists)
        adding.send_signal(signal.SIGKILL)
        adding.wait()
    finally:
        held.release()
    left = (etc / "subuid.lock").read_bytes()
    assert left == b"%d\0" % adding.pid  # shadow's format: the PID and its NUL byte
    started = time.monotonic()
    result = apply(prefix)
    assert time.monotonic() - started < 3.0  # not the lock timeout: the dead holder's lock goes
    assert result["changed"] and (etc / "subuid").read_text() == "zed:300000:65536\n"
    assert not (etc / "subuid.lock").exists() and not (etc / "subgid.lock").exists()
    assert sorted(p.name for p in etc.iterdir() if p.name.startswith("sub")) == ["subgid", "subuid"]


def test_a_live_lock_in_shadows_format_names_its_holder(prefix):
    etc = prefix / "etc"
    held = LiveLock(str(etc / "subuid"))
    try:
        with pytest.raises(shadow_lock.LockError) as failed:
            apply(prefix, lock_timeout=0.5)
    finally:
        held.release()
    assert str(failed.value) == "could not lock %s within 0.5s: %s.lock is held by PID %d" % (
        etc / "subuid", etc / "subuid", held.holder.pid)
    assert (etc / "subuid").read_text() == "" and not (etc / "subgid.lock").exists()


def test_the_subuid_lock_is_taken_before_the_subgid_lock(prefix):
    etc = prefix / "etc"
    held = LiveLock(str(etc / "subuid"), nul=False)  # the order alone, whatever the format
    outcome = {}
    run = threading.Thread(target=lambda: outcome.update(result=apply(prefix)))
    try:
        run.start()
        # While the module waits for the subuid lock it must hold nothing of the subgid file.
        wait_for((etc / ("subuid.%d" % os.getpid())).exists)  # its PID file: it tries to link it
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert not (etc / "subgid.lock").exists()
            time.sleep(0.01)
    finally:
        held.release()
        run.join()
    assert outcome["result"]["changed"]


def test_the_module_and_a_useradd_that_holds_the_subuid_lock_both_finish(prefix):
    # useradd holds subuid.lock and retries subgid.lock once a second; the module starts
    # meanwhile. Taking subgid first, it would hold what useradd waits for while waiting
    # for what useradd holds, until one of them timed out.
    etc = prefix / "etc"
    held = LiveLock(str(etc / "subgid"))
    outcome = {}
    run = threading.Thread(target=lambda: outcome.update(result=apply(prefix, lock_timeout=20.0)))
    try:
        adding = useradd(prefix, "fleetid-order-probe")
        wait_for((etc / "subuid.lock").exists)
        run.start()
        wait_for((etc / ("subuid.%d" % os.getpid())).exists)  # the module is waiting for subuid.lock
    finally:
        held.release()
    output, dummy = adding.communicate(timeout=30)
    run.join(timeout=30)
    assert adding.returncode == 0, output
    assert outcome["result"]["changed"]
    lines = (etc / "subuid").read_text().splitlines()
    assert "zed:300000:65536" in lines and any(line.startswith("fleetid-order-probe:") for line in lines)
