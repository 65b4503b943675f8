# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which owner fields of /etc/subuid and /etc/subgid mean one account, looked up through
the host's NSS: shared by the subid module, which rewrites an owner's lines, the
owners_info module, which reports them, and subid_info, which checks every line's
owner, so all three read the same lines as the owner's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pwd

from ansible_collections.fleetid.subid.plugins.module_utils._getent import GetentError, getent, id_column


def account(owner, cache=None):
    """The pwd entry of an owner field (a name or a numeric UID), or None. With ``cache``
    (a dict kept for one run), each owner is looked up once: without nscd every lookup
    reads the whole /etc/passwd."""
    if cache is not None and owner in cache:
        return cache[owner]
    try:
        entry = pwd.getpwuid(int(owner)) if owner.isdigit() else pwd.getpwnam(owner)
    except (KeyError, OverflowError):
        entry = None
    if cache is not None:
        cache[owner] = entry
    return entry


def aliases_of(owner, cache=None):
    """Every owner field that means this account: its name and its numeric UID. A name
    without an account is matched only by itself."""
    entry = account(owner, cache)
    return {owner} if entry is None else {owner, entry.pw_name, str(entry.pw_uid)}


class Accounts:
    """The host's user database, enumerated once (``getent passwd``, so directory-service
    accounts the host enumerates count too), with a lookup by name or numeric UID that
    falls back to getpwnam/getpwuid for accounts the directory does not enumerate.

    One enumeration instead of a lookup per owner: with the files backend every lookup
    reads /etc/passwd from the top, which is quadratic on a host with many entries."""

    def __init__(self, module):
        self.by_name, self.by_uid = {}, {}
        for name, uid, gid in self._enumerate(module):
            self.by_name.setdefault(name, (uid, gid))
            self.by_uid.setdefault(uid, (uid, gid))
        self.uids = sorted(self.by_uid)

    @staticmethod
    def _enumerate(module):
        try:
            text = getent(module, "passwd")
        except GetentError:  # the files are still there to read
            text = None
        if text is None:
            for entry in pwd.getpwall():
                yield entry.pw_name, entry.pw_uid, entry.pw_gid
            return
        for name, uid, gid in id_column(text):
            if gid.isdigit():
                yield name, uid, int(gid)

    def __call__(self, owner):
        """(UID, primary GID) of an owner field, a name or a numeric UID; None without an account."""
        found = self.by_uid.get(int(owner)) if owner.isdigit() else self.by_name.get(owner)
        if found is not None:
            return found
        entry = account(owner)
        return None if entry is None else (entry.pw_uid, entry.pw_gid)
