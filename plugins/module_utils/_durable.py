# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durable atomic replacement of a file: shared by the host module (/etc/subuid,
/etc/subgid) and the controller's file ledger and reports.

A temp file in the target's folder takes the data, the old file's owner and mode, and
an fsync; a rename then swaps it in and an fsync of the folder makes the rename durable.
A reader sees the old or the new file, never a mix. A file that must not exist yet is
linked in instead (``create_file``), which fails if another writer created it first.

A writer killed between the temp file and the rename leaves the temp file behind. Its
name, ``.<name>.tmp<pid>.<random>``, says which process wrote it, so whoever writes the
file next removes those of writers that no longer run (``remove_stale_temps``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import re
import tempfile


def write_durably(path, data, default_mode=0o644, tmp=None):
    """A temp file in the same folder with ``data``, owner and mode of the file it
    replaces, flushed to disk; returns its path for an atomic rename.

    The temp file gets a fresh name carrying the writer's pid (``remove_stale_temps``
    finds those of killed writers), or, with ``tmp``, exactly that name, created
    exclusively and never through a link.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(path)
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        mode, uid, gid = default_mode, 0, 0
    if tmp is None:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s.tmp%d." % (os.path.basename(path), os.getpid()))
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if os.geteuid() == 0:
                os.fchown(handle.fileno(), uid, gid)
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return tmp


def remove_stale_temps(path):
    """Remove the temp files of ``path`` whose writer no longer runs; returns their names.

    Only a process of this machine can be checked: call it where no writer on another
    machine can be at work on the same folder (under the file's lock).
    """
    folder, name = os.path.split(os.path.abspath(path))
    temp_name = re.compile(r"\A\.%s\.tmp([0-9]+)\.[a-z0-9_]+\Z" % re.escape(name))
    removed = []
    for entry in os.listdir(folder):
        match = temp_name.match(entry)
        if match and not _running(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, entry))
                removed.append(entry)
    return removed


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_file(path, data, default_mode=0o644):
    """Write ``data`` to a new file ``path`` atomically and durably; FileExistsError
    (nothing written) when ``path`` exists, even if it appeared a moment ago: the temp
    file is linked in, and a link never replaces a file."""
    tmp = write_durably(path, data, default_mode)
    try:
        os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_dir(path)


def replace_file(path, data, default_mode=0o644):
    """Write ``data`` to ``path`` atomically (mode and owner of the file it replaces,
    else ``default_mode``), durable once this returns."""
    tmp = write_durably(path, data, default_mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path)
