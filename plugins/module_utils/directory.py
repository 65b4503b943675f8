# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Directory users and owner groups: the pure logic of resolving owners through NSS.

Used on the host by the owners_info module (getent output in, owners out) and on the
controller by the allocate and audit actions (resolved IDs against ranges). Nothing here
runs a command or reads a file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

# NSS sources that list every entry when enumerated (``getent passwd`` without a key).
# Anything else (sss, ldap, winbind, a vendor's module) may hold accounts the host-ID
# check only sees when it asks for them by name or ID.
ENUMERATING_SOURCES = frozenset(("files", "compat", "systemd", "db", "extrausers", "altfiles", "nis", "cache"))

GROUP_KEYS = ("name", "count", "scope")


class DirectoryError(FleetidError):
    """Bad owner groups input."""


def parse_colon_entry(line, fields):
    """A ``getent`` line split in at most ``fields`` fields, or None when malformed."""
    parts = line.rstrip("\n").split(":")
    if len(parts) < fields or not parts[0] or not parts[2].isdigit():
        return None
    return parts


def parse_passwd(text):
    """``getent passwd`` output -> {name: {uid, gid, home, shell}} (first entry of a name wins, as NSS does)."""
    found = collections.OrderedDict()
    for line in text.splitlines():
        parts = parse_colon_entry(line, 7)
        if parts is None or not parts[3].isdigit():
            continue
        found.setdefault(parts[0], {"uid": int(parts[2]), "gid": int(parts[3]), "home": parts[5],
                                    "shell": parts[6]})
    return found


def parse_groups(text):
    """``getent group`` output -> {name: {gid, members}}; members in the order listed."""
    found = collections.OrderedDict()
    for line in text.splitlines():
        parts = parse_colon_entry(line, 4)
        if parts is None:
            continue
        members = [m for m in ":".join(parts[3:]).split(",") if m]
        found.setdefault(parts[0], {"gid": int(parts[2]), "members": members})
    return found


def normalize_groups(groups):
    """``subid_owner_groups`` items (names or {name, count, scope}) as dicts; raises DirectoryError."""
    if not isinstance(groups, list):
        raise DirectoryError("owner groups must be a list of group names or {name, count, scope}")
    result, seen = [], set()
    for item in groups:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise DirectoryError("each owner group must be a name or a mapping with 'name', got %r" % (item,))
        unknown = sorted(set(item) - set(GROUP_KEYS))
        if unknown:
            raise DirectoryError("owner group %r has unknown key(s): %s (allowed: %s)"
                                 % (item["name"], ", ".join(unknown), ", ".join(GROUP_KEYS)))
        if item["name"] in seen:
            raise DirectoryError("owner group %r is listed twice" % item["name"])
        seen.add(item["name"])
        result.append({key: item[key] for key in GROUP_KEYS if item.get(key) is not None})
    return result


def owner_name(item):
    return item if isinstance(item, str) else (item or {}).get("name")


def primary_members(group_gid, accounts):
    """Accounts among ``accounts`` (name -> entry) whose primary GID is the group's. Only
    accounts the host already knows are seen: a directory is never enumerated for this."""
    return [name for name, entry in accounts.items() if entry["gid"] == group_gid]


def group_members(found, known_accounts):
    """A resolved group's members: its member list, then the known accounts whose primary
    GID is the group's (not listed in it)."""
    members = list(found["members"])
    return members + [m for m in primary_members(found["gid"], known_accounts) if m not in members]


def merge_owners(owners, groups, resolved_groups, known_accounts):
    """The owners a host asks the ledger for: ``owners`` as given, then every member of
    each group in ``groups`` that ``owners`` does not name, with the group's count and
    scope. A member of several groups takes the first group listed.

    ``resolved_groups``: group name -> {gid, members} (groups missing from it were not
    found); ``known_accounts``: name -> passwd entry of the accounts the host knows
    without enumerating a directory, for members by primary GID.

    Returns (owners, added): ``added`` maps each member added to the group it came from.
    """
    explicit = {owner_name(o) for o in owners}
    merged = list(owners)
    added = collections.OrderedDict()
    for group in groups:
        found = resolved_groups.get(group["name"])
        if found is None:
            continue
        for member in group_members(found, known_accounts):
            if member in explicit or member in added:
                continue
            added[member] = group["name"]
            owner = {"name": member}
            owner.update((key, group[key]) for key in ("count", "scope") if key in group)
            merged.append(owner)
    return merged, added


