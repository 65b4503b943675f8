# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin fleetid.subid.audit: the fleet report, written on the controller."""

from __future__ import annotations

import json
import os

from ansible.errors import AnsibleActionFail

from ansible_collections.fleetid.subid.plugins.module_utils._durable import replace_file
from ansible_collections.fleetid.subid.plugins.plugin_utils import action_specs as specs
from ansible_collections.fleetid.subid.plugins.plugin_utils.action_base import FleetidAction
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import PRESENT_STATES, parse_pool
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit import audit, console_lines, owners_info_problem, to_markdown
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit_svg import render as to_svg
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import blocks_of, open_ledger

ARGUMENT_SPEC = {
    "ledger": specs.LEDGER,
    "pool": specs.POOL,
    "hosts": {"type": "list", "elements": "str", "required": True},
    "info_var": {"type": "str", "default": "subid_audit_info"},
    "owners_var": {"type": "str", "default": "subid_owners"},
    "resolved_var": {"type": "str", "default": "subid_audit_owners"},
    "report_dir": {"type": "path", "required": True},
    "fail_on_critical": {"type": "bool", "default": True},
}


def _owner_names(owners):
    return [o if isinstance(o, str) else o.get("name") for o in owners or []
            if isinstance(o, str) or (o.get("state") or "present") in PRESENT_STATES]


class ActionModule(FleetidAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(self, args, task_vars, result):
        hostvars = task_vars.get("hostvars", {})
        pool = parse_pool(args["pool"])
        with open_ledger(args["ledger"], check_mode=True) as store:
            result["ledger"] = store.location
            blocks = blocks_of(store)

        hosts = {}
        for host in args["hosts"]:
            host_vars = hostvars.get(host, {})
            owners = self._templar.template(host_vars.get(args["owners_var"], []))
            resolved = host_vars.get(args["resolved_var"])
            usable = isinstance(resolved, dict) and not resolved.get("failed") and "owners" in resolved
            problem = owners_info_problem(resolved) if usable else None  # a host may send anything
            if usable and problem is None:
                # Owners as the host resolved them: subid_owners plus the owner groups' members.
                owners = resolved["owners"]
            else:
                resolved = None
            hosts[host] = {"info": host_vars.get(args["info_var"]), "owners": _owner_names(owners),
                           "resolved": resolved, "resolved_problem": problem}
        report = audit(blocks, pool, hosts)

        folder = args["report_dir"]
        paths = {name: os.path.join(folder, name) for name in ("subid-audit.json", "subid-audit.md", "subid-idspace.svg")}
        try:
            os.makedirs(folder, exist_ok=True)
            replace_file(paths["subid-audit.json"], json.dumps(report, indent=2, sort_keys=True).encode(), 0o644)
            replace_file(paths["subid-audit.md"], to_markdown(report).encode(), 0o644)
            replace_file(paths["subid-idspace.svg"], to_svg(report, pool).encode(), 0o644)
        except OSError as exc:
            raise AnsibleActionFail("the audit's reports cannot be written to %s: %s" % (folder, exc)) from None

        summary = report["summary"]
        result.update(changed=False, summary=summary, findings=report["findings"], reports=sorted(paths.values()),
                      lines=console_lines(report, sorted(paths.values())))
        if summary["critical"] and args["fail_on_critical"]:
            raise AnsibleActionFail("%d critical finding(s), see %s: %s" % (
                summary["critical"], paths["subid-audit.md"],
                "; ".join("%s: %s" % (f["host"], f["message"]) for f in report["findings"]
                          if f["severity"] == "critical")[:4000]))
