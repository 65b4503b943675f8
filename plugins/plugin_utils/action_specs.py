# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the actions: one source per option, documented once in the
doc fragments fleetid.subid.ledger and fleetid.subid.pool (tests/unit/test_action_docs.py
holds the two together)."""

from __future__ import annotations

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import DEFAULT_BLOCK_SIZE, DEFAULT_FLOOR, DEFAULT_MIN_COUNT

_RANGE = {
    "start": {"type": "int", "required": True},
    "count": {"type": "int", "required": True},
}

LEDGER = {"type": "str", "required": True}

LOCK_TIMEOUT = {"type": "float", "default": 60.0}

POOL = {
    "type": "dict",
    "required": True,
    "options": {
        "ranges": {"type": "list", "elements": "dict", "required": True, "options": _RANGE},
        "reserved": {"type": "list", "elements": "dict", "default": [], "options": _RANGE},
        "block_size": {"type": "int", "default": DEFAULT_BLOCK_SIZE},
        "floor": {"type": "int", "default": DEFAULT_FLOOR},
        "min_count": {"type": "int", "default": DEFAULT_MIN_COUNT},
    },
}
