"""fleetid.subid.subid on this machine's real /etc/subuid and /etc/subgid: a real useradd,
the real newuidmap reading what the module wrote, and a race with useradd/userdel."""

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import find_overlaps
from ansible_collections.fleetid.subid.plugins.module_utils.subid_file import SubidFile

pytestmark = pytest.mark.needs_root

REAL = ("/etc/subuid", "/etc/subgid")


@pytest.fixture
def real_files():
    saved = {p: Path(p).read_bytes() for p in REAL}
    yield
    for path, data in saved.items():
        Path(path).write_bytes(data)


@pytest.fixture
def users(real_files):
    created = []

    def make(**useradd_options):
        name = "fr" + uuid.uuid4().hex[:8]
        extra = [] if useradd_options.get("allocate") else ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
        subprocess.run(["useradd", "--create-home", *extra, name], check=True)
        created.append(name)
        return name

    yield make
    for name in created:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def as_user(name, *cmd):
    return subprocess.run(["runuser", "-u", name, "--", *cmd], check=True, capture_output=True, text=True,
                          cwd="/").stdout


def map_rows(text):
    return [tuple(int(f) for f in line.split()) for line in text.splitlines() if line.strip()]


def test_newuidmap_grants_exactly_the_applied_range(run_module, users):
    name = users()
    uid = int(subprocess.check_output(["id", "-u", name]))
    gid = int(subprocess.check_output(["id", "-g", name]))
    entries = [{"name": name, "start": 7000000, "count": 65536}]
    res = run_module("fleetid.subid.subid", {"subuid": entries, "subgid": entries})
    assert res["changed"] is True, res
    assert "%s:7000000:65536\n" % name in Path("/etc/subuid").read_text()

    # util-linux asks the real newuidmap/newgidmap for the ranges in the files.
    assert map_rows(as_user(name, "unshare", "--user", "--map-auto", "cat", "/proc/self/uid_map")) == [
        (0, 7000000, 65536)]
    assert map_rows(as_user(name, "unshare", "--user", "--map-auto", "cat", "/proc/self/gid_map")) == [
        (0, 7000000, 65536)]
    # With --map-root-user, the user's own ID becomes 0 and the range follows (util-linux
    # maps one ID fewer than the range there).
    assert map_rows(as_user(name, "unshare", "--user", "--map-auto", "--map-root-user", "cat",
                            "/proc/self/uid_map")) == [(0, uid, 1), (1, 7000000, 65535)]
    assert map_rows(as_user(name, "unshare", "--user", "--map-auto", "--map-root-user", "cat",
                            "/proc/self/gid_map")) == [(0, gid, 1), (1, 7000000, 65535)]


def test_module_and_useradd_racing_on_the_same_files_lose_nothing(run_module, users, tmp_path):
    """useradd/userdel (which allocate from login.defs, first fit, under shadow's locks) loop
    while the module applies ranges; afterwards every line is whole and nobody overlaps.
    (A useradd that fails still leaves its group behind: the loop keeps one user alive so
    its window never runs out.)"""
    owners = [users() for dummy in range(3)]
    stop = threading.Event()
    churned, deleted, errors = [], set(), []

    def churn():
        while not stop.is_set():
            name = "fc" + uuid.uuid4().hex[:8]
            proc = subprocess.run(["useradd", "--no-create-home", "-K", "SUB_UID_MIN=100000",
                                   "-K", "SUB_UID_MAX=6000000", "-K", "SUB_UID_COUNT=65536",
                                   "-K", "SUB_GID_MIN=100000", "-K", "SUB_GID_MAX=6000000",
                                   "-K", "SUB_GID_COUNT=65536", name], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)
                continue
            churned.append(name)
            if len(churned) >= 2:  # keep one alive: the window is never exhausted
                subprocess.run(["userdel", churned[-2]], check=True)
                deleted.add(churned[-2])

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for round_number in range(6):
            entries = [{"name": name, "start": 8000000 + (i * 6 + round_number % 2) * 65536, "count": 65536}
                       for i, name in enumerate(owners)]
            res = run_module("fleetid.subid.subid", {"subuid": entries, "subgid": entries, "lock_timeout": 30})
            assert not res.get("failed"), res
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    try:
        assert not errors, errors[:3]
        survivors = set(churned) - deleted
        for path in REAL:
            text = Path(path).read_text()
            parsed = SubidFile(path, text)
            assert not parsed.malformed, parsed.malformed
            by_owner = {}
            for entry in parsed.entries:
                by_owner.setdefault(entry.owner, []).append((entry.start, entry.count))
            for i, name in enumerate(owners):  # the module's owners have exactly their last ranges
                assert by_owner[name] == [(8000000 + (i * 6 + 1) * 65536, 65536)]
            for name in survivors:  # useradd's surviving users still have their lines
                assert name in by_owner, (name, path)
            for name in deleted:  # and userdel's removals stuck
                assert name not in by_owner, (name, path)
            assert not find_overlaps(parsed.entries, key=lambda e: e.range)
        assert len(churned) >= 4, "the race needs useradd running meanwhile"
    finally:
        for name in churned:
            subprocess.run(["userdel", name], check=False, capture_output=True)
