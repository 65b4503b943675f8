# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.vars_check: runs on the controller, never on the host."""

from __future__ import annotations

from ansible_collections.fleetid.subid.plugins.plugin_utils.action_base import FleetidAction
from ansible_collections.fleetid.subid.plugins.plugin_utils.known_vars import known_names, unknown_names

ARGUMENT_SPEC = {
    "hosts": {"type": "list", "elements": "str", "default": []},
    "ignore": {"type": "list", "elements": "str", "default": []},
}


class ActionModule(FleetidAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars, result):
        known = known_names() | set(args["ignore"])
        hostvars = task_vars.get("hostvars") or {}
        hosts = args["hosts"] or [task_vars.get("inventory_hostname", "localhost")]
        setters = {}  # unknown name -> hosts that have it
        nearest = {}
        for host in hosts:
            names = set(hostvars[host].keys()) if host in hostvars else set()
            if host == task_vars.get("inventory_hostname"):
                names |= set(task_vars)  # the play's vars and extra vars too
            for name, close in unknown_names(names, known).items():
                setters.setdefault(name, []).append(host)
                nearest[name] = close
        result["unknown"] = [{"name": name, "hosts": sorted(setters[name]), "nearest": nearest[name]}
                             for name in sorted(setters)]
        for item in result["unknown"]:
            shown = ", ".join(item["hosts"][:3]) + (" and %d more" % (len(item["hosts"]) - 3)
                                                    if len(item["hosts"]) > 3 else "")
            result.setdefault("warnings", []).append(
                "%s (set for %s) is read by no role or playbook of fleetid.subid, so it has no effect%s; "
                "add it to subid_known_vars if it is yours" % (
                    item["name"], shown, ": did you mean %s?" % item["nearest"] if item["nearest"] else ""))
        result["changed"] = False
