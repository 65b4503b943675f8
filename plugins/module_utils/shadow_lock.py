# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""shadow-utils' locking protocol, for /etc/subuid and /etc/subgid, and the checks that
make it safe: the files' folder, symbolic links, lock files removed behind our back.

useradd, usermod and userdel (lib/commonio.c) first take glibc's lckpwdf() (an fcntl lock
on /etc/.pwd.lock), then create ``<file>.lock`` as a hard link to a file holding their
PID. Taking the same two locks means a concurrent useradd can never interleave with us.

Every lock file is created without following symbolic links, and only in a folder that
no user but root (or the user running us) can write: there nobody else can plant a link
or a lock. A lock whose file is removed while held excludes nobody any more, so each lock
is checked after it is taken (and retaken if its file changed meanwhile), and
``Locks.verify()`` checks them all again right before a file is replaced.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat
import time

from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class LockError(FleetidError):
    """A lock could not be taken in time; the message names the lock and its holder."""


class UnsafePathError(LockError):
    """A path this module must not write or read through: a symbolic link, not a regular
    file, or in a folder other users can write. The message names the path."""


def folder_problems(path):
    """Why the folder of ``path`` is unsafe for shadow's lock and temp files, or [].

    The folder must belong to root (or to us) and be writable by nobody else: the sticky
    bit is no help, since whoever can create files there can plant ``<file>.lock`` or a
    link named like our files before we do. Each folder above it must belong to root (or
    us) and be writable by nobody else unless it is sticky (as /tmp), so nobody can move
    the folder away and put their own in its place."""
    me = os.geteuid()
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    problems, current = [], folder
    while True:
        st = os.lstat(current)
        what = "folder %s" % current if current == folder else "%s (above %s)" % (current, folder)
        if st.st_uid not in (0, me):
            problems.append("%s belongs to UID %d, not root" % (what, st.st_uid))
        if st.st_mode & 0o022 and (current == folder or not st.st_mode & stat.S_ISVTX):
            problems.append("%s is writable by users other than its owner (mode %04o)" % (what, st.st_mode & 0o7777))
        parent = os.path.dirname(current)
        if parent == current:
            return problems
        current = parent


def check_folder(path):
    """Raise UnsafePathError when folder_problems(path) finds any."""
    problems = folder_problems(path)
    if problems:
        raise UnsafePathError("%s: refused, nothing was written: %s; other users could plant the lock and temp "
                              "files written there or replace the file: keep it in a folder only root can write"
                              % (path, "; ".join(problems)))


def read_regular(path):
    """The bytes of ``path``, or None when it does not exist. Like shadow's commonio_open()
    (O_NOFOLLOW), a symbolic link is refused, and so is anything but a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | _O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError("%s is a symbolic link: shadow refuses to read a linked subid file, and this "
                                  "module neither reads nor replaces one; point the path at the file itself" % path)
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError("%s is not a regular file" % path)
        return handle.read()


def _still_names(path, st):
    """Whether ``path`` still names the file ``st`` was taken of."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def _lost(path):
    return LockError("%s was removed or replaced while this run held it, so another program may be writing "
                     "meanwhile: nothing more was written" % path)


class Locks:
    """The locks subid_locks() holds; ``verify()`` raises LockError when one was lost."""

    def __init__(self, checks):
        self._checks = checks

    def verify(self):
        for check in self._checks:
            check()


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
        with fcntl_lock(pwd_lock_path(directory), timeout) as check:
            yield check
        return
    if libc.lckpwdf() != 0:
        err = ctypes.get_errno()
        raise LockError("could not lock /etc/.pwd.lock within 15s (lckpwdf: %s): another program is "
                        "changing accounts; try again" % (os.strerror(err) if err else "timed out"))
    try:
        yield lambda: None  # glibc keeps its descriptor to itself
    finally:
        libc.ulckpwdf()


