# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.ledger_copy: copy a ledger between stores, on the controller."""

from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import LedgerLockTimeout
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import LedgerError
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import copy, describe, open_ledger

ARGUMENT_SPEC = {
    "src": {"type": "str", "required": True},
    "dest": {"type": "str", "required": True},
    "replace": {"type": "bool", "default": False},
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
        check_mode = self._task.check_mode
        result.update(src=describe(args["src"]), dest=describe(args["dest"]))
        if result["src"] == result["dest"]:
            result.update(failed=True, msg="src and dest are the same ledger: %s" % result["src"])
            return result
        try:
            with open_ledger(args["src"], check_mode=True) as source:
                with open_ledger(args["dest"], args["lock_timeout"], check_mode) as dest:
                    copied, changed = copy(source, dest, check_mode, args["replace"])
        except (LedgerError, LedgerLockTimeout, OSError) as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(changed=changed, blocks=len(copied))
        if changed and self._task.diff:
            result["diff"] = {
                "before_header": result["dest"], "after_header": result["dest"],
                "before": "", "after": "%d blocks from %s\n" % (len(copied), result["src"]),
            }
        return result
