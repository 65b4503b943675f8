#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/ledger_copy.py, which does the work.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ledger_copy
short_description: Copy the subordinate ID ledger between a file and PostgreSQL
version_added: 0.1.0
description:
  - Imports a file ledger into PostgreSQL when a fleet moves to several controllers, and exports
    a PostgreSQL ledger to the canonical YAML file, for review in git.
  - Either side is a file path or a V(postgresql://) URI, as the O(fleetid.subid.allocate#module:ledger)
    option of M(fleetid.subid.allocate).
  - The destination must be empty or already hold exactly the same blocks (owner, scope, start,
    count, state and dates); then nothing changes, so copying again is safe. Anything else is
    refused with the disagreeing blocks named, and nothing is written. Merging two ledgers is a
    decision for a person.
  - The copy is one transaction on the destination, under its writers' lock.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  src:
    description: The ledger to read, a file path or a V(postgresql://) URI.
    type: str
    required: true
  dest:
    description:
      - The ledger to write, a file path or a V(postgresql://) URI.
      - A file destination is written in the canonical form, one block a line, sorted by start.
    type: str
    required: true
  replace:
    description:
      - Make a file destination mirror the source whatever it held, for an export that is
        reviewed in git (the git diff then shows what changed in the database).
      - Refused for a PostgreSQL destination.
    type: bool
    default: false
extends_documentation_fragment:
  - fleetid.subid.attributes.controller
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - fleetid.subid.ledger.lock
attributes:
  check_mode:
    support: full
    details: Reports whether the copy would change the destination, and writes nothing.
  diff_mode:
    support: partial
    details: Says how many blocks would be copied; a ledger can hold tens of thousands of blocks.
seealso:
  - module: fleetid.subid.allocate
  - module: fleetid.subid.ledger_info
"""

EXAMPLES = r"""
- name: Move the fleet's ledger from git into PostgreSQL
  fleetid.subid.ledger_copy:
    src: "{{ inventory_dir }}/../ledger/subid-ledger.yml"
    dest: postgresql://fleetid@db.example.com/subid
  run_once: true

- name: Export the PostgreSQL ledger for review in git
  fleetid.subid.ledger_copy:
    src: postgresql://fleetid@db.example.com/subid
    dest: "{{ inventory_dir }}/../ledger/subid-ledger.yml"
    replace: true
  run_once: true
"""

RETURN = r"""
src:
  description: The source ledger, a path or a URI without its password.
  returned: always
  type: str
  sample: /srv/fleet/ledger/subid-ledger.yml
dest:
  description: The destination ledger, a path or a URI without its password.
  returned: always
  type: str
  sample: postgresql://fleetid@db.example.com/subid
blocks:
  description: Number of blocks in the source ledger.
  returned: success
  type: int
  sample: 1200
"""
