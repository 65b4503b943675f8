"""fleetid.subid.subid on this machine's real /etc/subuid and /etc/subgid: a real useradd,
and the real newuidmap/newgidmap (called by util-linux unshare --map-auto) granting exactly
what the module wrote."""

import subprocess
from pathlib import Path

import pytest
from real_host import as_user, real_files, users  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.needs_root

START, COUNT = 7000000, 65536


def test_newuidmap_grants_exactly_the_applied_range(run_module, users):
    name = users()
    uid = int(subprocess.check_output(["id", "-u", name]))
    gid = int(subprocess.check_output(["id", "-g", name]))
    assert name not in Path("/etc/subuid").read_text()  # useradd -K SUB_UID_COUNT=0 wrote nothing
    # Without a range, --map-auto has nothing to map: unshare fails.
    denied = subprocess.run(["runuser", "-u", name, "--", "unshare", "--user", "--map-auto", "true"],
                            capture_output=True, text=True, cwd="/", check=False)
    assert denied.returncode != 0

    entries = [{"name": name, "start": START, "count": COUNT}]
    res = run_module("fleetid.subid.subid", {"subuid": entries, "subgid": entries})
    assert res["changed"] is True and res["subuid"] == entries, res
    for path in ("/etc/subuid", "/etc/subgid"):
        assert "%s:%d:%d\n" % (name, START, COUNT) in Path(path).read_text()
        st = Path(path).stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o644, 0, 0)
        assert not Path(path + ".lock").exists()

    # /proc/PID/uid_map prints each row as three right-aligned 10-wide columns.
    def row(inside, outside, length):
        return "%10d %10d %10d\n" % (inside, outside, length)

    # --map-auto alone: the whole range from 0.
    assert as_user(name, "unshare", "--user", "--map-auto", "cat", "/proc/self/uid_map") == row(0, START, COUNT)
    assert as_user(name, "unshare", "--user", "--map-auto", "cat", "/proc/self/gid_map") == row(0, START, COUNT)
    # With --map-root-user the user's own ID becomes 0 and the range follows from 1
    # (util-linux then maps one ID fewer of the range: 65535).
    assert as_user(name, "unshare", "--user", "--map-auto", "--map-root-user", "cat", "/proc/self/uid_map") == (
        row(0, uid, 1) + row(1, START, COUNT - 1))
    assert as_user(name, "unshare", "--user", "--map-auto", "--map-root-user", "cat", "/proc/self/gid_map") == (
        row(0, gid, 1) + row(1, START, COUNT - 1))

    # Idempotent on the real files too; and absent takes the grant away again.
    assert run_module("fleetid.subid.subid", {"subuid": entries, "subgid": entries})["changed"] is False
    gone = run_module("fleetid.subid.subid", {"subuid": [{"name": name}], "subgid": [{"name": name}],
                                              "state": "absent"})
    assert gone["changed"] is True and name not in Path("/etc/subuid").read_text()
