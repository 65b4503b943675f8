# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger file on the controller: lock-free reads, locked atomic writes.

Writers hold an fcntl lock on ``<ledger>.lock`` (a separate file, so replacing the
ledger by rename never invalidates the lock) around read, allocate and write. The
ledger itself is only ever replaced whole by rename, so a reader without the lock sees
the old or the new version, never a mix.

A fully validating parse of a 50,000-block ledger takes longer than a converged host's
call may (100 ms), so the store remembers, per ledger, the SHA-256 of the last canonical
text it validated together with the spans of its blocks. A text with that digest is
byte-for-byte one already validated: only the requested owners' lines need reading. Any
other text (a hand edit, another controller's write) is parsed and validated in full.
The memo lives in the user's cache folder; losing it only costs time. It is only
written by a store opened for writing: check mode leaves no trace.
"""

from __future__ import annotations

import array
import contextlib
import errno
import fcntl
import hashlib
import os
import sys
import time

from ansible_collections.fleetid.subid.plugins.module_utils._durable import replace_file
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import pool_admits
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Snapshot, SpanIndex, load, owner_blocks, render

_MEMO_MAGIC = b"fleetid.subid spans 1\n"


class LedgerLockTimeout(RuntimeError):
    """Another process held the ledger lock for longer than the timeout."""


class FileStore:
    def __init__(self, path, lock_timeout=60.0, cache_dir=None, read_only=False):
        self.path = os.path.abspath(os.path.expanduser(path))
        self.location = self.path
        self.read_only = read_only
        self.lock_path = self.path + ".lock"
        self.lock_timeout = lock_timeout
        if cache_dir is None:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            cache_dir = os.path.join(base, "fleetid.subid")
        name = hashlib.sha256(self.path.encode()).hexdigest()[:32]
        self.memo_path = os.path.join(cache_dir, "ledger-%s.spans" % name)

    def validated_spans(self, text):
        """The SpanIndex of ``text`` if this exact text was validated before, else None."""
        digest = hashlib.sha256(text.encode()).digest()
        try:
            with open(self.memo_path, "rb") as handle:
                data = handle.read()
        except OSError:
            return None
        head = len(_MEMO_MAGIC) + len(digest)
        if data[:len(_MEMO_MAGIC)] != _MEMO_MAGIC or data[len(_MEMO_MAGIC):head] != digest:
            return None
        numbers = array.array("Q")
        numbers.frombytes(data[head:])
        if sys.byteorder != "little":
            numbers.byteswap()
        half = len(numbers) // 2
        return SpanIndex(numbers[:half], numbers[half:])

    def remember_valid(self, text, blocks):
        """Record that ``text`` (canonical) was validated and holds ``blocks`` (sorted)."""
        if self.read_only:
            return
        spans = SpanIndex.of(blocks)
        numbers = array.array("Q", spans.starts)
        numbers.extend(spans.ends)
        if sys.byteorder != "little":
            numbers.byteswap()
        data = _MEMO_MAGIC + hashlib.sha256(text.encode()).digest() + numbers.tobytes()
        try:
            os.makedirs(os.path.dirname(self.memo_path), mode=0o700, exist_ok=True)
            replace_file(self.memo_path, data, 0o600)
        except OSError:
            pass  # only a cache: the next call validates in full

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
        """Replace the ledger atomically, keeping its mode (0644 for a new ledger)."""
        replace_file(self.path, text.encode("utf-8"), 0o644)

    # The store interface of plugin_utils.ledger_service.

    def owner_blocks(self, names, pool):
        text = self.read()
        spans = self.validated_spans(text)
        if spans is None or not pool_admits(spans, pool):
            return None
        return owner_blocks(text, names)

    def snapshot(self):
        text = self.read()
        blocks, canonical = load(text, self.path)
        if canonical:
            self.remember_valid(text, blocks)
        return Snapshot(blocks, text)

    @contextlib.contextmanager
    def transaction(self):
        if self.read_only:
            raise RuntimeError("a read-only ledger store cannot be changed")
        with self.locked():
            yield _FileTransaction(self)

    def close(self):
        pass


class _FileTransaction:
    """Inside the lock: the token is the ledger text itself."""

    def __init__(self, store):
        self.store = store

    def token(self):
        return self.store.read()

    def snapshot(self):
        return self.store.snapshot()

    def commit(self, before, after, change):
        del before, change  # the file is rewritten whole
        text = render(after)
        self.store.write(text)
        self.store.remember_valid(text, sorted(after, key=lambda b: b.start))
