# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The pool blocks are carved from, shared by allocate, adopt and audit.
    DOCUMENTATION = r"""
options:
  pool:
    description:
      - Where blocks come from, usually C(subid_pool) from the inventory. Give every action the same pool.
    type: dict
    required: true
    suboptions:
      ranges:
        description:
          - The ranges to allocate from, each C({start, count}). They must not overlap or reach below O(pool.floor).
          - Keep them below 2^31. Some programs treat larger IDs as negative numbers.
          - Keep them away from UIDs and GIDs that any host or directory service uses.
        type: list
        elements: dict
        required: true
        suboptions:
          start:
            description: First ID of the range.
            type: int
            required: true
          count:
            description: Number of IDs in the range.
            type: int
            required: true
      reserved:
        description:
          - Ranges never to allocate from, each C({start, count}). Examples are directory-service
            ID ranges, FreeIPA ranges, and the systemd-nspawn container window.
          - Adding a reserved range that covers an existing block is an error that names the block.
        type: list
        elements: dict
        default: []
        suboptions:
          start:
            description: First ID of the reserved range.
            type: int
            required: true
          count:
            description: Number of IDs in the reserved range.
            type: int
            required: true
      block_size:
        description:
          - Default count for an owner that gives no C(count), and the alignment of every new block.
        type: int
        default: 65536
      min_count:
        description:
          - The fewest IDs an owner may be given. O(pool.block_size) and every present owner's C(count) must be at
            least this, or the run fails and names the owner.
          - With 65536, a container maps 0-65535, the 16-bit ID space images are built for (C(nobody) is 65534).
            Podman needs no more for a typical image. Lower it only for owners that really need fewer IDs. Their
            containers then cannot hold a file owned by an ID beyond the count.
        type: int
        default: 65536
      floor:
        description:
          - Lowest ID that may ever be allocated. It must be at least 1, because ID 0 is root.
          - IDs below 1000 belong to system accounts.
        type: int
        default: 1000
"""
