# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image a rootless proof runs when the inventory names none: built on the host from
the host's own shell and coreutils (sh, touch, chown, stat) and the libraries they load,
so a host without registry access can still prove a real container. Each user imports
the tarball into their own storage (``podman import``), which unpacks it through the
user's ID map exactly as an image from a registry would be.

The tarball is built in memory, byte for byte the same for the same host files (sorted
entries, owner root, mtime 0), so its digest names it: a new image only when a tool or
library on the host changed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import io
import os
import re
import stat
import tarfile

from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

# What the proof runs inside the container (see rootless_check's UserCheck.run_image).
TOOLS = ("sh", "touch", "chown", "stat")
# System folders only: a folder a user can write (PATH of the caller, /usr/local) must not
# choose what runs in every user's proof.
TOOL_DIRS = ("/usr/bin", "/bin")
IMAGE_NAME = "localhost/fleetid-subid-proof"
# Folders the container needs: /tmp for the proof's file, the runtime's mount points.
_EMPTY_DIRS = (("tmp", 0o1777), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("etc", 0o755))
# ldd's lines: "libc.so.6 => /lib/.../libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)".
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


class ProofImageError(FleetidError):
    """The host cannot build the proof image; the message says why and what to set instead."""


def find_tools(tool_dirs=TOOL_DIRS):
    found = {}
    for tool in TOOLS:
        for folder in tool_dirs:
            path = os.path.join(folder, tool)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                found[tool] = path
                break
        else:
            raise ProofImageError(
                "no %s in %s to build the proof image from: set rootless_podman_test_image (an image and its "
                "archive) or rootless_podman_proof: maps" % (tool, " or ".join(tool_dirs)))
    return found


def libraries(run_command, binary, ldd):
    """The shared objects ``binary`` loads, from ``ldd`` (none for a static binary)."""
    rc, out, err = run_command([ldd, binary])
    text = out + err
    if rc != 0:
        if "not a dynamic executable" in text or "statically linked" in text:
            return []
        raise ProofImageError("ldd %s failed: %s" % (binary, text.strip() or "exit status %d" % rc))
    missing = [line.split()[0] for line in out.splitlines() if "not found" in line]
    if missing:
        raise ProofImageError("%s needs %s, which ldd does not find" % (binary, ", ".join(missing)))
    return [match.group(1) for match in map(_LDD_PATH.search, out.splitlines()) if match]


def _entries(paths):
    """Every tar member the paths need, as {path without leading /: host path}: each
    folder and symbolic link on the way (usr-merged /bin, /lib64 links) and the files."""
    members = {}

    def add(path, depth=0):
        if depth > 40:
            raise ProofImageError("too many symbolic links resolving %s" % path)
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            here = "/" + "/".join(parts[:i])
            st = os.lstat(here)
            members["/".join(parts[:i])] = here
            if stat.S_ISLNK(st.st_mode):
                target = os.path.join(os.path.dirname(here), os.readlink(here))
                add(os.path.normpath(os.path.join(target, *parts[i:])), depth + 1)
                return
            if not stat.S_ISDIR(st.st_mode) and i < len(parts):
                raise ProofImageError("%s is not a folder" % here)

    for path in paths:
        add(path)
    return members


def build(run_command, ldd, tool_dirs=TOOL_DIRS):
    """(tarball bytes, sha256 hex) of the proof image's root file system; ``ldd``: its
    path, or None when the host has none (then only static tools will do)."""
    tools = find_tools(tool_dirs)
    needed = set(tools.values())
    for path in tools.values():
        if ldd is None:
            raise ProofImageError("the host has no ldd to find the libraries of %s: set rootless_podman_test_image "
                                  "(an image and its archive) or rootless_podman_proof: maps" % path)
        needed.update(libraries(run_command, path, ldd))
    if os.path.isfile("/etc/ld.so.cache"):
        needed.add("/etc/ld.so.cache")
    members = _entries(sorted(needed))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode in _EMPTY_DIRS:
            if name not in members:
                info = tarfile.TarInfo(name)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(_root_owned(info))
        for name in sorted(members):
            info = tar.gettarinfo(members[name], arcname=name)
            if not (info.isdir() or info.isfile() or info.issym()):
                raise ProofImageError("%s is neither a file, a folder nor a symbolic link" % members[name])
            info.mode &= 0o7755  # nothing the proof copies is writable by others inside
            if info.isfile():
                with open(members[name], "rb") as handle:
                    tar.addfile(_root_owned(info), handle)
            else:
                tar.addfile(_root_owned(info))
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def _root_owned(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info
