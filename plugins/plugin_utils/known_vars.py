# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The variables this collection reads, found where they are read: every name with one of
the collection's prefixes in its roles and playbooks. A name set in an inventory that
none of them mentions is read by nothing, most often a typo (subid_owner for subid_owners)."""

from __future__ import annotations

import difflib
import os
import re

# The playbooks' variables (subid_) and the roles' (each role's name).
PREFIXES = ("subid_", "subids_", "login_defs_", "uidmap_", "rootless_podman_")
_NAME = re.compile(r"(?<![\w.])((?:%s)[a-z0-9_]*[a-z0-9])\b" % "|".join(PREFIXES))
COLLECTION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def known_names(top=COLLECTION):
    """Every prefixed name the roles and playbooks of the collection at ``top`` mention."""
    names = set()
    for folder in ("roles", "playbooks"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(top, folder)):
            dirnames.sort()
            for filename in sorted(filenames):
                if filename.endswith((".yml", ".yaml", ".j2")):
                    with open(os.path.join(dirpath, filename), encoding="utf-8") as handle:
                        names.update(_NAME.findall(handle.read()))
    return names


def unknown_names(given, known):
    """{name: nearest known name or None} for the prefixed names in ``given`` that no role
    or playbook reads."""
    found = {}
    for name in given:
        if isinstance(name, str) and name.startswith(PREFIXES) and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            found[name] = close[0] if close else None
    return found
