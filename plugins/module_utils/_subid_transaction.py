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
import stat

from ansible_collections.fleetid.subid.plugins.module_utils._durable import fsync_dir, write_durably
from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import SubidError
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import read_regular

JOURNAL_SUFFIX = ".fleetid-journal"
OLD_COPY_SUFFIX = ".fleetid-old"
TEMP_SUFFIX = ".fleetid-new"
_JOURNAL_FORMAT = "fleetid.subid journal 3"
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _beside(path, suffix):
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, "." + name + suffix)


def journal_path(first_path):
    """``.<name>.fleetid-journal`` beside the file written first (the subuid file)."""
    return _beside(first_path, JOURNAL_SUFFIX)


def old_copy_path(path):
    """``.<name>.fleetid-old`` beside ``path``: a hard link to its old file while a
    journal says the files may need rolling back."""
    return _beside(path, OLD_COPY_SUFFIX)


def temp_path(path):
    """The one temp file name for ``path``: under the locks only this run can be writing
    it, so one left by a killed run is removed by the next (no litter)."""
    return _beside(path, TEMP_SUFFIX)


def _digest(data):
    return None if data is None else hashlib.sha256(data).hexdigest()


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _identity(st):
    """Which file ``st`` is: a rename keeps it, a copy or a rewrite in a new file does not."""
    return [st.st_dev, st.st_ino]


def journal_bytes(first, second):
    """The journal for replacing ``first`` then ``second``, each ``(path, identity of the
    old file or None when there is none, identity of the new file, new bytes)``: the
    identities and the digest of each new content (hashed once when both are the same).

    The old file of each is kept by a hard link (old_copy_path), so its identity is the
    link's: the file a roll back renames into place. The new file's is the temp file's,
    which the rename keeps."""
    first_new = _digest(first[3])
    second_new = first_new if second[3] == first[3] else _digest(second[3])
    return (json.dumps({
        "format": _JOURNAL_FORMAT,
        "first": {"path": first[0], "old": first[1], "new": first[2], "new_sha256": first_new},
        "second": {"path": second[0], "old": second[1], "new": second[2], "new_sha256": second_new},
    }, sort_keys=True) + "\n").encode()


def _is_identity(value):
    return isinstance(value, list) and len(value) == 2 and all(isinstance(n, int) and n >= 0 for n in value)


def read_journal(data):
    """The journal in ``data``, or None when it is incomplete (the run was killed while
    writing it, before either file was replaced) or of an unknown format."""
    try:
        journal = json.loads(data.decode("utf-8"))
        if journal.get("format") != _JOURNAL_FORMAT:
            return None
        for part in (journal["first"], journal["second"]):
            if not (isinstance(part["path"], str) and (part["old"] is None or _is_identity(part["old"]))
                    and _is_identity(part["new"]) and isinstance(part["new_sha256"], str)):
                return None
        return journal
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _part_state(part):
    """(still the old file, the new file) for one file of a journal, as it is now: the old
    file is the one the journal names (none, when there was none); the new one is the
    file the run renamed into place, with the content it wrote."""
    now = _lstat(part["path"])
    if now is None:
        return part["old"] is None, False
    if part["old"] is not None and _identity(now) == part["old"]:
        return True, False
    if _identity(now) != part["new"] or not stat.S_ISREG(now.st_mode):
        return False, False
    return False, _digest(read_regular(part["path"])) == part["new_sha256"]


def journal_state(journal):
    """``before`` (neither file replaced), ``split`` (only the first), ``after`` (both),
    or ``changed`` (another program wrote a file since), from the files the journal names."""
    first, second = _part_state(journal["first"]), _part_state(journal["second"])
    if first[0] and second[0]:
        return "before"
    if first[1] and second[0]:
        return "split"
    if first[1] and second[1]:
        return "after"
    return "changed"


def _not_a_plain_file(path, st, what):
    return SubidError("%s is not a regular file of root's that only root can write (%s, owner UID %d, mode %04o, "
                      "%d links): it is not %s, and nothing was changed; check %s by hand, then remove it" % (
                          path, "a regular file" if stat.S_ISREG(st.st_mode) else "not a regular file",
                          st.st_uid, stat.S_IMODE(st.st_mode), st.st_nlink, what, path))


def check_journal_file(path):
    """Raise SubidError unless ``path`` is absent or a regular file, root's, writable by
    root only, with one link, as this module writes it."""
    st = _lstat(path)
    if st is not None and not (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
                               and not st.st_mode & 0o022 and st.st_nlink == 1):
        raise _not_a_plain_file(path, st, "a journal this module wrote")


