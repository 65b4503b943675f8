# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger file on the controller: lock-free reads, locked atomic writes.

Writers hold an fcntl lock on ``<ledger>.lock`` (a separate file, so replacing the
ledger by rename never invalidates the lock) around read, allocate and write. The
ledger itself is only ever replaced whole by rename, so a reader without the lock sees
the old or the new version, never a mix.

A fully validating parse of a 200,000-block ledger takes seconds, far longer than a
converged host's call may (100 ms), so the store remembers, per ledger, the last
canonical text it validated, byte for byte, together with that text's ``LedgerIndex``
(the spans of its blocks, where each line is, and the blocks in owner order). A ledger
whose bytes equal the remembered ones is a text already validated: only the requested
owners' lines are read, found by binary search. Comparing the bytes is a memcmp; a
digest of a 21 MiB ledger would cost more than the rest of the call, and a copy needs
no trust in file times or in a hash. A write into such a text splices the new and
changed lines into it, each checked on its own (``LedgerIndex.splice``), and remembers
the new text and its index. Any other text (a hand edit, another controller's write, a
memo lost or damaged) is parsed and validated in full. The memo lives in the user's
cache folder; losing it only costs time. It is only written by a store opened for
writing: check mode leaves no trace.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import time

from ansible_collections.fleetid.subid.plugins.module_utils._durable import create_file, remove_stale_temps, replace_file
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import ID_LIMIT
from ansible_collections.fleetid.subid.plugins.plugin_utils._file_index import LedgerIndex, apply_change
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import pool_admits
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import (
    LedgerError,
    Snapshot,
    View,
    load,
    render,
    seal,
    unseal,
)
from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

# The memo: this magic, the length of the index's bytes (8 bytes, little-endian), the
# index (LedgerIndex.to_bytes), then the ledger text it belongs to, as read.
_MEMO_MAGIC = b"fleetid.subid index 3\n"
_MEMO_HEAD = len(_MEMO_MAGIC) + 8


class LedgerLockTimeout(FleetidError):
    """Another process held the ledger lock for longer than the timeout."""


def _file_kind(mode):
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def _installed_collection_of(path):
    """The folder of the installed collection (one with a MANIFEST.json, as ansible-galaxy
    installs it) that ``path`` lies in, or None. A checkout has a galaxy.yml instead."""
    folder = os.path.dirname(path)
    while True:
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        if os.path.basename(os.path.dirname(parent)) == "ansible_collections" and \
                os.path.isfile(os.path.join(folder, "MANIFEST.json")):
            return folder
        folder = parent


