"""A move with the storage, for real: a user whose lines came from outside the ledger has a
rootless container and an image with a file at a high ID; `subid_move` shifts the storage
with the lines, and the container sees the same owners, mode and capabilities after.
A shift killed in the middle is finished by the next run, where old and new ranges overlap."""

import json
import os
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import COLLECTIONS, TOP, ansible_env, run_playbook

pytestmark = pytest.mark.needs_root

PODMAN_ENV = {"CONTAINERS_CONF": str(TOP / "tests" / "podman" / "containers.conf")}
RUN_OPTIONS = ["--network", "none", "--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
JOURNAL = Path("/var/lib/fleetid-subid/shifts")
PLAY = """\
- name: Give the owners their ranges
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: fleetid.subid.subids
"""
# What the container prints about its files: owner, group and mode, as it sees them.
PROBE = ("test -e /data/f || { mkdir /data && touch /data/f /data/s && chown 1000:1000 /data/f "
         "&& chown 1000:2000 /data/s && chmod 4755 /data/s; }; stat -c '%n %u:%g %a' /data /data/f /data/s")
# A v2 file capability (cap_net_bind_service, effective): what setcap writes.
CAPS = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


@pytest.fixture
def subid_files():
    saved = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")}
    yield
    for path, data in saved.items():
        Path(path).write_bytes(data)


@pytest.fixture
def owner(subid_files):
    """A user whose lines hold 7000000+4194304 (a hand edit, as a host had it before the
    ledger), with a stopped container that made files as UID 1000 and the high-UID image."""
    subprocess.run([str(TOP / "scripts" / "images")], check=True, capture_output=True)
    name = "fs" + uuid.uuid4().hex[:6]
    subprocess.run(["useradd", "--create-home", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path, "a") as handle:
            handle.write("%s:7000000:4194304\n" % name)
    uid = int(subprocess.check_output(["id", "-u", name]))
    try:
        for image in ("fleetid-busybox", "fleetid-highuid"):
            podman(name, "load", "-q", "-i", str(TOP / ".cache" / "images" / ("%s.tar" % image)))
        podman(name, "run", "--name", "keep", *RUN_OPTIONS, "localhost/fleetid-busybox", "sh", "-c", PROBE)
        yield name
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        time.sleep(0.5)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        (JOURNAL / ("uid-%d.json" % uid)).unlink(missing_ok=True)


def podman(name, *args):
    proc = subprocess.run(["runuser", "-u", name, "--", "env", "-u", "XDG_RUNTIME_DIR", "podman", *args], cwd="/",
                          env=dict(os.environ, **PODMAN_ENV), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def stop_everything(name):
    """No process of the owner left (the pause process included): what the shift asks for."""
    subprocess.run(["pkill", "-KILL", "-u", name], check=False)
    for dummy in range(100):
        if subprocess.run(["pgrep", "-u", name], capture_output=True, check=False).returncode != 0:
            return
        time.sleep(0.1)
    raise AssertionError("processes of %s do not end" % name)


def storage_file(name, inside):
    """The host path of the container's file ``inside`` (its upper layer, or with the vfs
    driver its copy of the image)."""
    storage = Path("/home/%s/.local/share/containers/storage" % name)
    found = list(storage.glob("overlay/*/diff" + inside)) + list(storage.glob("vfs/dir/*" + inside))
    assert len(found) == 1, found
    return found[0]


def write_vars(tmp_path, name, **values):
    values.setdefault("subid_ledger", str(tmp_path / "subid-ledger.yml"))
    values.setdefault("subid_pool", {"ranges": [{"start": 9000000, "count": 20000000}], "block_size": 65536})
    values.setdefault("subid_owners", [{"name": name, "count": 4194304}])
    path = tmp_path / "vars.json"
    path.write_text(json.dumps(values))
    return path


def test_a_move_shifts_the_storage_and_the_container_sees_the_same_owners(tmp_path, owner):
    name = owner
    before = podman(name, "start", "--attach", "keep")
    assert "/data/f 1000:1000 644" in before and "/data/s 1000:2000 4755" in before, before
    setuid_file = storage_file(name, "/data/s")
    os.setxattr(setuid_file, "security.capability", CAPS)
    assert os.stat(setuid_file).st_uid == 7000000 + 999  # in-container 1000 is the 1000th ID of the range
    varfile = write_vars(tmp_path, name)
    (tmp_path / "play.yml").write_text(PLAY)

    # Held while the owner's processes run, and with no subid_move.
    held = run_playbook(tmp_path / "play.yml", "-e", "@%s" % varfile, env=PODMAN_ENV)
    assert "To move %s with its storage, list %s in subid_move" % (name, name) in " ".join((held.stdout + held.stderr).split())
    assert "%s:7000000:4194304\n" % name in Path("/etc/subuid").read_text()
    files = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid", str(tmp_path / "subid-ledger.yml"))}
    podman(name, "unshare", "true")  # the pause process runs again
    busy = run_playbook(tmp_path / "play.yml", "-e", "@%s" % varfile, "-e", '{"subid_move": ["%s"]}' % name,
                        env=PODMAN_ENV, check=False)
    assert busy.returncode != 0
    assert "%s: not shifted, processes still run in user namespaces of %s" % (name, name) in busy.stdout, busy.stdout
    assert {p: Path(p).read_bytes() for p in files} == files
    assert os.stat(setuid_file).st_uid == 7000000 + 999
    stop_everything(name)

    assert not JOURNAL.exists() or list(JOURNAL.glob("uid-*.json")) == []  # no manifest of a refused shift
    checked = run_playbook(tmp_path / "play.yml", "--check", "-e", "@%s" % varfile, "-e",
                           '{"subid_move": ["%s"]}' % name, env=PODMAN_ENV)
    assert "would be given new owners from UIDs 7000000-11194303, GIDs 7000000-11194303 to UIDs 9000000-13194303" \
        in " ".join(checked.stdout.split()), checked.stdout
    assert os.stat(setuid_file).st_uid == 7000000 + 999
    assert {p: Path(p).read_bytes() for p in files} == files

    moved = run_playbook(tmp_path / "play.yml", "-e", "@%s" % varfile, "-e", '{"subid_move": ["%s"]}' % name,
                         env=PODMAN_ENV)
    assert "given new owners from UIDs 7000000-11194303" in " ".join(moved.stdout.split()), moved.stdout
    assert "%s:9000000:4194304\n" % name in Path("/etc/subuid").read_text()
    assert "%s:9000000:4194304\n" % name in Path("/etc/subgid").read_text()
    st = os.stat(setuid_file)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (9000000 + 999, 9000000 + 1999, 0o4755)
    assert os.getxattr(setuid_file, "security.capability") == CAPS
    assert list(JOURNAL.glob("uid-*.json")) == []  # closed once the lines hold the new ranges
    # The container sees what it saw before; the image's file at ID 4000000 is still its own.
    assert podman(name, "start", "--attach", "keep") == before
    assert podman(name, "run", "--rm", *RUN_OPTIONS, "localhost/fleetid-highuid",
                  "stat", "-c", "%u:%g", "/testfile").strip() == "4000000:4000000"


KILLER = """\
import os, runpy, sys
from ansible_collections.fleetid.subid.plugins.module_utils import _storage_shift
sys.argv = ["storage_shift", sys.argv[1]]
real, done = _storage_shift._chown, [0]
def chown_then_die(*args):
    if done[0] == int(os.environ["SHIFT_KILL_AFTER"]):
        os._exit(137)  # killed between two files, as by SIGKILL
    real(*args)
    done[0] += 1
_storage_shift._chown = chown_then_die
runpy.run_module("ansible_collections.fleetid.subid.plugins.modules.storage_shift", run_name="__main__")
"""


def test_a_shift_killed_in_the_middle_is_finished_by_the_next_run(tmp_path, owner, run_module):
    """Old 7000000+4194304 and new 9000000+4194304 overlap: after the kill, an ID of the
    overlap alone could not tell a shifted file from one still to shift; the manifest can."""
    name = owner
    # Files at low IDs and at IDs of the overlap (in-container 2000001..: host 9000001.. before).
    many = ("test -d /m || { mkdir /m && for i in $(seq 1 40); do touch /m/$i /m/h$i && chown $i:$i /m/$i "
            "&& chown $((2000000 + i)):$((2000000 + i)) /m/h$i; done; }; ls -ln /m | sort")
    before = podman(name, "run", "--name", "many", *RUN_OPTIONS, "localhost/fleetid-busybox", "sh", "-c", many)
    assert " 2000040 " in before
    stop_everything(name)
    layer_files = sorted(p for p in Path("/home/%s/.local/share/containers/storage" % name).rglob("*")
                         if not p.is_symlink() and 7000000 <= p.lstat().st_uid < 11194304)
    assert len(layer_files) > 20, len(layer_files)
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "shifts": [{"owner": name, "subuid": [[9000000, 4194304]], "subgid": [[9000000, 4194304]]}]}}))
    (tmp_path / "killer.py").write_text(KILLER)
    killed = subprocess.run([sys.executable, str(tmp_path / "killer.py"), str(args)], capture_output=True, text=True,
                            env=dict(ansible_env(SHIFT_KILL_AFTER="10"), PYTHONPATH=str(COLLECTIONS)), check=False)
    assert killed.returncode == 137, killed.stdout + killed.stderr
    manifest = JOURNAL / ("uid-%d.json" % int(subprocess.check_output(["id", "-u", name])))
    assert manifest.is_file()
    # Exactly ten files moved and the rest did not: half-shifted, with its record.
    recorded = json.loads(manifest.read_text())
    at = {"new": 0, "old": 0}
    for root, entries in recorded["roots"].items():
        for rel, old_uid, old_gid, new_uid, new_gid in entries:
            st = os.lstat(os.path.join(root, rel))
            at["new" if (st.st_uid, st.st_gid) == (new_uid, new_gid) else "old"] += 1
            assert (st.st_uid, st.st_gid) in ((new_uid, new_gid), (old_uid, old_gid))
    assert at["new"] == 10 and at["old"] >= len(layer_files) - 10, at
    # The audit's host side says so, naming the owner and both ranges.
    info = run_module("fleetid.subid.subid_info", {})
    unfinished = [f for f in info["findings"] if f["kind"] == "unfinished_shift"]
    assert [(f["severity"], f["owner"]) for f in unfinished] == [("critical", name)], info["findings"]
    assert "from UIDs 7000000-11194303 to 9000000-13194303 is not finished" in unfinished[0]["message"]

    # The next routine run (no subid_move) finishes it, then writes the lines and closes it.
    varfile = write_vars(tmp_path, name)
    (tmp_path / "play.yml").write_text(PLAY)
    resumed = run_playbook(tmp_path / "play.yml", "-e", "@%s" % varfile, env=PODMAN_ENV)
    text = " ".join(resumed.stdout.split())
    assert "(finishing the shift begun before; 10 already done)" in text, text
    assert "%s:9000000:4194304\n" % name in Path("/etc/subuid").read_text()
    assert not manifest.exists()
    assert podman(name, "start", "--attach", "many") == before
    assert podman(name, "run", "--rm", *RUN_OPTIONS, "localhost/fleetid-highuid",
                  "stat", "-c", "%u:%g", "/testfile").strip() == "4000000:4000000"


