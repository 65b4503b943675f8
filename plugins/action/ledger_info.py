# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.ledger_info: read blocks from the ledger, on the controller."""

from __future__ import annotations

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils.action_base import FleetidAction
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import blocks_of, open_ledger

ARGUMENT_SPEC = {
    "ledger": specs.LEDGER,
    "owners": {"type": "list", "elements": "str", "default": []},
    "state": {"type": "str", "choices": ["active", "quarantined", "any"], "default": "any"},
}


class ActionModule(FleetidAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars, result):
        owners = set(args["owners"])
        with open_ledger(args["ledger"], check_mode=True) as store:
            result["ledger"] = store.location
            found = blocks_of(store)
        result.update(changed=False, blocks=[
            {"owner": b.owner, "scope": b.scope, "start": b.start, "count": b.count, "state": b.state,
             "allocated": b.allocated, "released": b.released}
            for b in found
            if (not owners or b.owner in owners) and args["state"] in ("any", b.state)
        ])
