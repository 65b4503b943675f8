#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/ledger_info.py, which does the work.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ledger_info
short_description: Read blocks from the subordinate ID ledger
version_added: 0.1.0
description:
  - Returns the ledger's blocks, all of them or those of some owners or in one state, from the
    file store or the PostgreSQL store. Playbooks use it instead of reading the ledger's format.
  - Runs on the controller only, reads the whole ledger (validated) and never writes.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  owners:
    description: Only the blocks of these owners. All owners when empty.
    type: list
    elements: str
    default: []
  state:
    description: Only blocks in this state.
    type: str
    choices: [active, quarantined, any]
    default: any
extends_documentation_fragment:
  - fleetid.subid.attributes.controller
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - fleetid.subid.ledger
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
    details: It changes nothing.
seealso:
  - module: fleetid.subid.allocate
  - module: fleetid.subid.ledger_copy
"""

EXAMPLES = r"""
- name: Find the released blocks of dave
  fleetid.subid.ledger_info:
    ledger: "{{ subid_ledger }}"
    owners: [dave]
    state: quarantined
  run_once: true
  register: released
"""

RETURN = r"""
ledger:
  description: The ledger read, a path or a URI without its password.
  returned: always
  type: str
  sample: /srv/fleet/ledger/subid-ledger.yml
blocks:
  description: The matching blocks, sorted by start.
  returned: success
  type: list
  elements: dict
  contains:
    owner:
      description: Owner of the block.
      type: str
    scope:
      description: V(fleet), or C(host:NAME) for a block of one host.
      type: str
    start:
      description: First ID of the block.
      type: int
    count:
      description: Number of IDs in the block.
      type: int
    state:
      description: V(active) or V(quarantined).
      type: str
    allocated:
      description: Date the block was handed out, C(YYYY-MM-DD).
      type: str
    released:
      description: Date the block was released, or null.
      type: str
  sample:
    - {owner: dave, scope: fleet, start: 296608, count: 65536, state: quarantined, allocated: "2026-11-20", released: "2026-11-27"}
"""
