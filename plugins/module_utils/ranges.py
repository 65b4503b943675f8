# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ranges of subordinate IDs: validation, merging, subtraction and overlap search.

Pure logic, shared by the controller-side allocator and the host modules. A range is
``start .. start+count-1``; internally intervals are half-open ``[start, end)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

# uid_t is 32 bits and (uid_t)-1 = 4294967295 means "no ID", so the last usable ID is
# 4294967294 and an exclusive end may be at most 4294967295.
ID_LIMIT = 4294967295
DEFAULT_FLOOR = 1000
DEFAULT_BLOCK_SIZE = 65536
# The fewest IDs an owner gets by default: a container then maps 0-65535, the 16-bit ID
# space images are built for (nobody is 65534). A pool may lower it on purpose.
DEFAULT_MIN_COUNT = 65536

# Names safe in /etc/subuid and in the ledger: no ':' or newline can ever be injected.
# Same shape as shadow's default NAME_REGEX plus numeric UIDs and a trailing '$'.
# The owner names this collection writes, to the ledger and to /etc/subuid and /etc/subgid:
# what useradd accepts (a machine account may end in '$'), and SSSD's fully qualified
# user@domain. Shadow reads any field without ':'; these are the names every consumer
# (newuidmap, getsubids, podman, the ledger) reads the same.
OWNER_NAME_RE = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?(?:@[A-Za-z0-9][A-Za-z0-9.-]{0,252})?\Z", re.ASCII)


class RangeError(FleetidError):
    """A range, pool or owner that is not acceptable; the message says which and why."""


class IdRange(collections.namedtuple("IdRange", "start count")):
    """``count`` IDs from ``start``."""

    __slots__ = ()

    @property
    def end(self):
        """Exclusive end."""
        return self.start + self.count

    @property
    def last(self):
        return self.start + self.count - 1

    def overlaps(self, other):
        return self.start < other.start + other.count and other.start < self.start + self.count

    def contains_id(self, some_id):
        return self.start <= some_id < self.start + self.count

    def __str__(self):
        return "%d-%d (%d IDs)" % (self.start, self.last, self.count)


def owner_name_problem(name, uid_ok=False):
    """Why ``name`` cannot be an owner (the rule the allocator, the ledger and the host
    module share); None when it can. ``uid_ok``: digits name a UID (to remove its lines)."""
    if not isinstance(name, str):
        return "it is not a name"
    if name.isascii() and name.isdigit():
        if uid_ok and len(name) <= 10:
            return None
        return ("it is all digits: shadow takes a numeric owner for a UID (0 is root), and several tools "
                "match owners by name only; give the account's name")
    if OWNER_NAME_RE.match(name):
        return None
    if not name.isascii():
        return "it holds characters that are not ASCII, which useradd refuses and subid consumers may read apart"
    if any(c.isspace() for c in name):
        return "it holds whitespace, which useradd refuses and subid consumers split on"
    return ("use 1-32 characters from letters, digits, '_', '.', '-' (optionally ending in '$'), not starting "
            "with '.' or '-', optionally followed by @domain (an SSSD fully qualified name)")


def check_owner_name(name, what="owner", uid_ok=False):
    """Return ``name`` if it is safe to write; raise RangeError otherwise."""
    problem = owner_name_problem(name, uid_ok)
    if problem:
        raise RangeError("%s name %r is not allowed: %s" % (what, name, problem))
    return name


def to_int(value, what):
    """An integer from an int or a string of digits; bool and others are refused."""
    if isinstance(value, bool):
        raise RangeError("%s must be an integer, got %r" % (what, value))
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    raise RangeError("%s must be an integer, got %r" % (what, value))


def make_range(start, count, what="range"):
    """A checked IdRange: count >= 1 and the whole range inside the 32-bit ID space."""
    start = to_int(start, "%s start" % what)
    count = to_int(count, "%s count" % what)
    if count < 1:
        raise RangeError("%s count must be at least 1, got %d" % (what, count))
    if start < 0 or start + count > ID_LIMIT:
        raise RangeError(
            "%s %d+%d leaves the 32-bit ID space (IDs 0-%d)" % (what, start, count, ID_LIMIT - 1)
        )
    return IdRange(start, count)


def merge(intervals):
    """Sorted, merged half-open ``(start, end)`` pairs from any iterable of pairs."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1][1] = end
        else:
            merged.append([start, end])
    return [tuple(pair) for pair in merged]


def subtract(intervals, holes):
    """``intervals`` minus ``holes``; both are (start, end) pairs, result sorted and merged."""
    result = []
    holes = merge(holes)
    h = 0
    for start, end in merge(intervals):
        while h < len(holes) and holes[h][1] <= start:
            h += 1
        i = h
        cur = start
        while i < len(holes) and holes[i][0] < end:
            if holes[i][0] > cur:
                result.append((cur, holes[i][0]))
            cur = max(cur, holes[i][1])
            i += 1
        if cur < end:
            result.append((cur, end))
    return result


def find_overlaps(items, key=lambda item: item):
    """Pairs of items whose ranges overlap.

    ``key(item)`` gives an IdRange. A sweep by start keeps the ranges still open at the
    sweep position, so without overlaps it is O(n log n).
    """
    pairs = []
    ordered = sorted(items, key=lambda item: (key(item).start, key(item).count))
    active = []  # items whose range is still open at the sweep position
    for item in ordered:
        rng = key(item)
        active = [other for other in active if key(other).end > rng.start]
        for other in active:
            pairs.append((other, item))
        active.append(item)
    return pairs
