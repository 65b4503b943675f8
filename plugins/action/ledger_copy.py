# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.ledger_copy: copy a ledger between stores, on the controller."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils.action_base import FleetidAction
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import copy, describe, open_ledger

ARGUMENT_SPEC = {
    "src": {"type": "str", "required": True},
    "dest": {"type": "str", "required": True},
    "replace": {"type": "bool", "default": False},
    "lock_timeout": specs.LOCK_TIMEOUT,
}


class ActionModule(FleetidAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars, result):
        check_mode = self._task.check_mode
        result.update(src=describe(args["src"]), dest=describe(args["dest"]))
        if result["src"] == result["dest"]:
            raise AnsibleActionFail("src and dest are the same ledger: %s" % result["src"])
        with open_ledger(args["src"], check_mode=True) as source:
            with open_ledger(args["dest"], args["lock_timeout"], check_mode) as dest:
                copied, changed = copy(source, dest, check_mode, args["replace"])
        result.update(changed=changed, blocks=len(copied))
        if changed and self._task.diff:
            result["diff"] = {
                "before_header": result["dest"], "after_header": result["dest"],
                "before": "", "after": "%d blocks from %s\n" % (len(copied), result["src"]),
            }