class FileStore:
    def __init__(self, path, lock_timeout=60.0, cache_dir=None, read_only=False):
        # A symlinked ledger (say to a shared ledger in another checkout) is read and
        # written where it leads, so the link stays a link and the target stays current;
        # the lock lies beside the target, so every path to one ledger takes one lock.
        self.given_path = os.path.abspath(os.path.expanduser(path))
        self.path = os.path.realpath(self.given_path)
        collection = _installed_collection_of(self.path)
        if collection:
            raise LedgerError(
                "ledger %s refused, nothing was read or written: it lies inside the installed collection %s, "
                "which 'ansible-galaxy collection install --force' (an upgrade) deletes with everything in it. "
                "Move it beside your inventory, in your own git repository (for example "
                "subid_ledger: \"{{ inventory_dir }}/../ledger/subid-ledger.yml\"), and point subid_ledger there"
                % (self.path, collection))
        self.location = self.path
        self.read_only = read_only
        self.lock_path = self.path + ".lock"
        self.lock_timeout = lock_timeout
        if cache_dir is None:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            cache_dir = os.path.join(base, "fleetid.subid")
        name = hashlib.sha256(self.path.encode()).hexdigest()[:32]
        self.memo_path = os.path.join(cache_dir, "ledger-%s.index" % name)
        self._known = (None, None)  # (bytes, LedgerIndex) of the last text validated here
        self._found = (None, None, None)  # (bytes, names, blocks) of the last owner lookup
        self._loaded = (None, None)  # (bytes, load(text)) of the last full parse
        self._locked = False
        self._ledger_fd = None  # while locked: the ledger file flocked (None: there was none)

    def validated_index(self, data):
        """The LedgerIndex of the ledger bytes ``data`` if exactly these bytes were
        validated before, else None."""
        if data is None:
            return None
        if self._known[0] is not None and self._known[0] == data:  # read again in this call
            return self._known[1]
        # Here too, not only where a memo is written: a run that finds the memo current
        # writes none, and would leave a killed writer's temp file in the cache for good.
        self._remove_stale_memo_temps()
        try:
            with open(self.memo_path, "rb") as handle:
                head = handle.read(_MEMO_HEAD)
                if len(head) != _MEMO_HEAD or not head.startswith(_MEMO_MAGIC):
                    return None
                size = int.from_bytes(head[len(_MEMO_MAGIC):], "little")
                if os.fstat(handle.fileno()).st_size != _MEMO_HEAD + size + len(data):
                    return None
                packed = handle.read(size)
                if not _same_bytes(handle, data):
                    return None
        except OSError:
            return None
        index = LedgerIndex.from_bytes(packed)
        if index is not None:
            self._known = (data, index)
        return index

    def remember_valid(self, data, index):
        """Record that the ledger bytes ``data`` (canonical, indexable) were validated and
        are indexed by ``index``."""
        self._known = (data, index)  # this call's own later reads
        if self.read_only:
            return
        packed = index.to_bytes()
        try:
            os.makedirs(os.path.dirname(self.memo_path), mode=0o700, exist_ok=True)
            self._remove_stale_memo_temps()
            replace_file(self.memo_path, b"".join((_MEMO_MAGIC, len(packed).to_bytes(8, "little"), packed, data)),
                         0o600)
        except OSError:
            pass  # only a cache: the next call validates in full

    def _remove_stale_memo_temps(self):
        """Remove the memo temp files of runs killed while writing the memo."""
        if self.read_only:
            return
        try:  # under no lock: only temp files whose writer is gone, in a folder of our own
            remove_stale_temps(self.memo_path)
        except OSError:
            pass  # no cache folder yet, or not ours to clean: only a cache

    def read_bytes(self):
        """The ledger file's bytes without its seal (checked: ``ledger.unseal``), or None
        when there is no ledger file (no blocks yet)."""
        try:
            # O_NONBLOCK: opening a FIFO planted as the ledger would wait for a writer forever.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise LedgerError("ledger %s refused, nothing was read or written: it is not a regular file (%s); "
                              "remove it or point the ledger option at the ledger file" % (self.path, _file_kind(mode)))
        with os.fdopen(fd, "rb") as handle:
            return unseal(handle.read(), "ledger %s" % self.path)

    def decode(self, data):
        """The text of the ledger bytes ``data`` (None stays None), line ends as open()
        in text mode reads them."""
        if data is None:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LedgerError("%s line %d: not valid UTF-8 (byte 0x%02x): the ledger is UTF-8 text"
                              % (self.path, data.count(b"\n", 0, exc.start) + 1, data[exc.start]))
        if "\r" in text:
            return text.replace("\r\n", "\n").replace("\r", "\n")
        return text

    def read(self):
        """The ledger text, or None when there is no ledger file (no blocks yet)."""
        return self.decode(self.read_bytes())

    @contextlib.contextmanager
    def locked(self):
        """Hold the ledger's lock: an flock on ``<ledger>.lock`` and one on the ledger.

        The lock file is never followed if it is a link, and must be a regular file of
        ours (or root's) with one link, in a folder nobody else can change: else whoever
        can swap it makes us truncate a file of their choice. After each flock the path
        must still name the file locked, else (it was removed or replaced) we lock the
        new one. A lock file removed while held (it is git-ignored, so ``git clean -fdX``
        removes it) lets the next run lock a new one at once, so the ledger file itself,
        which git keeps, is locked too: that run then waits for it. With no ledger yet
        there is nothing to lock but the lock file, so the first ledger is created
        exclusively (``write_bytes``): of two runs let in that way, the second to write
        fails instead of overwriting the first.
        """
        me = os.geteuid()

        def refuse(message):
            raise LedgerError("ledger %s refused, nothing was written: %s" % (self.path, message))

        for folder in sorted({os.path.dirname(self.given_path), os.path.dirname(self.path)}):
            st = os.stat(folder)
            # A group-writable folder of our own is fine: user private groups make it so.
            if st.st_uid not in (me, 0) or st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_uid != me):
                trusted = "root" if me == 0 else "uid %d or root" % me
                refuse("its folder %s can be changed by someone other than %s (owner uid %d, mode %04o), who "
                       "could swap the ledger or its lock file; give it to %s and take others' write permission "
                       "away" % (folder, trusted, st.st_uid, st.st_mode & 0o7777, trusted))

        def open_checked(path, lock_file):
            flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if lock_file else 0)
            try:
                try:
                    fd = os.open(path, flags | os.O_RDWR, 0o644)
                except PermissionError:
                    if lock_file:
                        raise
                    # A read-only ledger (it is replaced by rename all the same). Over NFS
                    # an exclusive flock needs a writable fd, so that is tried first.
                    fd = os.open(path, flags | os.O_RDONLY)
            except FileNotFoundError:
                return None  # no ledger yet
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    refuse("%s is a symbolic link; remove it" % path)
                if exc.errno == errno.EISDIR:
                    refuse("%s is not a regular file with a single link; remove it" % path)
                raise
            st = os.fstat(fd)
            problem = None
            if not stat.S_ISREG(st.st_mode) or (lock_file and st.st_nlink != 1):
                problem = "%s is not a regular file with a single link; remove it" % path
            elif lock_file and st.st_uid not in (me, 0):
                problem = "%s belongs to uid %d, not to uid %d or root; remove it" % (path, st.st_uid, me)
            if problem:
                os.close(fd)
                refuse(problem)
            return fd

        deadline = time.monotonic() + self.lock_timeout

        def try_flock(fd):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                return False

        def acquire(path, lock_file):
            """An fd of ``path``, flocked, that ``path`` still names; None if ``path``
            is absent (only the ledger may be)."""
            while True:
                fd = open_checked(path, lock_file)
                if fd is None:
                    return None
                try:
                    delay = 0.005
                    while not try_flock(fd):
                        if time.monotonic() >= deadline:
                            raise LedgerLockTimeout(
                                "could not lock the ledger within %gs: %s" % (self.lock_timeout, (
                                    "%s is held by %s" % (path, self._holder(fd)) if lock_file else
                                    "%s itself is locked by another run (whose lock file %s was removed "
                                    "while it held it)" % (path, self.lock_path))))
                        time.sleep(delay)
                        delay = min(delay * 2, 0.1)
                    if _names(path, fd):
                        return fd
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)  # removed or replaced while we waited: lock what is there now

        held = []
        try:
            held.append(acquire(self.lock_path, lock_file=True))
            # Who holds it, for the timeout message of whoever waits next.
            os.ftruncate(held[0], 0)
            os.pwrite(held[0], ("pid %d on %s\n" % (os.getpid(), os.uname().nodename)).encode(), 0)
            held.append(acquire(self.path, lock_file=False))
            self._locked, self._ledger_fd = True, held[1]
            remove_stale_temps(self.path)  # left by killed writers; we are the only writer now
            yield
        finally:
            self._locked, self._ledger_fd = False, None
            for fd in held:
                if fd is not None:
                    os.close(fd)  # closing releases the flock

    @staticmethod
    def _holder(fd):
        try:
            return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        except OSError:
            return "another process"

    def write(self, text):
        """Replace the ledger atomically, keeping its mode (0644 for a new ledger)."""
        self.write_bytes(text.encode("utf-8"))

    def write_bytes(self, data):
        """Replace the ledger with ``data``. Under the lock, only the ledger file locked is
        replaced, and a ledger that did not exist when the lock was taken is created
        exclusively: a second writer that got in (its lock file was removed while we
        held it) and wrote first makes this write fail, rather than be overwritten."""
        data = seal(data)  # what was read is unsealed; what is written ends with its seal
        if self._locked and self._ledger_fd is None:
            try:
                create_file(self.path, data, 0o644)
            except FileExistsError:
                raise LedgerError("ledger %s refused, nothing was written: another run created it while this run "
                                  "held the lock (the lock file %s was removed meanwhile); run again"
                                  % (self.path, self.lock_path))
            return
        if self._ledger_fd is not None and not _names(self.path, self._ledger_fd):
            raise LedgerError("ledger %s refused, nothing was written: it was removed or replaced while this "
                              "run held its lock; run again" % self.path)
        replace_file(self.path, data, 0o644)

    # The store interface of plugin_utils.ledger_service.

    def view(self, names, pool, free=False):
        """The blocks of ``names`` (and with ``free`` the free IDs), read through the
        index of a text validated before; a text never seen is validated in full and
        indexed first. None when the text is not canonical (the caller then reads every
        block) or a block conflicts with the pool (the full path names it)."""
        data = self.read_bytes()
        if data is None:
            return View([], [(0, ID_LIMIT)] if free else None, data, None)
        index = self.validated_index(data)
        if index is None:
            blocks, canonical = self._load(data)
            if not canonical or not _indexable(data):
                return None
            index = LedgerIndex.build(data.decode("ascii"), blocks)
            self.remember_valid(data, index)
            mine = [b for b in blocks if b.owner in names]
        elif self._found[1] == names and self._found[0] == data:  # the same question, again
            mine = self._found[2]
        else:
            mine = index.owner_blocks(data, names)
            if mine is None:  # the index does not fit the text it was stored for
                return None
            self._found = (data, set(names), mine)
        if not pool_admits(index.spans, pool):
            return None
        return View(mine, index.free() if free else None, data, index)

    def _load(self, data):
        """``ledger.load`` of the ledger bytes ``data``, parsed once however often this call asks."""
        if self._loaded[0] is None or self._loaded[0] != data:
            self._loaded = (data, load(self.decode(data), self.path))
        return self._loaded[1]

    def snapshot(self, verify=False):
        """Every block, validated as every read of a file is (``verify`` changes nothing)."""
        del verify
        data = self.read_bytes()
        blocks, canonical = self._load(data)
        if canonical and _indexable(data) and self.validated_index(data) is None:
            self.remember_valid(data, LedgerIndex.build(data.decode("ascii"), blocks))
        return Snapshot(blocks, data)

    @contextlib.contextmanager
    def transaction(self):
        if self.read_only:
            raise RuntimeError("a read-only ledger store cannot be changed")
        with self.locked():
            yield _FileTransaction(self)

    def close(self):
        pass


