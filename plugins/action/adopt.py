# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.adopt: record a fleet's agreeing entries in the ledger."""

from __future__ import annotations

import datetime

from ansible.plugins.action import ActionBase

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import RangeError
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import AllocationError, parse_pool
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import LedgerLockTimeout
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import LedgerError
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import adopt, open_ledger

ARGUMENT_SPEC = {
    "ledger": specs.LEDGER,
    "pool": specs.POOL,
    "hosts": {"type": "list", "elements": "str", "required": True},
    "info_var": {"type": "str", "default": "subid_adoption_info"},
    "remap": {"type": "list", "elements": "str", "default": []},
    "lock_timeout": specs.LOCK_TIMEOUT,
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        hostvars = (task_vars or {}).get("hostvars", {})
        hosts = {host: hostvars.get(host, {}).get(args["info_var"]) for host in args["hosts"]}
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        try:
            pool = parse_pool(args["pool"])
            with open_ledger(args["ledger"], args["lock_timeout"], self._task.check_mode) as store:
                result["ledger"] = store.location
                decision = adopt(store, pool, hosts, args["remap"], today, self._task.check_mode)
        except (RangeError, LedgerError, AllocationError, LedgerLockTimeout, OSError) as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(
            changed=bool(decision["adopt"]),
            adopted=[{"owner": b.owner, "start": b.start, "count": b.count} for b in decision["adopt"]],
            conflicts=decision["conflicts"],
            held=decision["held"],
            unreached=sorted(h for h, info in hosts.items() if not info or "subuid" not in info),
        )
        return result
