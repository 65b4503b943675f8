# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.allocate: runs on the controller, never on the host."""

from __future__ import annotations

import datetime

from ansible.plugins.action import ActionBase

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import (
    AllocationError,
    parse_owners,
    parse_pool,
)
from ansible_collections.fleetid.subid.plugins.module_utils.directory import ids_in_ranges
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import RangeError
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import LedgerLockTimeout
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import FLEET, HOST_PREFIX, LedgerError, render_block
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate, describe, open_ledger, owners_blocks

ARGUMENT_SPEC = {
    "ledger": specs.LEDGER,
    "pool": specs.POOL,
    "owners": {"type": "list", "elements": "raw", "required": True},
    "hold": {"type": "list", "elements": "str", "default": []},
    "lock_timeout": specs.LOCK_TIMEOUT,
    "resolved_ids": {"type": "list", "elements": "dict", "default": [], "options": {
        "kind": {"type": "str", "required": True, "choices": ["uid", "gid"]},
        "id": {"type": "int", "required": True},
        "name": {"type": "str", "required": True},
    }},
    "present_owners": {"type": "list", "elements": "str", "default": []},
    "current_ranges": {"type": "dict"},
}


def _retired(requests):
    """Owners whose lines leave this host: listed only as released or reclaimed."""
    present = {r.name for r in requests if r.state == "present"}
    return sorted({r.name for r in requests if r.state != "present"} - present)


def _refuse_pool_over_ids(pool, resolved, host):
    """A RangeError when a pool range (outside ``reserved`` and the floor) holds an ID the
    host resolved: such a pool could hand out a directory user's own ID, and a directory
    that is not enumerated may hold more IDs around it."""
    hits = ids_in_ranges(resolved, pool.ranges, pool.reserved, pool.floor)
    if hits:
        raise RangeError(
            "the pool is refused, nothing was allocated or written: %s. A directory that cannot be "
            "enumerated may hold more IDs near these; declare its ID ranges in the pool's reserved list "
            "(e.g. {start: 10000, count: 1990000} for LDAP IDs 10000-1999999, or {start: 200000, count: "
            "2000000000} for SSSD's ID mapping) or move the pool's ranges above them" % "; ".join(
                "pool range %d-%d contains %s %d of %s (resolved on %s)" % (
                    rng.start, rng.last, entry["kind"].upper(), entry["id"], entry["name"], host)
                for entry, rng in hits[:5]))


def _unrequested(store, pool, present, requests, held, host):
    """Owners with a line on the host (``present``) and an active ledger block for it that
    this run no longer asks for: a member who left an owner group, an owner dropped from
    subid_owners. They keep their lines and blocks until released explicitly."""
    names = set(present) - {r.name for r in requests} - held
    if not names:
        return []
    return sorted({b.owner for b in owners_blocks(store, names, pool) if b.state == "active"
                   and (b.scope == FLEET or b.scope == HOST_PREFIX + host)})


def _in_step(current, entries):
    """Whether the host's files, as owner_groups read them (``current``), hold exactly
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


def _block_dict(block):
    return {"owner": block.owner, "scope": block.scope, "start": block.start, "count": block.count}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        host = (task_vars or {}).get("inventory_hostname", "localhost")
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        try:
            pool = parse_pool(args["pool"])
            held = set(args["hold"])
            requests = [r for r in parse_owners(args["owners"], pool) if r.name not in held]
            _refuse_pool_over_ids(pool, args["resolved_ids"], host)
            with open_ledger(args["ledger"], args["lock_timeout"], self._task.check_mode) as store:
                result["ledger"] = store.location
                current, outcome = allocate(store, pool, requests, host, today, self._task.check_mode)
                unrequested = _unrequested(store, pool, args["present_owners"], requests, held, host)
        except (RangeError, LedgerError, AllocationError, LedgerLockTimeout) as exc:
            result.update(failed=True, msg=str(exc))
            return result
        except OSError as exc:
            result.update(failed=True, msg="ledger %s: %s" % (describe(args["ledger"]), exc))
            return result

        entries = [
            {"name": name, "start": rng.start, "count": rng.count}
            for name, ranges in outcome.entries.items()
            for rng in ranges
        ]
        result.update(
            changed=outcome.changed,
            subuid=entries,
            subgid=[dict(entry) for entry in entries],
            allocated=[_block_dict(b) for b in outcome.added],
            reactivated=[_block_dict(b) for b in outcome.reactivated],
            released=[_block_dict(b) for b in outcome.released],
            reclaimed=[_block_dict(b) for b in outcome.reclaimed],
            retired=[{"name": name} for name in _retired(requests)],
            unrequested=unrequested,
            floor=pool.floor,
            in_step=_in_step(args["current_ranges"], entries),
        )
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
        return result

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
