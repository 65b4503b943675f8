# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The records of passed rootless proofs on a host (see the rootless_check module): one
JSON file per user in a root-owned folder that no user can write, each replaced
atomically under the folder's lock."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import json
import os
import stat

from ansible_collections.fleetid.subid.plugins.module_utils._durable import replace_file
from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

RECORD_VERSION = 1


class ProofRecordError(FleetidError):
    """The records' folder cannot be trusted; the message says why."""


class ProofRecords:
    """A user must not be able to forge "proven before" for themselves, so a record or
    folder that anyone but root could have written is not trusted. In ``check_mode`` the
    folder is checked but never created, and no lock is taken."""

    def __init__(self, folder, check_mode=False):
        self.folder = folder
        self.check_mode = check_mode
        self.trusted = False

    def open(self):
        """Check (or, outside check mode, create) the folder; returns a lock context.
        Raises ProofRecordError for a folder that others could write."""
        if not os.path.lexists(self.folder):
            if self.check_mode:
                return contextlib.nullcontext()
            os.makedirs(self.folder, mode=0o755)
            os.chmod(self.folder, 0o755)
        st = os.lstat(self.folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
            raise ProofRecordError(
                "%s must be a folder owned by root and writable by root only (it is %s, owner UID %d, "
                "mode %04o): proof records there could be forged" % (
                    self.folder, "a folder" if stat.S_ISDIR(st.st_mode) else "not a folder",
                    st.st_uid, stat.S_IMODE(st.st_mode)))
        self.trusted = True
        if self.check_mode:
            return contextlib.nullcontext()
        return self._lock()

    @contextlib.contextmanager
    def _lock(self):
        fd = os.open(os.path.join(self.folder, ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def path(self, name):
        return os.path.join(self.folder, "%s.json" % name)

    def read(self, name):
        """The user's record, or None when there is none or it cannot be trusted."""
        if not self.trusted:
            return None
        try:
            fd = os.open(self.path(name), os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, OSError):
            return None
        with os.fdopen(fd) as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
                return None
            try:
                record = json.load(handle)
            except ValueError:
                return None
        return record if isinstance(record, dict) and record.get("version") == RECORD_VERSION else None

    def write(self, name, record):
        # The replacement takes the old file's owner and mode: an untrusted file goes first,
        # so a record is always root's, mode 0644.
        try:
            st = os.lstat(self.path(name))
            if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_gid != 0 or stat.S_IMODE(st.st_mode) != 0o644:
                os.unlink(self.path(name))
        except FileNotFoundError:
            pass
        replace_file(self.path(name), (json.dumps(record, sort_keys=True, indent=1) + "\n").encode("utf-8"))

    def remove(self, name):
        try:
            os.unlink(self.path(name))
        except FileNotFoundError:
            return False
        return True
