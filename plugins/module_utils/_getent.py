# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one door to ``getent``: the host's accounts and groups through NSS, so that
directory-service accounts (SSSD, nslcd, winbind) count as well as local ones.

Every host module that lists or resolves accounts runs it here: as an argument list,
in the C locale, with its return codes read one way (2: some key, or the enumeration,
found nothing; what was found is still printed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import pwd

from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError


class GetentError(FleetidError):
    """getent failed; the message names the command and what it printed."""


def getent(module, database, keys=(), required=False):
    """The output of ``getent DATABASE [KEYS...]``, or None when the host has no getent
    (with ``required``, the module fails then, naming the missing program)."""
    binary = module.get_bin_path("getent", required=required)
    if binary is None:
        return None
    # Keys after "--": a name such as "-bob" (a directory may hold one) is a key, never an option.
    argv = [binary, database] + (["--"] + list(keys) if keys else [])
    rc, out, err = module.run_command(argv, environ_update={"LC_ALL": "C"})
    if rc not in (0, 2):
        raise GetentError("getent %s failed (rc=%d): %s" % (" ".join([database] + list(keys)), rc, err.strip()))
    return out


def id_column(text, column=2):
    """``[(name, ID, next field)]`` of getent passwd or group output: the lines whose
    ID field (``column``) is a number, in order."""
    rows = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > column and fields[column].isdigit():
            rows.append((fields[0], int(fields[column]), fields[column + 1] if len(fields) > column + 1 else ""))
    return rows


def host_ids(module, database):
    """``(sorted IDs, {ID: first name})`` of every account (``passwd``) or group
    (``group``) the host lists, from getent, or from pwd/grp where getent is missing.
    Raises GetentError when getent fails."""
    text = getent(module, database)
    if text is None:
        entries = pwd.getpwall() if database == "passwd" else grp.getgrall()
        rows = [(e[0], e[2]) for e in entries]
    else:
        rows = [(name, some_id) for name, some_id, dummy in id_column(text)]
    names = {}
    for name, some_id in rows:
        names.setdefault(some_id, name)
    return sorted(names), names
