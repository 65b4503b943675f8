# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.ledger_info: read blocks from the ledger, on the controller."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import LedgerError
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import blocks_of, open_ledger

ARGUMENT_SPEC = {
    "ledger": specs.LEDGER,
    "owners": {"type": "list", "elements": "str", "default": []},
    "state": {"type": "str", "choices": ["active", "quarantined", "any"], "default": "any"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        owners = set(args["owners"])
        try:
            with open_ledger(args["ledger"], check_mode=True) as store:
                result["ledger"] = store.location
                found = blocks_of(store)
        except (LedgerError, OSError) as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(changed=False, blocks=[
            {"owner": b.owner, "scope": b.scope, "start": b.start, "count": b.count, "state": b.state,
             "allocated": b.allocated, "released": b.released}
            for b in found
            if (not owners or b.owner in owners) and args["state"] in ("any", b.state)
        ])
        return result
