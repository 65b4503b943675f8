# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The write of /etc/subuid and /etc/subgid as one: both files or neither.

Both halves of the protocol live here: the write (install) and the repair after a run
was killed between the two renames (recover), with the journal format they share.

- Both temp files are written before either rename, so the renames follow each other
  closely.
- With two files, hard links keep both old files (``.<name>.fleetid-old``) and a journal
  (``.<subuid name>.fleetid-journal``) is written durably before the first rename; both
  are removed after the second. A failure after the first rename rolls it back.
- A run killed between the renames leaves them; the next run tells a file replaced
  alone (a kill between the two renames) from files both old or both new, and rolls the
  first file back. "Still old" is a byte comparison with the kept file; only the new
  contents are hashed, once when subuid and subgid are the same text.

Callers hold shadow's locks on both files (shadow_lock.subid_locks) for the whole
transaction; check mode reads and takes no lock.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import hashlib
import json
import os

from ansible_collections.fleetid.subid.plugins.module_utils._durable import fsync_dir, write_durably
from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import SubidError
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import read_regular

JOURNAL_SUFFIX = ".fleetid-journal"
OLD_COPY_SUFFIX = ".fleetid-old"
TEMP_SUFFIX = ".fleetid-new"
_JOURNAL_FORMAT = "fleetid.subid journal 2"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _beside(path, suffix):
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, "." + name + suffix)


def journal_path(first_path):
    """``.<name>.fleetid-journal`` beside the file written first (the subuid file)."""
    return _beside(first_path, JOURNAL_SUFFIX)


def old_copy_path(path):
    """``.<name>.fleetid-old`` beside ``path``: a hard link to its old content while a
    journal says the files may need rolling back."""
    return _beside(path, OLD_COPY_SUFFIX)


def temp_path(path):
    """The one temp file name for ``path``: under the locks only this run can be writing
    it, so one left by a killed run is removed by the next (no litter)."""
    return _beside(path, TEMP_SUFFIX)


def _digest(data):
    return None if data is None else hashlib.sha256(data).hexdigest()


def journal_bytes(first, second):
    """The journal for replacing ``first`` then ``second``, each ``(path, whether the file
    exists, new bytes)``: the digest of each new content (hashed once when both are the
    same) and whether the old file is kept in old_copy_path (there was one)."""
    first_new = _digest(first[2])
    second_new = first_new if second[2] == first[2] else _digest(second[2])
    return (json.dumps({
        "format": _JOURNAL_FORMAT,
        "first": {"path": first[0], "old_kept": first[1], "new_sha256": first_new},
        "second": {"path": second[0], "old_kept": second[1], "new_sha256": second_new},
    }, sort_keys=True) + "\n").encode()


def read_journal(data):
    """The journal in ``data``, or None when it is incomplete (the run was killed while
    writing it, before either file was replaced) or of an unknown format."""
    try:
        journal = json.loads(data.decode("utf-8"))
        first, second = journal["first"], journal["second"]
        if journal.get("format") != _JOURNAL_FORMAT:
            return None
        if not all(isinstance(part["old_kept"], bool) and isinstance(part["path"], str)
                   for part in (first, second)):
            return None
        return journal
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _kept(part, read):
    """The old content of one file of a journal: its bytes, None for no file, or False
    when it is kept no more (``read(path)``: the file's bytes or None)."""
    if not part["old_kept"]:
        return None
    data = read(old_copy_path(part["path"]))
    return False if data is None else data


def old_content(journal, read):
    """The first file's old bytes a journal rolls back to, or None for no file; raises
    SubidError when its kept copy is gone."""
    old = _kept(journal["first"], read)
    if old is False:
        raise SubidError("%s, the old content of %s that an interrupted run kept to roll it back, is missing" % (
            old_copy_path(journal["first"]["path"]), journal["first"]["path"]))
    return old


def journal_state(journal, first_now, second_now, read):
    """``before`` (neither file replaced), ``split`` (only the first), ``after`` (both),
    or ``changed`` (another program wrote a file since) from the files' bytes now and
    their kept old contents (``read``: see _kept)."""
    first = (_kept(journal["first"], read) == first_now, _digest(first_now) == journal["first"]["new_sha256"])
    second = (_kept(journal["second"], read) == second_now, _digest(second_now) == journal["second"]["new_sha256"])
    if first[0] and second[0]:
        return "before"
    if first[1] and second[0]:
        return "split"
    if first[1] and second[1]:
        return "after"
    return "changed"


