#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/vars_check.py, which does the work.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vars_check
short_description: Warn about variables of this collection's prefixes that nothing reads
version_added: 0.1.0
description:
  - Looks at the variables of each host in O(hosts) (inventory, host and group variables, extra variables,
    and the play's variables for the current host). A name that starts with C(subid_), C(subids_),
    C(login_defs_), C(uidmap_) or C(rootless_podman_) that no role or playbook of the collection reads
    gets a warning with the nearest known name, for example C(subid_owner) (did you mean C(subid_owners)?).
  - The known names are those the collection's roles and playbooks mention, so the list cannot fall behind
    them.
  - Runs on the controller only and changes nothing. Every playbook of the collection runs it first.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  hosts:
    description: The hosts whose variables to check, for example C(ansible_play_hosts_all) with C(run_once). Empty checks the current host.
    type: list
    elements: str
    default: []
  ignore:
    description: Names of your own that start with these prefixes, never warned about.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - fleetid.subid.attributes.controller
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
    details: It changes nothing.
"""

EXAMPLES = r"""
- name: Warn about misspelt variables once for the whole play
  fleetid.subid.vars_check:
    hosts: "{{ ansible_play_hosts_all }}"
    ignore: "{{ subid_known_vars | default([]) }}"
  run_once: true
"""

RETURN = r"""
unknown:
  description: The names nothing reads, each with the hosts that have it and the nearest known name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The variable's name.
      type: str
    hosts:
      description: The hosts that have it.
      type: list
      elements: str
    nearest:
      description: The known name closest to it, V(null) when none is close.
      type: str
  sample: [{name: subid_owner, hosts: [web1, web2], nearest: subid_owners}]
"""