def resolved_ids(accounts, groups):
    """Every ID the host resolved, once each, as [{kind, id, name}]: the accounts' UIDs,
    and as GIDs the groups' and the accounts' primary GIDs, ``name`` saying whose. UIDs
    first, then GIDs, each by ID."""
    uids, gids = collections.defaultdict(list), collections.defaultdict(lambda: ([], []))
    for name, entry in accounts.items():
        uids[entry["uid"]].append(name)
        gids[entry["gid"]][1].append(name)
    for name, entry in groups.items():
        gids[entry["gid"]][0].append(name)
    result = [{"kind": "uid", "id": uid, "name": ", ".join(sorted(names))} for uid, names in sorted(uids.items())]
    for gid, (group_names, members) in sorted(gids.items()):
        parts = ["group %s" % g for g in sorted(group_names)]
        if members:
            parts.append("primary group of %s" % ", ".join(sorted(members)))
        result.append({"kind": "gid", "id": gid, "name": "; ".join(parts)})
    return result


def ids_in_ranges(ids, ranges, withheld=()):
    """The resolved IDs (as from resolved_ids) that fall in one of ``ranges`` (IdRange-like:
    .start, .end) and in none of the ``withheld`` (start, end) intervals: [(id entry, range)]."""
    hits = []
    for entry in ids:
        some_id = int(entry["id"])
        if any(start <= some_id < end for start, end in withheld):
            continue
        for rng in ranges:
            if rng.start <= some_id < rng.end:
                hits.append((entry, rng))
                break
    return hits


_NSS_ACTION = re.compile(r"\[[^\]]*\]")


def nss_sources(nsswitch_text, database):
    """The sources of ``database`` (passwd, group) in nsswitch.conf, in order; glibc's
    default (files) when the database is not listed."""
    for line in (nsswitch_text or "").splitlines():
        line = line.split("#", 1)[0]
        key, sep, rest = line.partition(":")
        if sep and key.strip() == database:
            return _NSS_ACTION.sub(" ", rest).split()
    return ["files"]


def sssd_domains(sssd_conf_text):
    """SSSD domains -> whether each enumerates (``enumerate``, default false), from
    sssd.conf text; None when the text is missing (the file is root-only)."""
    if sssd_conf_text is None:
        return None
    domains, section = collections.OrderedDict(), None
    for raw in sssd_conf_text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            section = name[len("domain/"):] if name.startswith("domain/") else None
            if section is not None:
                domains.setdefault(section, False)
            continue
        key, sep, value = line.partition("=")
        if sep and section is not None and key.strip().lower() == "enumerate":
            domains[section] = value.strip().lower() in ("true", "yes", "1")
    return domains


def id_source_report(nsswitch_text, sssd_conf_text, nsswitch_path="/etc/nsswitch.conf",
                     sssd_conf_path="/etc/sssd/sssd.conf"):
    """What the host's passwd and group databases are made of, and whether enumerating
    them (``getent passwd``) shows every account: {passwd, group, sssd_domains, complete,
    reasons}. ``complete`` false means the host-ID check saw only the accounts it asked
    for by name (owners, group members)."""
    report = {"passwd": nss_sources(nsswitch_text, "passwd"), "group": nss_sources(nsswitch_text, "group"),
              "sssd_domains": sssd_domains(sssd_conf_text), "complete": True, "reasons": []}
    for database in ("passwd", "group"):
        for source in report[database]:
            if source in ENUMERATING_SOURCES:
                continue
            if source == "sss":
                domains = report["sssd_domains"]
                if domains is None:
                    reason = "%s: %s: sss, and %s cannot be read to see whether SSSD enumerates" % (
                        nsswitch_path, database, sssd_conf_path)
                else:
                    closed = [d for d, enumerates in domains.items() if not enumerates]
                    if not closed:
                        continue
                    reason = "%s: %s: sss, and SSSD domain %s has enumerate = false (%s)" % (
                        nsswitch_path, database, ", ".join(closed), sssd_conf_path)
            else:
                reason = "%s: %s: %s, a source that may not list its accounts when enumerated" % (
                    nsswitch_path, database, source)
            report["complete"] = False
            if reason not in report["reasons"]:
                report["reasons"].append(reason)
    return report


def not_enumerated_finding(report):
    """The subid_info finding for an incomplete host-ID view, or None."""
    if report["complete"]:
        return None
    return {"severity": "info", "kind": "directory_not_enumerated", "file": None, "line": None,
            "message": "the host-ID check could not see the whole directory: %s. Only the accounts and "
                       "groups resolved by name (owners, group members) are checked against ranges; reserve "
                       "the directory's ID ranges in the pool (subid_pool.reserved)" % "; ".join(report["reasons"])}
