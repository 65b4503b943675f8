# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which owner fields of /etc/subuid and /etc/subgid mean one account, looked up through
the host's NSS: shared by the subid module, which rewrites an owner's lines, and the
owner_groups module, which reports them, so both read the same lines as the owner's."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pwd


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
