# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules allocate applies to what the host reported (owners_info's ``host_state``):
whether the files are in step with the ledger, which owners are no longer requested,
which owners' lines leave the host, and whether the pool holds an ID the host resolved.

Controller-side and pure but for the ledger lookup of unrequested owners.
"""

from __future__ import annotations

from ansible_collections.fleetid.subid.plugins.module_utils.directory import ids_in_ranges
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import RangeError
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import FLEET, HOST_PREFIX
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import owners_blocks


def retired(requests):
    """Owners whose lines leave this host: listed only as released or reclaimed."""
    present = {r.name for r in requests if r.state == "present"}
    return sorted({r.name for r in requests if r.state != "present"} - present)


def refuse_pool_over_ids(pool, resolved, host):
    """A RangeError when a pool range (outside ``reserved`` and the floor) holds an ID the
    host resolved: such a pool could hand out a directory user's own ID, and a directory
    that is not enumerated may hold more IDs around it."""
    hits = ids_in_ranges(resolved, pool.ranges, pool.withheld())
    if hits:
        raise RangeError(
            "the pool is refused, nothing was allocated or written: %s. A directory that cannot be "
            "enumerated may hold more IDs near these; declare its ID ranges in the pool's reserved list "
            "(e.g. {start: 10000, count: 1990000} for LDAP IDs 10000-1999999, or {start: 200000, count: "
            "2000000000} for SSSD's ID mapping) or move the pool's ranges above them" % "; ".join(
                "pool range %d-%d contains %s %d of %s (resolved on %s)" % (
                    rng.start, rng.last, entry["kind"].upper(), entry["id"], entry["name"], host)
                for entry, rng in hits[:5]))


def unrequested(store, pool, present, requests, held, host):
    """Owners with a line on the host (``present``) and an active ledger block for it that
    this run no longer asks for: a member who left an owner group, an owner dropped from
    subid_owners. They keep their lines and blocks until released explicitly."""
    names = set(present) - {r.name for r in requests} - held
    if not names:
        return []
    return sorted({b.owner for b in owners_blocks(store, names, pool) if b.state == "active"
                   and (b.scope == FLEET or b.scope == HOST_PREFIX + host)})


def in_step(current, entries):
    """Whether the host's files, as owners_info read them (``current``), hold exactly
    ``entries`` for both subuid and subgid: each owner's [start, count] pairs in order, as
    the subid module would write them, and no interrupted write for it to repair."""
    if not current or current.get("interrupted_write") is not False:
        return False
    wanted = {}
    for entry in entries:
        wanted.setdefault(entry["name"], []).append([entry["start"], entry["count"]])
    return all(isinstance(current.get(kind), dict)
               and all(current[kind].get(name) == ranges for name, ranges in wanted.items())
               for kind in ("subuid", "subgid"))


# Owners read by name without an account: rootful Podman and CRI-O (containers) and
# Docker before its first start (dockremap, which it creates then).
ACCOUNTLESS_OWNERS = ("containers", "dockremap")


def unresolved_owners(owners, here, play, refuse):
    """The owners without an account on this host (``here``, owners_info's unresolved) and
    those without one on any host of the play (``play``: each host's unresolved), most
    often a typo; without ``play``, only this host's. Returns (warnings, refused [{name,
    reason}]): with ``refuse``, an owner that resolves nowhere is refused unless it is
    marked ``may_be_absent``."""
    # Marked owners, and leavers (their account may be gone already), are no one's typo.
    marked = {o["name"] for o in owners
              if isinstance(o, dict) and (o.get("may_be_absent") or o.get("state") in ("released", "reclaimed"))}
    nowhere = set.intersection(*[set(names) for names in play]) if play else set()
    warnings, refused = [], []
    for name in here:
        if name in marked or name in ACCOUNTLESS_OWNERS:
            continue
        if name in nowhere and refuse:
            refused.append({"name": name, "reason": (
                "it has no account on any host of this play (getent passwd %s finds nothing), most often a typo. "
                "Fix the name, or list it as {name: %s, may_be_absent: true} if it is a directory account that may "
                "be absent" % (name, name))})
        elif name in nowhere:
            warnings.append(
                "%s has no account on any host of this play (getent passwd %s finds nothing): it gets a fleet-wide "
                "block and lines all the same. A typo? Fix the name; or mark it {name: %s, may_be_absent: true}; "
                "subid_unknown_owners: refuse refuses such owners" % (name, name, name))
        else:
            warnings.append("%s has no account on this host: it gets its block's lines here all the same "
                            "(mark it {name: %s, may_be_absent: true} where that is expected)" % (name, name))
    return warnings, refused


def storage_moves(current, entries, podman_state, move, pending):
    """Who of the owners whose lines here hold other ranges than ``entries`` has Podman state
    (``podman_state``: owner -> evidence): their storage's files are owned by IDs of the
    current ranges, and a move without them would show them as nobody (65534) in every
    container. Those listed in ``move`` have their storage shifted with the move; the others
    keep their lines. An owner with a shift begun and not closed here (``pending``) has it
    finished. Returns (holds [{owner, current, ledger, evidence}], shifts [{owner, subuid,
    subgid}] for fleetid.subid.storage_shift)."""
    wanted = {}
    for entry in entries:
        wanted.setdefault(entry["name"], []).append([entry["start"], entry["count"]])
    holds, shifts = [], []
    current = current or {}
    for name, ranges in wanted.items():
        have = {kind: (current.get(kind) or {}).get(name, []) for kind in ("subuid", "subgid")}
        if name in (pending or {}):
            shifts.append({"owner": name, "subuid": ranges, "subgid": ranges})
            continue
        if not (podman_state or {}).get(name) or name not in (current.get("subuid") or {}) \
                or all(have[kind] == ranges for kind in have):
            continue  # nothing to strand: no storage, no line here yet, or already the ledger's
        if name in move:
            shifts.append({"owner": name, "subuid": ranges, "subgid": ranges})
        else:
            holds.append({"owner": name, "current": have, "ledger": ranges, "evidence": list(podman_state[name])})
    return holds, shifts
