# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.adopt: record a fleet's agreeing entries in the ledger."""

from __future__ import annotations

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils.action_base import FleetidAction
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_pool
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import adopt, open_ledger

ARGUMENT_SPEC = {
    "ledger": specs.LEDGER,
    "pool": specs.POOL,
    "hosts": {"type": "list", "elements": "str", "required": True},
    "info_var": {"type": "str", "default": "subid_adoption_info"},
    "remap": {"type": "list", "elements": "str", "default": []},
    "lock_timeout": specs.LOCK_TIMEOUT,
}


class ActionModule(FleetidAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars, result):
        hostvars = task_vars.get("hostvars", {})
        hosts = {host: hostvars.get(host, {}).get(args["info_var"]) for host in args["hosts"]}
        pool = parse_pool(args["pool"])
        with open_ledger(args["ledger"], args["lock_timeout"], self._task.check_mode) as store:
            result["ledger"] = store.location
            decision = adopt(store, pool, hosts, args["remap"], self.today(), self._task.check_mode)
        result.update(
            changed=bool(decision["adopt"]),
            adopted=[{"owner": b.owner, "start": b.start, "count": b.count} for b in decision["adopt"]],
            conflicts=decision["conflicts"],
            held=decision["held"],
            unreached=sorted(h for h, info in hosts.items() if not info or "subuid" not in info),
        )