def _unlink(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class SubidTransaction:
    """Writes of the subuid file ``first`` and the subgid file ``second`` as one.

    ``keep_context(tmp, path)``, when given, gives the temp file ``tmp`` the SELinux
    context of ``path`` before it replaces it."""

    def __init__(self, first, second, keep_context=None):
        self.first, self.second = first, second
        self.journal = journal_path(first)
        self._keep_context = keep_context

    def interrupted(self):
        """Whether an interrupted run left a journal: both files may need repair."""
        return os.path.lexists(self.journal)

    def recover(self, locked, check_mode=False, warn=None):
        """Finish what an interrupted run left (called with the locks on ``locked`` held):
        its temp files go, and with its journal, a subuid file replaced without the subgid
        file is rolled back. Returns what was repaired, for the result, and says it with
        ``warn``. In check mode, says what a run would do and changes nothing."""
        first, second = self.first, self.second
        warn = warn or (lambda message: None)
        kept = [old_copy_path(first), old_copy_path(second)]
        if not check_mode:
            for path in locked:
                _unlink(temp_path(path))
        data = read_regular(self.journal)
        if data is None:
            if not check_mode:
                for link in kept:  # killed after linking, before the journal: before either rename
                    _unlink(link)
            return []
        entry = read_journal(data)
        if entry is None:  # killed while writing it: before either rename
            if not check_mode:
                self._remove_journal(kept)
            return []
        if (entry["first"]["path"], entry["second"]["path"]) != (first, second):
            raise SubidError("%s is the journal of an interrupted run on %s and %s, not on these files: run this "
                             "module on those paths to repair them"
                             % (self.journal, entry["first"]["path"], entry["second"]["path"]))
        if not check_mode and not {first, second} <= set(locked):
            raise SubidError("%s appeared while this run waited for the locks: run it again" % self.journal)
        state = journal_state(entry, read_regular(first), read_regular(second), read_regular)
        repaired = []
        if state == "split":
            repaired.append("%s %s rolled back to its content before an interrupted run, which had replaced it but "
                            "not %s" % (first, "would be" if check_mode else "was", second))
            try:
                old = old_content(entry, read_regular)
            except SubidError as exc:
                raise SubidError("%s, so it cannot be rolled back to agree with %s: check both files, then remove %s"
                                 % (exc, second, self.journal))
            if not check_mode:
                self._restore(first, old)
        elif state == "changed":
            warn("%s: an interrupted run left this journal, but %s or %s changed since; they are left as "
                 "they are, check them" % (self.journal, first, second))
        if not check_mode:
            self._remove_journal(kept)
        for message in repaired:
            warn(message)
        return repaired

    def install(self, edits, locks):
        """Replace each edited file with its new text (``edits``: one or two _subid_edit.Edit,
        subuid's first). ``locks.verify()`` is checked before each rename. Both temp files are
        written before either rename; with two files, the old files are kept and the journal
        written first (see the module docstring)."""
        encoded = []  # (text, bytes): a subgid file kept in step with the subuid file is encoded once

        def encode(text):
            for known, data in encoded:
                if known == text:
                    return data
            encoded.append((text, text.encode("utf-8", "surrogateescape")))
            return encoded[-1][1]

        # (edit, whether the file exists, new bytes): the old bytes are needed only to roll back.
        data = [(edit, os.path.lexists(edit.path), encode(edit.new)) for edit in edits]
        temps = []
        kept = [old_copy_path(edit.path) for edit, existed, new in data] if len(data) == 2 else []
        try:
            for edit, existed, new in data:
                temps.append(self._write_temp(edit.path, new))
            if len(data) == 2:
                self._keep_old_files(data, kept)
                self._write_journal(journal_bytes(*[(edit.path, existed, new) for edit, existed, new in data]))
            for i, ((edit, existed, new), tmp) in enumerate(zip(data, temps)):
                locks.verify()
                try:
                    self._swap_in(tmp, edit.path)
                except Exception as exc:
                    if i == 0:
                        raise
                    self._roll_back_first(data[0], encode, kept, edit.path, exc)
            if len(data) == 2:
                self._remove_journal(kept)
        finally:
            for tmp in temps:
                _unlink(tmp)
            if not os.path.lexists(self.journal):  # a journal left for the next run needs the kept files
                for link in kept:
                    _unlink(link)

    def _keep_old_files(self, data, kept):
        for (edit, existed, new), link in zip(data, kept):
            if existed:
                # The file read under the locks (a regular file), linked, not copied;
                # the link is flushed to disk with the journal, which lives beside it.
                try:
                    os.link(edit.path, link, follow_symlinks=False)
                except OSError as exc:
                    raise SubidError("%s could not be kept as %s to roll it back if this run were interrupted "
                                     "(%s): neither file changed" % (edit.path, link, exc.strerror or exc))

    def _roll_back_first(self, first, encode, kept, path, exc):
        """The second rename failed with ``exc``: put the first file back, then fail."""
        edit, existed, new = first
        try:
            self._restore(edit.path, encode(edit.old) if existed else None)
            self._remove_journal(kept)
        except Exception as again:
            raise SubidError("%s could not be replaced (%s), and rolling %s back failed too (%s): the next "
                             "run of this module rolls it back" % (path, exc, edit.path, again))
        raise SubidError("%s could not be replaced (%s): %s was rolled back to its previous content, so "
                         "neither file changed" % (path, exc, edit.path))

    @staticmethod
    def _write_temp(path, data):
        """``temp_path(path)`` holding ``data`` with the owner and mode of ``path`` (a new file
        is 0644 root:root, as shadow makes it), flushed to disk; created exclusively, never
        through a link."""
        return write_durably(path, data, 0o644, tmp=temp_path(path))

    def _swap_in(self, tmp, path):
        """Rename ``tmp`` over ``path`` (keeping its SELinux context) and flush the folder."""
        if self._keep_context is not None and os.path.lexists(path):
            self._keep_context(tmp, path)
        os.replace(tmp, path)
        fsync_dir(path)

    def _restore(self, path, old):
        """Put ``old`` bytes back in ``path`` atomically (None: the file did not exist)."""
        if old is None:
            _unlink(path)
            fsync_dir(path)
        else:
            self._swap_in(self._write_temp(path, old), path)

    def _write_journal(self, data):
        fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.journal)

    def _remove_journal(self, kept):
        """Remove the journal, then the ``kept`` old files it needed."""
        os.unlink(self.journal)
        for link in kept:
            _unlink(link)
        fsync_dir(self.journal)
