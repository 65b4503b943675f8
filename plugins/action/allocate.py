# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.allocate: runs on the controller, never on the host."""

from __future__ import annotations

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils import host_rules
from ansible_collections.fleetid.subid.plugins.plugin_utils.action_base import FleetidAction
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import render_block
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate, open_ledger

ARGUMENT_SPEC = {
    "ledger": specs.LEDGER,
    "pool": specs.POOL,
    "owners": {"type": "list", "elements": "raw", "required": True},
    "hold": {"type": "list", "elements": "str", "default": []},
    "lock_timeout": specs.LOCK_TIMEOUT,
    "host_state": {"type": "dict", "default": {}, "options": {
        "resolved_ids": {"type": "list", "elements": "dict", "default": [], "options": {
            "kind": {"type": "str", "required": True, "choices": ["uid", "gid"]},
            "id": {"type": "int", "required": True},
            "name": {"type": "str", "required": True},
        }},
        "present_owners": {"type": "list", "elements": "str", "default": []},
        "current_ranges": {"type": "dict"},
        "podman_state": {"type": "dict", "default": {}},
        "pending_shifts": {"type": "dict", "default": {}},
        "unresolved": {"type": "list", "elements": "str", "default": []},
        "unsafe_lines": {"type": "list", "elements": "dict", "default": []},
    }},
    "play_unresolved": {"type": "list", "elements": "list", "default": []},
    "unknown_owners": {"type": "str", "choices": ["warn", "refuse"], "default": "warn"},
    "move": {"type": "list", "elements": "str", "default": []},
    "report_unrequested": {"type": "bool", "default": True},
}


def _ranges_text(ranges):
    if ranges is None:
        return "lines in another form"
    return ", ".join("%d+%d" % (start, count) for start, count in ranges) or "no range"


def _block_dict(block):
    return {"owner": block.owner, "scope": block.scope, "start": block.start, "count": block.count}


