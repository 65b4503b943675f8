# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""shadow-utils' locking protocol and a durable atomic write, for /etc/subuid and /etc/subgid.

useradd, usermod and userdel (lib/commonio.c) first take glibc's lckpwdf() (an fcntl lock
on /etc/.pwd.lock), then create ``<file>.lock`` as a hard link to a file holding their
PID. Taking the same two locks means a concurrent useradd can never interleave with us.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import ctypes.util
import errno
import os
import tempfile
import time


class LockError(RuntimeError):
    """A lock could not be taken in time; the message names the lock and its holder."""


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc if hasattr(libc, "lckpwdf") else None
    except OSError:
        return None


@contextlib.contextmanager
def pwd_lock():
    """glibc's lckpwdf()/ulckpwdf(): waits up to 15 s (inside glibc) for /etc/.pwd.lock."""
    libc = _libc()
    if libc is None:  # not glibc (musl has no lckpwdf): the per-file locks still apply
        yield
        return
    if libc.lckpwdf() != 0:
        raise LockError("could not lock /etc/.pwd.lock within 15s (lckpwdf): another program is "
                        "changing accounts; try again")
    try:
        yield
    finally:
        libc.ulckpwdf()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


@contextlib.contextmanager
def file_lock(path, timeout=15.0):
    """``<path>.lock`` the way shadow creates it: a hard link to a file with our PID.

    A lock left by a dead process is removed, as shadow does.
    """
    lock = path + ".lock"
    mine = "%s.%d" % (path, os.getpid())
    with open(mine, "w") as handle:
        handle.write("%d" % os.getpid())
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                os.link(mine, lock)
                if os.stat(mine).st_nlink == 2:
                    break
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
            holder = _read_pid(lock)
            if holder is not None and not _pid_alive(holder):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
                continue
            if time.monotonic() >= deadline:
                raise LockError("could not lock %s within %gs: %s is held by PID %s"
                                % (path, timeout, lock, holder if holder is not None else "unknown"))
            time.sleep(0.05)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(mine)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def _read_pid(lock):
    try:
        with open(lock) as handle:
            text = handle.read().strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def write_durably(path, data, default_mode=0o644):
    """A temp file in the same folder with ``data``, owner and mode of the file it
    replaces, flushed to disk; returns its path for an atomic rename."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(path)
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        mode, uid, gid = default_mode, 0, 0
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
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


def fsync_dir(path):
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