def _unlink(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _unlink_kept(path):
    """Remove a kept link; anything but a regular file there is refused, never removed."""
    st = _lstat(path)
    if st is None:
        return
    if not stat.S_ISREG(st.st_mode):
        raise _not_a_plain_file(path, st, "a copy this module kept")
    _unlink(path)


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
        ``warn``. In check mode, says what a run would do and changes nothing.

        Nothing in the journal is taken on trust: the journal and the kept files must be
        regular files of root's; the first file is rolled back only when it is the very
        file the journal says the run renamed into place, with that content, and its old
        file is the kept link the journal names, with no other link. Rolling back renames
        that link into place, so the old file comes back with its own mode, owner and
        context, never a copy under the new file's."""
        first, second = self.first, self.second
        warn = warn or (lambda message: None)
        kept = [old_copy_path(first), old_copy_path(second)]
        check_journal_file(self.journal)
        if not check_mode:
            for path in locked:
                _unlink(temp_path(path))
        data = read_regular(self.journal)
        if data is None:
            if not check_mode:
                for link in kept:  # killed after linking, before the journal: before either rename
                    _unlink_kept(link)
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
        state = journal_state(entry)
        repaired = []
        if state == "split":
            old = self._old_file(entry["first"])
            repaired.append("%s %s rolled back to its content before an interrupted run, which had replaced it but "
                            "not %s" % (first, "would be" if check_mode else "was", second))
            if not check_mode:
                if old is None:
                    _unlink(first)
                else:
                    os.replace(old, first)
                fsync_dir(first)
        elif state == "changed":
            warn("%s: an interrupted run left this journal, but %s or %s changed since; they are left as "
                 "they are, check them" % (self.journal, first, second))
        if not check_mode:
            self._remove_journal(kept)
        for message in repaired:
            warn(message)
        return repaired

    def _old_file(self, part):
        """The kept link to roll ``part`` back to (None: there was no old file), checked to
        be the old file the journal names and nothing else's."""
        if part["old"] is None:
            return None
        link = old_copy_path(part["path"])
        st = _lstat(link)
        if st is None:
            raise SubidError("%s, the old content of %s that an interrupted run kept to roll it back, is missing, "
                             "so it cannot be rolled back to agree with %s: check both files, then remove %s"
                             % (link, part["path"], self.second, self.journal))
        if not stat.S_ISREG(st.st_mode) or _identity(st) != part["old"] or st.st_nlink != 1:
            raise SubidError("%s is not the old file of %s that the journal %s names (a regular file, that file, "
                             "with no other link), so %s is not rolled back: check both files, then remove %s and %s"
                             % (link, part["path"], self.journal, part["path"], self.journal, link))
        return link

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
                old = self._keep_old_files(data, kept)
                self._write_journal(journal_bytes(*[
                    (edit.path, old_id, _identity(os.lstat(tmp)), new)
                    for (edit, existed, new), old_id, tmp in zip(data, old, temps)]))
            for i, ((edit, existed, new), tmp) in enumerate(zip(data, temps)):
                locks.verify()
                try:
                    self._swap_in(tmp, edit.path)
                except Exception as exc:
                    if i == 0:
                        raise
                    self._roll_back_first(data[0], kept, edit.path, exc)
            if len(data) == 2:
                self._remove_journal(kept)
        finally:
            for tmp in temps:
                _unlink(tmp)
            if not os.path.lexists(self.journal):  # a journal left for the next run needs the kept files
                for link in kept:
                    _unlink(link)

    def _keep_old_files(self, data, kept):
        """Link each old file to its kept name; returns their identities (None: no file)."""
        old = []
        for (edit, existed, new), link in zip(data, kept):
            old.append(None)
            if existed:
                # The file read under the locks (a regular file), linked, not copied;
                # the link is flushed to disk with the journal, which lives beside it.
                try:
                    os.link(edit.path, link, follow_symlinks=False)
                except OSError as exc:
                    raise SubidError("%s could not be kept as %s to roll it back if this run were interrupted "
                                     "(%s): neither file changed" % (edit.path, link, exc.strerror or exc))
                old[-1] = _identity(os.lstat(link))
        return old

    def _roll_back_first(self, first, kept, path, exc):
        """The second rename failed with ``exc``: put the first file back (its kept link,
        renamed into place), then fail."""
        edit, existed, new = first
        try:
            if existed:
                os.replace(kept[0], edit.path)
            else:
                _unlink(edit.path)
            fsync_dir(edit.path)
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
            _unlink_kept(link)
        fsync_dir(self.journal)
