# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Adoption of a fleet's existing subuid/subgid entries into the ledger. Pure logic.

An owner's entries are recorded as they are when they agree on every host where the
owner appears, subuid equals subgid, and the ranges are free in the ledger and safe.
Anything else is a conflict, reported with the proposed fix; nothing is remapped unless
the administrator opts in for that owner, because moving a range strands the owner's
container storage (its files keep the old IDs).
"""

from __future__ import annotations

import collections

from ansible_collections.fleetid.subid.plugins.plugin_utils.audit import read_by_shadow
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import FLEET, Block
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import IdRange

# subid_info finding kinds that make an entry unsafe to keep as it is.
UNSAFE_KINDS = ("maps_root", "below_floor", "host_id_collision", "owner_id_in_range", "overlap")

STRANDED = ("moving %s's range strands its container storage: files under ~/.local/share/containers "
            "keep the old IDs (run `podman system reset` as %s first, or chown them to the new range)")


def _ranges(entries, owner):
    return tuple(sorted((int(e["start"]), int(e["count"])) for e in entries if e["owner"] == owner))


def _text(ranges):
    return ", ".join("%d+%d" % pair for pair in ranges) or "nothing"


def plan_adoption(blocks, pool, hosts, remap=(), today="1970-01-01"):
    """Decide per owner. ``hosts``: host -> subid_info result (subuid, subgid, findings).

    Returns {"adopt": [Block], "conflicts": [{owner, hosts, message, fix}], "held": [names]}:
    ``held`` owners have conflicts and are not in ``remap``, so nothing may allocate for
    them (that would remap them silently); ``remap`` owners are left to the allocator.
    """
    in_ledger = {b.owner for b in blocks}
    seen = collections.defaultdict(dict)  # owner -> host -> (subuid ranges, subgid ranges)
    unsafe = collections.defaultdict(list)  # owner -> messages
    for host, info in sorted(hosts.items()):
        if not info or "subuid" not in info:
            continue
        info = dict(info, subuid=read_by_shadow(info["subuid"]), subgid=read_by_shadow(info["subgid"]))
        owners = {e["owner"] for e in info["subuid"]} | {e["owner"] for e in info["subgid"]}
        for owner in owners:
            seen[owner][host] = (_ranges(info["subuid"], owner), _ranges(info["subgid"], owner))
        lines = {(e["line"], kind): e["owner"] for kind in ("subuid", "subgid") for e in info[kind]}
        for f in info.get("findings", []):
            if f["kind"] in UNSAFE_KINDS and f.get("line"):
                kind = "subuid" if str(f.get("file", "")).endswith("subuid") else "subgid"
                owner = lines.get((f["line"], kind))
                if owner:
                    unsafe[owner].append("%s: %s" % (host, f["message"]))

    adopt, conflicts, held = [], [], []
    claimed = [(b.range, b.owner) for b in blocks]

    def conflict(owner, where, message, fix):
        conflicts.append({"owner": owner, "hosts": sorted(where), "message": message, "fix": fix})
        if owner not in remap:
            held.append(owner)

    for owner in sorted(seen):
        per_host = seen[owner]
        if owner in in_ledger:
            continue  # the ledger decides; the audit reports any drift
        remap_fix = "opt in with subid_adopt_remap: [%s] to give it a new block; %s" % (owner, STRANDED % (owner, owner))
        mismatched = sorted(h for h, (uid, gid) in per_host.items() if uid != gid)
        if mismatched:
            conflict(owner, mismatched, "%s has different subuid and subgid ranges on %s" % (owner, ", ".join(mismatched)),
                     "make them equal by hand, or " + remap_fix)
            continue
        variants = collections.defaultdict(list)
        for host, (uid, gid) in per_host.items():
            variants[uid].append(host)
        if len(variants) > 1:
            conflict(owner, per_host, "%s has different ranges on different hosts: %s" % (owner, "; ".join(
                "%s on %s" % (_text(r), ", ".join(sorted(h))) for r, h in sorted(variants.items()))), remap_fix)
            continue
        ranges = [IdRange(s, c) for s, c in next(iter(variants))]
        problems = list(unsafe.get(owner, []))
        for rng in ranges:
            problems.extend(pool.refusals(rng))
            problems.extend("%s overlaps %s's block %s" % (rng, other, taken)
                            for taken, other in claimed if rng.overlaps(taken))
        if problems:
            conflict(owner, per_host, "%s cannot be adopted as it is: %s" % (owner, "; ".join(problems)), remap_fix)
            continue
        for rng in ranges:
            adopt.append(Block(owner, FLEET, rng.start, rng.count, "active", today, None, 0))
            claimed.append((rng, owner))
    return {"adopt": adopt, "conflicts": conflicts, "held": sorted(set(held))}