@contextlib.contextmanager
def fcntl_lock(path, timeout=PWD_LOCK_TIMEOUT):
    """An exclusive fcntl (POSIX record) lock on ``path``, created 0600 as glibc does.

    Yields a check that raises LockError once ``path`` no longer names the locked file.
    A file removed or replaced while we waited is no lock: we lock the new one instead."""
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | _O_CLOEXEC, 0o600)
        try:
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
            locked = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if _still_names(path, locked):
            break
        os.close(fd)  # releases the lock on the file that is gone

    def check():
        if not _still_names(path, locked):
            raise _lost(path)

    try:
        yield check
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def subid_locks(paths, timeout=15.0):
    """Every lock shadow takes before changing ``paths``, in shadow's order: the
    account-database lock of each folder (see pwd_lock), then ``<path>.lock`` for each
    file (see file_lock) in the order given, which must be shadow's: the subuid file
    before the subgid file, as useradd and usermod lock them. (Taken the other way round,
    a run and a useradd that holds the subuid lock wait for each other until one times
    out.) ``timeout`` applies to every lock but lckpwdf(), whose 15 s are glibc's.
    Released in reverse order, also on errors. Refuses (UnsafePathError) a file in a
    folder that other users can write (see folder_problems). Yields Locks."""
    for path in paths:
        check_folder(path)
    with contextlib.ExitStack() as stack:
        folders = sorted({os.path.realpath(os.path.dirname(os.path.abspath(p))) for p in paths})
        checks = [stack.enter_context(pwd_lock(folder, timeout)) for folder in folders]
        ordered = [path for i, path in enumerate(paths) if path not in paths[:i]]
        checks.extend(stack.enter_context(file_lock(path, timeout)) for path in ordered)
        yield Locks(checks)


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
    waited for up to ``timeout`` seconds (shadow retries 15 times, 1 s apart). The
    ``<path>.<pid>`` file is created exclusively and never through a symbolic link, and
    those that processes killed meanwhile left behind are removed once we hold the lock.
    Yields a check that raises LockError once ``<path>.lock`` is no longer our file; a
    lock that is no longer ours is never removed.
    """
    lock = path + ".lock"
    mine = "%s.%d" % (path, os.getpid())
    # The descriptor stays open while we hold the lock: the file's inode cannot be freed
    # and its number reused by a lock someone else creates after ours was removed.
    fd, ours = _create_pid_file(mine)
    try:
        with _held_file_lock(path, lock, mine, ours, timeout) as check:
            yield check
    finally:
        os.close(fd)


@contextlib.contextmanager
def _held_file_lock(path, lock, mine, ours, timeout):
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                os.link(mine, lock)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
            else:
                links = os.lstat(mine).st_nlink
                if links == 2 and _still_names(lock, ours):
                    break
                if links > 2:
                    raise LockError("could not lock %s: %s was linked but has an unexpected link count" % (path, lock))
                continue  # removed right after we linked it: link again
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

    def check():
        if not _still_names(lock, ours):
            raise _lost(lock)

    try:
        _remove_dead_pid_files(path)
        yield check
    finally:
        if _still_names(lock, ours):
            os.unlink(lock)


def _create_pid_file(name):
    """Create ``name`` holding our PID, exclusively and not through a link: (fd, stat)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC
    try:
        fd = os.open(name, flags, 0o600)
    except FileExistsError:
        # Our own PID in the name: left by an earlier process with this PID that was killed.
        os.unlink(name)
        fd = os.open(name, flags, 0o600)
    try:
        os.write(fd, str(os.getpid()).encode())
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def _remove_dead_pid_files(path):
    """Remove the ``<path>.<pid>`` files (ours or shadow's) of processes that are gone:
    a process killed between creating one and linking it leaves it behind."""
    folder, base = os.path.split(os.path.abspath(path))
    for name in os.listdir(folder):
        pid = name[len(base) + 1:]
        if not (name.startswith(base + ".") and pid.isdigit()) or int(pid) == os.getpid():
            continue
        full = os.path.join(folder, name)
        if _pid_alive(int(pid)):
            continue
        try:
            content = read_regular(full)
        except (OSError, UnsafePathError):
            continue
        # Empty: killed between creating it and writing its PID.
        if content is not None and (not content.strip(b"\0 \n") or _pid_in(content) == int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)


def _pid_in(data):
    """The PID a lock or PID file holds, read as shadow reads it: shadow writes the PID
    and its C string's NUL byte, and reads up to the first NUL; None without one."""
    text = (data or b"").split(b"\0", 1)[0].strip()
    return int(text) if text.isdigit() else None


def _read_pid(lock):
    """The PID in a regular file ``lock`` (never read through a link), or None."""
    try:
        return _pid_in(read_regular(lock))
    except (OSError, UnsafePathError):
        return None
