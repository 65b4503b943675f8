"""The proof image built from the host's own tools (module_utils._proof_image), built here
from this machine's sh, touch, chown and stat and read back as a tarball."""

import io
import os
import shutil
import subprocess
import tarfile

import pytest

from ansible_collections.fleetid.subid.plugins.module_utils import _proof_image


def run_command(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def resolve(found, name, depth=0):
    """The member a path leads to inside the image, following its links as the container would."""
    assert depth < 20, name
    parts = name.split("/")
    for i in range(1, len(parts) + 1):
        here = "/".join(parts[:i])
        member = found[here]
        if member.issym():
            target = member.linkname.lstrip("/") if member.linkname.startswith("/") else \
                os.path.normpath(os.path.join(os.path.dirname(here), member.linkname))
            return resolve(found, "/".join([target] + parts[i:]), depth + 1)
    return found[name]


def test_the_image_holds_the_tools_and_every_library_they_load_and_nothing_is_writable():
    data, digest = _proof_image.build(run_command, shutil.which("ldd"))
    again, same = _proof_image.build(run_command, shutil.which("ldd"))
    assert (again, same) == (data, digest)  # the same host files give the same image
    found = members(data)
    for tool in _proof_image.TOOLS:
        assert resolve(found, "usr/bin/" + tool if "usr/bin/" + tool in found else "bin/" + tool).isfile(), tool
    for line in run_command([shutil.which("ldd"), "/usr/bin/chown"])[1].splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            assert resolve(found, path.lstrip("/")).isfile(), path
    assert oct(found["tmp"].mode) == "0o1777"
    assert all((m.uid, m.gid, m.mtime) == (0, 0, 0) for m in found.values())
    assert not any(m.mode & 0o002 for m in found.values() if not m.issym() and m.name != "tmp")


def test_a_host_without_ldd_or_a_tool_gets_a_reason_and_the_fix(tmp_path):
    with pytest.raises(_proof_image.ProofImageError, match="the host has no ldd .* set rootless_podman_test_image"):
        _proof_image.build(run_command, None)
    with pytest.raises(_proof_image.ProofImageError, match=r"no sh in %s to build the proof image from" % tmp_path):
        _proof_image.find_tools((str(tmp_path),))
