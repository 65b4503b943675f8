"""How the real shadow (newuidmap 4.13) reads odd /etc/subuid lines, against the module's
reading of them, and the module fixing them on the real files.

``unshare --map-users=OUTER,0,COUNT`` (util-linux) asks newuidmap for exactly that map:
it succeeds only when shadow grants the user those IDs."""

import subprocess
from pathlib import Path

import pytest
from real_host import as_user, real_files, users  # noqa: F401  pylint: disable=unused-import

from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SubidFile

pytestmark = pytest.mark.needs_root

START, COUNT = 7000000, 65536


def shadow_grants(name, outer, count):
    proc = subprocess.run(["runuser", "-u", name, "--", "unshare", "--map-users=%d,0,%d" % (outer, count),
                           "cat", "/proc/self/uid_map"], capture_output=True, text=True, cwd="/", check=False)
    return proc.returncode == 0


def module_grants(text, name, outer, count):
    """Whether the module's reading of ``text`` gives ``name`` the IDs outer..outer+count-1."""
    return any(e.owner == name and not e.ignored and e.range and e.range.start <= outer
               and outer + count <= e.range.end for e in SubidFile("/etc/subuid", text).entries)


@pytest.mark.parametrize("line,probe", [
    ("{u}:-0:65536\n", (0, 65536)),                       # root, through a sign
    ("{u}:0:0\n", (0, 1)),                                # every ID ...
    ("{u}:0:0\n", (4294000000, 967295)),                  # ... up to the last one
    ("{u}:100000:4294967295\n", (4000000000, 1000)),      # past 2^32: everything above its start
    ("{u}:4294000000:10000000\n", (4294000000, 967295)),
    ("{u}:5:0\n", (5, 1)),                                # nothing
    ("{u}:-1:2\n", (0, 1)),                               # nothing: wraps
    ("x\0junk\n{u}:7000000:65536\n", (7000000, 65536)),   # joined into "x{u}:...": not the user's
    ("{u}:700\0junk\n0000:65536\n", (7000000, 65536)),    # joined into "{u}:7000000:65536": the user's
    ("+{u}:7000000:65536\n", (7000000, 65536)),           # a NIS entry: ignored
    ("{u}:7000000:65536\r\n", (7000000, 65536)),          # CR: ignored
    ("{u}:7000000:65536\0", (7000000, 65536)),            # NUL in the last line, no newline: read
    ("{u}:7000000:65536\0\n", (7000000, 65536)),          # NUL in the last line, newline: nothing read
    ("{u}:07000000:65536\n", (0o7000000, 65536)),         # octal
])
def test_the_module_reads_a_line_as_newuidmap_does(users, line, probe):
    name = users()
    text = line.format(u=name)
    Path("/etc/subuid").write_bytes(text.encode())
    assert module_grants(text, name, *probe) == shadow_grants(name, *probe), (text, probe)


def row(inside, outside, length):
    return "%10d %10d %10d\n" % (inside, outside, length)


def test_a_range_over_root_written_with_a_sign_is_replaced(run_module, users):
    name = users()
    for path in ("/etc/subuid", "/etc/subgid"):
        Path(path).write_text("%s:-0:65536\n" % name)
    assert shadow_grants(name, 0, 1)  # the line really maps root
    entries = [{"name": name, "start": START, "count": COUNT}]
    res = run_module("fleetid.subid.subid", {"subuid": entries, "subgid": entries})
    assert res["changed"] is True and res["files"]["subuid"]["removed"] == ["%s:-0:65536" % name]
    assert Path("/etc/subuid").read_text() == "%s:%d:%d\n" % (name, START, COUNT)
    assert not shadow_grants(name, 0, 1)
    assert as_user(name, "unshare", "--user", "--map-auto", "cat", "/proc/self/uid_map") == row(0, START, COUNT)
    gone = run_module("fleetid.subid.subid", {"subuid": [{"name": name}], "subgid": [{"name": name}],
                                              "state": "absent"})
    assert gone["changed"] is True and Path("/etc/subuid").read_text() == ""


def test_an_owner_behind_a_nul_byte_is_written_where_shadow_reads_it(run_module, users):
    name = users()
    text = "# note\0\n%s:%d:%d\n" % (name, START, COUNT)  # shadow reads one comment line
    for path in ("/etc/subuid", "/etc/subgid"):
        Path(path).write_bytes(text.encode())
    assert not shadow_grants(name, START, COUNT)
    entries = [{"name": name, "start": START, "count": COUNT}]
    res = run_module("fleetid.subid.subid", {"subuid": entries, "subgid": entries})
    assert res["changed"] is True
    assert shadow_grants(name, START, COUNT)
