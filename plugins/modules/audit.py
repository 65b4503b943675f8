#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/audit.py, which does the work.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: audit
short_description: Compare every host's subordinate IDs with the ledger and write a report
version_added: 0.1.0
description:
  - Runs once on the controller. It takes what M(fleetid.subid.subid_info) returned on each
    host (a registered variable) and compares it with the ledger.
  - Reports drift, where a host's ranges differ from the ledger. Reports owners the ledger
    gives the host that have no line there, entries the ledger does not know, and released
    owners whose lines are still present. Reports entries that overlap another owner's
    ledger block.
  - Also reports everything the hosts found themselves. That covers overlaps, ranges over
    host IDs or root or below 1000, ranges that contain their owner's own UID, missing or
    unprivileged newuidmap and newgidmap, and disabled user namespaces.
  - "Covers directory owners when each host also registered M(fleetid.subid.owners_info) (see O(resolved_var)):
    group members without a block (V(member_without_block), warning); with owner groups, owners with a
    line and an active block that the host no longer requests, such as a member who left the group
    (V(unrequested), warning; never released by the audit); and ranges, in the host files or the ledger,
    that contain a UID or GID the host resolved by name (V(resolved_id_in_range), critical), which the
    host-ID check of M(fleetid.subid.subid_info) cannot see when the directory does not enumerate.
    Blocks of accounts that no longer resolve show as the hosts' V(unknown_owner) findings."
  - Findings of severity V(info) (such as V(directory_not_enumerated)) are listed and counted but never fail the audit.
  - Writes C(subid-audit.json) for tools, C(subid-audit.md) for people and
    C(subid-idspace.svg), a picture of the ID space. It shows the counts of findings by
    severity; the pool with its reserved ranges and the systemd container window; the
    allocated area in ID order, wrapped into rows, where each block is named when there is room
    (a block's width grows one step per doubling of its size, long free runs are cut out) and
    the blocks of owners with critical findings or warnings are outlined; and each host by its
    worst finding. It fails when anything is critical, so CI can gate on it.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  hosts:
    description: Hosts to report on, for example C(ansible_play_hosts_all).
    type: list
    elements: str
    required: true
  info_var:
    description: Name of the variable, on each host, that holds the registered M(fleetid.subid.subid_info) result.
    type: str
    default: subid_audit_info
  owners_var:
    description: Name of the variable, on each host, that lists its owners, used to report missing lines.
    type: str
    default: subid_owners
  resolved_var:
    description:
      - Name of the variable, on each host, that holds the registered M(fleetid.subid.owners_info) result.
        When it is set, the host's owners are its RV(fleetid.subid.owners_info#module:owners) (owners and
        group members) instead of O(owners_var), and the directory findings are reported.
    type: str
    default: subid_audit_owners
  report_dir:
    description: Folder on the controller for the three report files.
    type: path
    required: true
  fail_on_critical:
    description: Fail when there is any critical finding.
    type: bool
    default: true
extends_documentation_fragment:
  - fleetid.subid.attributes.controller
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - fleetid.subid.pool
  - fleetid.subid.ledger
attributes:
  check_mode:
    support: full
    details: It only reads, and writes the report even in check mode.
  diff_mode:
    support: none
    details: Nothing on the hosts changes.
seealso:
  - module: fleetid.subid.subid_info
"""

EXAMPLES = r"""
- name: Inspect every host
  fleetid.subid.subid_info:
  register: subid_audit_info

- name: Write the fleet report
  fleetid.subid.audit:
    ledger: "{{ subid_ledger }}"
    pool: "{{ subid_pool }}"
    hosts: "{{ ansible_play_hosts_all }}"
    report_dir: "{{ inventory_dir }}/../reports"
  run_once: true
"""

RETURN = r"""
ledger:
  description: The ledger used, an absolute path or a V(postgresql://) URI without its password.
  returned: when the ledger could be opened
  type: str
  sample: /srv/fleet/ledger/subid-ledger.yml
summary:
  description: Counts of hosts, blocks, IDs, free space and findings.
  returned: success
  type: dict
  sample: {hosts: 3, blocks: 4, active_blocks: 3, quarantined_blocks: 1, owners: 4, critical: 0, warning: 1, info: 0}
findings:
  description: Each finding as C({host, severity, kind, owner, file, line, message}), most severe first.
  returned: success
  type: list
  elements: dict
  sample:
    - host: web1
      severity: critical
      kind: drift
      owner: alice
      file: subuid
      line: 1
      message: "/etc/subuid line 1: alice has 200000+65536 but the ledger says 100000+65536; run site.yml to apply the ledger"
reports:
  description: Paths of the report files written.
  returned: success
  type: list
  elements: str
  sample: [/srv/fleet/reports/subid-audit.json, /srv/fleet/reports/subid-audit.md, /srv/fleet/reports/subid-idspace.svg]
lines:
  description:
    - The audit as a person reads it on a console, for a P(ansible.builtin.debug#module) task (the
      C(fleetid.subid.audit) playbook prints them).
    - The counts by severity first, then one line per finding (severity, host, file:line, owner, kind
      and message, with control characters from hosts shown as spaces), then the paths of the reports.
  returned: success
  type: list
  elements: str
  sample:
    - 1 critical, 0 warning, 0 info on 3 hosts; 12 blocks in the ledger, 599213568 IDs free
    - "CRITICAL node2 /etc/subuid:4 root maps_root: /etc/subuid line 4 (root:0:65536) contains ID 0: its owner
      can become the host's root"
    - "reports: reports/subid-audit.json, reports/subid-audit.md, reports/subid-idspace.svg"
"""
