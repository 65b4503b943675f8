# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""shadow-utils' locking protocol, for /etc/subuid and /etc/subgid.

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
import fcntl
import os
import time


class LockError(RuntimeError):
    """A lock could not be taken in time; the message names the lock and its holder."""


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc if hasattr(libc, "lckpwdf") else None
    except OSError:
        return None


SYSTEM_ETC = "/etc"
PWD_LOCK_NAME = ".pwd.lock"
PWD_LOCK_TIMEOUT = 15.0  # glibc's own timeout inside lckpwdf()


def pwd_lock_path(directory):
    """The account-database lock that guards files in ``directory``: ``<directory>/.pwd.lock``.

    For /etc that is glibc's /etc/.pwd.lock. For any other folder (a chroot's or image's
    etc, a test folder) it is the ``.pwd.lock`` of that folder: what ``useradd --root
    ROOT`` takes inside ROOT, where lckpwdf() resolves to ROOT/etc/.pwd.lock.
    """
    return os.path.join(directory, PWD_LOCK_NAME)


@contextlib.contextmanager
def pwd_lock(directory=SYSTEM_ETC, timeout=PWD_LOCK_TIMEOUT):
    """The account-database lock for the files in ``directory``.

    /etc: glibc's lckpwdf()/ulckpwdf() (an fcntl write lock on /etc/.pwd.lock; glibc waits
    up to 15 s). Where libc has no lckpwdf (musl), or for any other folder: the same fcntl
    lock taken here on ``<directory>/.pwd.lock``, waiting up to ``timeout`` seconds. Both
    are POSIX record locks on the same file, so they exclude each other.
    """
    directory = os.path.realpath(directory)
    libc = _libc() if directory == SYSTEM_ETC else None
    if libc is None:
        with fcntl_lock(pwd_lock_path(directory), timeout):
            yield
        return
    if libc.lckpwdf() != 0:
        err = ctypes.get_errno()
        raise LockError("could not lock /etc/.pwd.lock within 15s (lckpwdf: %s): another program is "
                        "changing accounts; try again" % (os.strerror(err) if err else "timed out"))
    try:
        yield
    finally:
        libc.ulckpwdf()


@contextlib.contextmanager
def fcntl_lock(path, timeout=PWD_LOCK_TIMEOUT):
    """An exclusive fcntl (POSIX record) lock on ``path``, created 0600 as glibc does."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    raise
            if time.monotonic() >= deadline:
                raise LockError("could not lock %s within %gs: another program holds it" % (path, timeout))
            time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def subid_locks(paths, timeout=15.0):
    """Every lock shadow takes before changing ``paths``, in shadow's order: the
    account-database lock of each folder (see pwd_lock), then ``<path>.lock`` for each
    file (see file_lock). ``timeout`` applies to every lock but lckpwdf(), whose 15 s
    are glibc's. Released in reverse order, also on errors."""
    with contextlib.ExitStack() as stack:
        folders = sorted({os.path.realpath(os.path.dirname(os.path.abspath(p))) for p in paths})
        for folder in folders:
            stack.enter_context(pwd_lock(folder, timeout))
        for path in sorted(set(paths)):
            stack.enter_context(file_lock(path, timeout))
        yield


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


@contextlib.contextmanager
def file_lock(path, timeout=15.0):
    """``<path>.lock`` the way shadow's do_lock_file() creates it: our PID in a file
    ``<path>.<pid>``, hard-linked to ``<path>.lock``; the lock is ours when the link
    succeeds and the file then has two links.

    A lock whose PID is no longer running is removed, as shadow does; a live holder is
    waited for up to ``timeout`` seconds (shadow retries 15 times, 1 s apart).
    """
    lock = path + ".lock"
    mine = "%s.%d" % (path, os.getpid())
    fd = os.open(mine, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                os.link(mine, lock)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
            else:
                if os.stat(mine).st_nlink == 2:
                    break
                raise LockError("could not lock %s: %s was linked but has an unexpected link count" % (path, lock))
            holder = _read_pid(lock)
            if holder is not None and not _pid_alive(holder):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)  # stale: its process is gone
                continue
            if time.monotonic() >= deadline:
                raise LockError("could not lock %s within %gs: %s is held by PID %s%s"
                                % (path, timeout, lock, holder if holder is not None else "unknown",
                                   "" if holder is not None else " (the lock file holds no PID; remove it "
                                   "if no useradd, usermod or userdel is running)"))
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
