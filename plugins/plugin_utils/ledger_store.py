# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger file on the controller: lock-free reads, locked atomic writes.

Writers hold an fcntl lock on ``<ledger>.lock`` (a separate file, so replacing the
ledger by rename never invalidates the lock) around read, allocate and write. The
ledger itself is only ever replaced whole by rename, so a reader without the lock sees
the old or the new version, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time


class LedgerLockTimeout(RuntimeError):
    """Another process held the ledger lock for longer than the timeout."""


class LedgerStore:
    def __init__(self, path, lock_timeout=60.0):
        self.path = os.path.abspath(path)
        self.lock_path = self.path + ".lock"
        self.lock_timeout = lock_timeout

    def read(self):
        """The ledger text; an absent ledger reads as empty."""
        try:
            with open(self.path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""

    @contextlib.contextmanager
    def locked(self):
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + self.lock_timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    raise LedgerLockTimeout(
                        "could not lock the ledger within %gs: %s is held by %s"
                        % (self.lock_timeout, self.lock_path, self._holder(fd)))
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            # Who holds it, for the timeout message of whoever waits next.
            os.ftruncate(fd, 0)
            os.pwrite(fd, ("pid %d on %s\n" % (os.getpid(), os.uname().nodename)).encode(), 0)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    @staticmethod
    def _holder(fd):
        try:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        except OSError:
            return "another process"

    def write(self, text):
        """Replace the ledger atomically: temp file in the same folder, fsync, rename."""
        folder = os.path.dirname(self.path)
        try:
            mode = os.stat(self.path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(self.path) + ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