def test_the_walk_changes_a_planted_link_itself_and_never_what_it_points_to(tmp_path):
    from ansible_collections.fleetid.subid.plugins.module_utils._storage_shift import (
        IdShift, ShiftError, apply, open_root, scan)

    root, target = tmp_path / "storage", tmp_path / "target"
    root.mkdir()
    (root / "layer").mkdir()
    (root / "layer" / "file").write_text("x")
    target.write_text("not the owner's")
    (root / "layer" / "link").symlink_to(target)
    os.chown(root, 5555, 5555)
    os.chown(root / "layer" / "file", 7000005, 7000005)
    os.lchown(root / "layer" / "link", 7000006, 7000006)
    os.chown(target, 7000007, 7000007)  # an old ID too: only a followed link would reach it
    shift = IdShift([(7000000, 65536)], [(9000000, 65536)])
    fd = open_root(str(root), 5555)
    try:
        entries, lost = scan(fd, shift, shift)
        assert sorted(e[0] for e in entries) == ["layer/file", "layer/link"] and lost == []
        assert apply(fd, entries) == (2, 0, 0, [])
        assert apply(fd, entries) == (0, 2, 0, [])  # a second run finds them done
    finally:
        os.close(fd)
    assert os.stat(root / "layer" / "file").st_uid == 9000005
    assert os.lstat(root / "layer" / "link").st_uid == 9000006
    assert os.stat(target).st_uid == 7000007
    # A storage root its owner does not own is someone else's: refused, nothing read.
    with pytest.raises(ShiftError, match="is owned by UID 5555, not by the owner's UID 6666"):
        open_root(str(root), 6666)
    # A root reached through a link is opened where the link pointed when resolved, and
    # must be owned by the owner there too.
    (tmp_path / "via").symlink_to(root)
    os.close(open_root(str(tmp_path / "via"), 5555))
