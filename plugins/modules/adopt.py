#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/adopt.py, which does the work.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: adopt
short_description: Record a fleet's existing subordinate ID entries in the ledger
version_added: 0.1.0
description:
  - Runs once on the controller, for taking over a fleet whose hosts already have entries
    made by hand or by C(useradd). It reads what M(fleetid.subid.subid_info) returned on each host.
  - An owner that is not in the ledger yet is recorded as it is, in scope C(fleet), with no host
    file changed, when its entries agree on every host where it appears, its subuid and subgid
    ranges are equal, and the ranges are free in the ledger and safe. Safe means not below the
    floor, not reserved, not over a host ID, and not overlapping another owner.
  - Anything else is a conflict. The owner, the hosts and the proposed fix are reported. Such an
    owner is held, which means it is listed in RV(held) for role P(fleetid.subid.subids#role) to leave
    alone, unless it is listed in O(remap). Moving a range strands the owner's container storage.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  hosts:
    description: Hosts whose entries to consider, for example C(ansible_play_hosts_all).
    type: list
    elements: str
    required: true
  info_var:
    description: Name of the variable, on each host, that holds the registered M(fleetid.subid.subid_info) result.
    type: str
    default: subid_adoption_info
  remap:
    description: Owners with conflicts that may be given new blocks (opt-in, per owner).
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - fleetid.subid.attributes.controller
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - fleetid.subid.pool
  - fleetid.subid.ledger
  - fleetid.subid.ledger.lock
attributes:
  check_mode:
    support: full
    details: Reports what would be adopted and writes nothing.
  diff_mode:
    support: none
    details: The adopted blocks are returned instead.
seealso:
  - module: fleetid.subid.allocate
  - module: fleetid.subid.subid_info
"""

EXAMPLES = r"""
- name: Read each host's entries
  fleetid.subid.subid_info:
  register: subid_adoption_info

- name: Record the entries that agree across the fleet
  fleetid.subid.adopt:
    ledger: "{{ subid_ledger }}"
    pool: "{{ subid_pool }}"
    hosts: "{{ ansible_play_hosts_all }}"
    remap: [dave]
  run_once: true
  register: subid_adoption
"""

RETURN = r"""
ledger:
  description: The ledger used, an absolute path or a V(postgresql://) URI without its password.
  returned: when the ledger could be opened
  type: str
  sample: /srv/fleet/ledger/subid-ledger.yml
adopted:
  description: Blocks recorded in the ledger as they were on the hosts.
  returned: success
  type: list
  elements: dict
  sample: [{owner: alice, start: 100000, count: 65536}]
conflicts:
  description: Owners that could not be adopted, as C({owner, hosts, message, fix}).
  returned: success
  type: list
  elements: dict
  sample:
    - owner: bob
      hosts: [web1, web2]
      message: "bob has different ranges on different hosts: 165536+65536 on web1; 231072+65536 on web2"
      fix: "opt in with subid_adopt_remap: [bob] to give it a new block; moving bob's range strands ..."
held:
  description: Owners with conflicts and no opt-in. Nothing may allocate for them until the conflict is resolved.
  returned: success
  type: list
  elements: str
  sample: [bob]
unreached:
  description: Hosts without a M(fleetid.subid.subid_info) result.
  returned: success
  type: list
  elements: str
  sample: []
"""