def _names(path, fd):
    """Whether ``path`` (not followed) is still the file open as ``fd``."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    st = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def _same_bytes(handle, data, chunk=1 << 20):
    """Whether the rest of the file ``handle`` holds exactly ``data``: read through one
    reused buffer, so a 21 MiB copy costs a memcmp, not 21 MiB of fresh memory."""
    buffer = bytearray(chunk)
    view = memoryview(data)
    at = 0
    while True:
        got = handle.readinto(buffer)
        if not got:
            return at == len(data)
        # bytearray == memoryview compares the two buffers with memcmp.
        if at + got > len(data) or (buffer if got == chunk else buffer[:got]) != view[at:at + got]:
            return False
        at += got


def _indexable(data):
    """Whether a LedgerIndex can stand for ``data``: ASCII (a character's offset is its
    byte's) and no carriage return (read() would convert the line ends)."""
    return data.isascii() and b"\r" not in data


class _FileTransaction:
    """Inside the lock: the token is the ledger file's bytes themselves."""

    def __init__(self, store):
        self.store = store

    def token(self):
        return self.store.read_bytes()

    def snapshot(self):
        return self.store.snapshot()

    def view(self, names, pool, free=False):
        return self.store.view(names, pool, free)

    def commit(self, before, after, change):
        """Write the ledger after ``change``. ``before`` is the Snapshot or View planned
        against; after a View ``after`` holds only its blocks, so the change is spliced
        into the text the view was read from (or, where that cannot be done, applied to
        every block of that text and the whole ledger rendered)."""
        spliced = None
        if isinstance(before, View):
            spliced = before.index.splice(before.token, change) if before.index is not None else None
            if spliced is None:  # an empty ledger, or a header of its own: rendered whole
                blocks = apply_change(self.store._load(before.token)[0], change)
        else:
            blocks = sorted(after, key=lambda b: (b.start, b.count))
        if spliced is None:
            text = render(blocks)  # ASCII: validated names, scopes and dates
            spliced = text.encode("ascii"), LedgerIndex.build(text, blocks)
        data, index = spliced
        self.store.write_bytes(data)
        self.store.remember_valid(data, index)