class ActionModule(FleetidAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars, result):
        host = task_vars.get("inventory_hostname", "localhost")
        pool = parse_pool(args["pool"])
        held = set(args["hold"])
        refused = []  # one odd name (a directory's "John Smith") is refused alone, not the host
        state = args["host_state"] or {}
        unknown, nowhere = host_rules.unresolved_owners(
            [o for o in args["owners"] if isinstance(o, dict)], state.get("unresolved") or [],
            args["play_unresolved"], args["unknown_owners"] == "refuse")
        refused += nowhere
        requests = [r for r in parse_owners(args["owners"], pool, refused)
                    if r.name not in held and r.name not in {o["name"] for o in nowhere}]
        host_rules.refuse_pool_over_ids(pool, state.get("resolved_ids") or [], host)
        with open_ledger(args["ledger"], args["lock_timeout"], self._task.check_mode) as store:
            result["ledger"] = store.location
            current, outcome = allocate(store, pool, requests, host, self.today(), self._task.check_mode)
            present = (state.get("present_owners") or []) if args["report_unrequested"] else []
            unrequested = host_rules.unrequested(store, pool, present, requests, held, host)

        entries = [
            {"name": name, "start": rng.start, "count": rng.count}
            for name, ranges in outcome.entries.items()
            for rng in ranges
        ]
        # An owner with Podman state whose lines here differ keeps them, or moves with its storage.
        holds, shifts = host_rules.storage_moves(state.get("current_ranges"), entries, state.get("podman_state"),
                                                 set(args["move"]), state.get("pending_shifts"))
        entries = [e for e in entries if e["name"] not in {h["owner"] for h in holds}]
        result.update(
            changed=outcome.changed,
            subuid=entries,
            subgid=[dict(entry) for entry in entries],
            allocated=[_block_dict(b) for b in outcome.added],
            reactivated=[_block_dict(b) for b in outcome.reactivated],
            released=[_block_dict(b) for b in outcome.released],
            reclaimed=[_block_dict(b) for b in outcome.reclaimed],
            retired=[{"name": name} for name in host_rules.retired(requests)],
            quarantine_held=[{"owner": owner, "scope": scope, "blocks": [_block_dict(b) for b in held]}
                             for owner, scope, held in outcome.held],
            storage_held=holds,
            shifts=shifts,
            refused=refused,
            unrequested=unrequested,
            floor=pool.floor,
            in_step=host_rules.in_step(state.get("current_ranges"), entries),
        )
        for text in unknown:
            result.setdefault("warnings", []).append("%s: %s" % (host, text))
        for owner in refused:
            result.setdefault("warnings", []).append(
                "%s: owner %r is refused, nothing was allocated or written for it: %s; the host's other owners "
                "are served" % (host, owner["name"], owner["reason"]))
        for owner, scope, quarantined in outcome.held:
            result.setdefault("warnings", []).append(
                "%s: %s is skipped, nothing was allocated or written for it: its block%s %s %s quarantined since "
                "it was released on %s (offboarded). If %s is back, list it as {name: %s, state: reactivated} to "
                "take the block%s back into use; otherwise remove %s from subid_owners" % (
                    host, owner, "" if len(quarantined) == 1 else "s", ", ".join(str(b.range) for b in quarantined),
                    "is" if len(quarantined) == 1 else "are", ", ".join(sorted({str(b.released) for b in quarantined})),
                    owner, owner, "" if len(quarantined) == 1 else "s", owner))
        for hold in holds:
            result.setdefault("warnings", []).append(
                "%s: %s keeps %s here, not the ledger's %s: %s has container state (%s), whose files are owned by IDs "
                "of the current range and would show as nobody (65534) in every container after a move. Nothing "
                "was written for %s. To move %s with its storage, list %s in subid_move (its containers stopped: "
                "the move gives each file the matching ID of the new range); to keep this range everywhere, adopt "
                "it (site.yml with subid_adopt)" % (
                    host, hold["owner"], _ranges_text(hold["current"]["subuid"]), _ranges_text(hold["ledger"]),
                    hold["owner"], "; ".join(hold["evidence"]), hold["owner"], hold["owner"], hold["owner"]))
        if not entries and not result["retired"] and not outcome.released and not outcome.held and not holds:
            # Most often a typo (subid_owner for subid_owners) or group_vars the host is not in.
            result.setdefault("warnings", []).append(
                "%s gets no subordinate ID ranges: no owner is requested for it%s (see subid_owners and "
                "subid_owner_groups in this host's variables)" % (
                    host, ", %s held" % ", ".join(sorted(held)) if held else ""))
        if unrequested:
            result.setdefault("warnings", []).append(
                "%s: %s ha%s a line here and an active block in the ledger but %s no longer requested (not in "
                "subid_owners, not a member of subid_owner_groups); the line%s and block%s stay until released "
                "explicitly (playbooks/offboard.yml)" % (
                    host, ", ".join(unrequested), "s" if len(unrequested) == 1 else "ve",
                    "is" if len(unrequested) == 1 else "are", "" if len(unrequested) == 1 else "s",
                    "" if len(unrequested) == 1 else "s"))
        if self._task.check_mode and outcome.added:
            # Hosts run in separate workers and check mode writes nothing, so each host's
            # new blocks are predicted as if no other host asked for any.
            result.setdefault("warnings", []).append(
                "check mode: the new blocks shown (%s) are predicted for this host alone; other hosts "
                "in this run may be shown the same free IDs, while a real run allocates new owners "
                "one after another" % ", ".join("%s %d+%d" % (b.owner, b.start, b.count) for b in outcome.added))
        if self._task.diff and outcome.changed:
            result["diff"] = self._diff(result["ledger"], current, outcome)

    @staticmethod
    def _diff(path, before_blocks, outcome):
        """Only the ledger lines this call touches: the ledger may hold 50,000 blocks."""
        changed = outcome.added + outcome.reactivated + outcome.released + outcome.reclaimed
        starts = {b.start for b in changed}

        def lines(blocks):
            return "".join(render_block(b) + "\n"
                           for b in sorted(blocks, key=lambda b: b.start) if b.start in starts)

        return {
            "before_header": path,
            "after_header": path,
            "before": lines(before_blocks),
            "after": lines(outcome.blocks),
        }
