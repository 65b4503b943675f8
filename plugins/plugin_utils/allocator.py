# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Allocation of subordinate ID blocks from a pool, recorded in the ledger.

Pure logic: ``plan()`` takes the ledger's blocks, the pool and one host's owner
requests and returns what changes, without touching any file. The rules:

- A block is sticky: once given it is never moved or shrunk.
- A larger request adds a further block for that owner; a smaller one changes nothing.
- Scope ``fleet`` gives an owner the same blocks on every host; scope ``host`` gives a
  block that belongs to one host.
- IDs below the floor, 0, reserved ranges and every block in the ledger (active or
  quarantined) are never handed out. New blocks start on a multiple of ``block_size``
  counted from the start of their pool range, first fit, new owners in sorted order.
- ``released`` moves an owner's blocks to quarantine; ``reclaimed`` deletes quarantined
  blocks so their IDs return to the pool. An owner listed as ``reactivated`` gets its
  quarantined blocks back (the files on disk in that range are its own). An owner merely
  still ``present`` after an offboarding is held: its quarantined blocks stay quarantined,
  nothing is allocated or written for it, and Plan.held says so, because a routine run
  must never undo an offboarding silently.
"""

from __future__ import annotations

import bisect
import collections

from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import (
    FLEET,
    Block,
    host_scope,
)
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_FLOOR,
    DEFAULT_MIN_COUNT,
    ID_LIMIT,
    IdRange,
    RangeError,
    find_overlaps,
    make_range,
    merge,
    owner_name_problem,
    subtract,
    to_int,
)
from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

OWNER_STATES = ("present", "reactivated", "released", "reclaimed")
# The states of an owner that is to have ranges: reactivated is present, with its
# quarantined blocks taken back into use.
PRESENT_STATES = ("present", "reactivated")
OWNER_SCOPES = ("fleet", "host")

# The kubelet reads its `kubelet` entry with getsubids and insists on exactly one range
# whose start and length are multiples of idsPerPod (65536 unless configured otherwise),
# starting at or above idsPerPod (it never maps 0), identical for subuid and subgid.
# Changing the range with pods on disk stops the kubelet from starting, so it never grows.
KUBELET = "kubelet"
KUBELET_IDS_PER_POD = 65536

# Podman and CRI-O --userns=auto (owner `containers`) and Docker --userns-remap (owner
# `dockremap`) give each container at least the 16-bit ID space, whose 65534 is `nobody`:
# a smaller entry makes every such container fail to start.
SERVICE_MIN_COUNT = {"containers": 65536, "dockremap": 65536}


class AllocationError(FleetidError):
    """The request cannot be met; nothing is to be written. The message says why."""


class Pool(collections.namedtuple("Pool", "ranges reserved block_size floor min_count", defaults=(DEFAULT_MIN_COUNT,))):
    """The pool as parse_pool checked it: ``ranges`` and ``reserved`` are sorted IdRanges."""

    __slots__ = ()

    def withheld(self):
        """The IDs the pool never hands out, as half-open ``(start, end)`` intervals: those
        below the floor (0 is root) and the reserved ranges. The one form of that rule."""
        return [(0, self.floor)] + [(r.start, r.end) for r in self.reserved]

    def refusals(self, rng, what=None):
        """Why ``rng`` (an IdRange) may not hold subordinate IDs of this pool: a message
        per withheld part it reaches into; none when it may."""
        what = what or str(rng)
        problems = ["%s reaches below the floor %d" % (what, self.floor)] if rng.start < self.floor else []
        problems.extend("%s overlaps the reserved range %s" % (what, res) for res in self.reserved
                        if rng.start < res.end and res.start < rng.end)
        return problems


Request = collections.namedtuple("Request", "name count scope state reactivate", defaults=(False,))


class Plan(
    collections.namedtuple("Plan", "blocks added reactivated released reclaimed entries held")
):
    """The outcome of ``plan()``.

    ``blocks`` is the whole ledger afterwards; ``added``/``reactivated``/``released``/
    ``reclaimed`` list the blocks each change touched; ``entries`` maps each present
    owner to its ranges, in request order. ``held``: (owner, scope, quarantined blocks)
    of the owners listed present whose blocks are quarantined, left so and given nothing.
    """

    __slots__ = ()

    @property
    def changed(self):
        return bool(self.added or self.reactivated or self.released or self.reclaimed)


def parse_pool(spec):
    """A checked Pool from the ``pool`` option (a dict)."""
    if not isinstance(spec, dict):
        raise RangeError("pool must be a mapping with 'ranges' (and optionally 'reserved', "
                         "'block_size', 'floor', 'min_count')")
    unknown = sorted(set(spec) - {"ranges", "reserved", "block_size", "floor", "min_count"})
    if unknown:
        raise RangeError("pool has unknown key(s): %s" % ", ".join(unknown))
    floor = to_int(spec.get("floor", DEFAULT_FLOOR), "pool floor")
    if floor < 1:
        raise RangeError("pool floor must be at least 1: ID 0 is root and is never handed out")
    block_size = to_int(spec.get("block_size", DEFAULT_BLOCK_SIZE), "pool block_size")
    if block_size < 1:
        raise RangeError("pool block_size must be at least 1")
    min_count = to_int(spec.get("min_count", DEFAULT_MIN_COUNT), "pool min_count")
    if min_count < 1:
        raise RangeError("pool min_count must be at least 1")
    if block_size < min_count:
        raise RangeError(
            "pool block_size %d is below min_count %d: an owner given %d IDs cannot map a container's 0-65535 "
            "(a file owned by nobody, 65534, fails). Raise block_size, or set min_count: %d in the pool if the "
            "owners really need fewer" % (block_size, min_count, block_size, block_size))

    def ranges_of(key, required):
        items = spec.get(key) or []
        if not isinstance(items, list) or (required and not items):
            raise RangeError("pool %s must be a non-empty list of {start, count}" % key
                             if required else "pool %s must be a list of {start, count}" % key)
        result = []
        for i, item in enumerate(items):
            what = "pool %s[%d]" % (key, i)
            if not isinstance(item, dict) or set(item) != {"start", "count"}:
                raise RangeError("%s must be a mapping with exactly start and count, got %r"
                                 % (what, item))
            result.append(make_range(item["start"], item["count"], what))
        return result

    ranges = ranges_of("ranges", True)
    reserved = ranges_of("reserved", False)
    for rng in ranges:
        if rng.start < floor:
            raise RangeError("pool range %s reaches below the floor %d (IDs below it belong to "
                             "the system)" % (rng, floor))
    overlapping = find_overlaps(ranges)
    if overlapping:
        raise RangeError("pool ranges overlap: %s and %s" % overlapping[0])
    return Pool(sorted(ranges), sorted(reserved), block_size, floor, min_count)


def parse_owners(owners, pool, refused=None):
    """Checked Requests from the ``owners`` option: names, or dicts.

    An owner whose name the collection cannot write (owner_name_problem: a directory's
    ``John Smith``, a name of digits) raises RangeError; given a list as ``refused``, it
    is added there as ``{name, reason}`` instead, and the other owners are served.
    """
    if not isinstance(owners, list):
        raise RangeError("owners must be a list of names or {name, count, scope, state}")
    requests = []
    seen = set()
    for item in owners:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise RangeError("each owner must be a name or a mapping with 'name', got %r" % (item,))
        unknown = sorted(set(item) - {"name", "count", "scope", "state", "may_be_absent"})
        if unknown:
            raise RangeError("owner %r has unknown key(s): %s" % (item["name"], ", ".join(unknown)))
        name = item["name"]
        problem = owner_name_problem(name)
        if problem and refused is not None:
            refused.append({"name": name, "reason": problem})
            continue
        if problem:
            raise RangeError("owner name %r is not allowed: %s" % (name, problem))
        count = item.get("count")
        count = pool.block_size if count is None else to_int(count, "count of owner %r" % name)
        if count < 1:
            raise RangeError("count of owner %r must be at least 1" % name)
        scope = item.get("scope") or "fleet"
        if scope not in OWNER_SCOPES:
            raise RangeError("scope of owner %r must be fleet or host, got %r" % (name, scope))
        state = item.get("state") or "present"
        if state not in OWNER_STATES:
            raise RangeError("state of owner %r must be one of %s, got %r"
                             % (name, ", ".join(OWNER_STATES), state))
        if name == KUBELET and (count % KUBELET_IDS_PER_POD or count < KUBELET_IDS_PER_POD):
            raise RangeError(
                "count of owner 'kubelet' must be a multiple of %d (the kubelet's idsPerPod), got %d; "
                "use idsPerPod x maxPods, e.g. 7208960 for 110 pods" % (KUBELET_IDS_PER_POD, count))
        if count < SERVICE_MIN_COUNT.get(name, 0):
            raise RangeError(
                "count of owner %r must be at least %d: %s gives each container the 16-bit ID space "
                "(0-65535, with nobody at 65534), got %d" % (
                    name, SERVICE_MIN_COUNT[name],
                    "Docker --userns-remap" if name == "dockremap" else "Podman/CRI-O --userns=auto", count))
        if count < pool.min_count and state in ("present", "reactivated"):
            raise RangeError(
                "count of owner %r is %d, below the pool's min_count %d: its containers could not map 0-65535 "
                "(a file owned by nobody, 65534, fails). Give it %d or more, or lower min_count in the pool if it "
                "really needs fewer" % (name, count, pool.min_count, pool.min_count))
        if (name, scope) in seen:
            raise RangeError("owner %r (scope %s) is listed twice" % (name, scope))
        if name == KUBELET and state == "present" and any(
                r.name == KUBELET and r.state == "present" for r in requests):
            raise RangeError(
                "owner 'kubelet' is listed with scope fleet and with scope host: each would write a line, and "
                "the kubelet refuses to start unless getsubids gives it exactly one range; list it once")
        seen.add((name, scope))
        requests.append(Request(name, count, scope, "present" if state == "reactivated" else state,
                                state == "reactivated"))
    return requests


class FreeSpace:
    """Free IDs of the pool as sorted intervals ``[start, end)``, each with the start of
    its pool range (the origin of alignment).

    ``taken``: the (start, end) of every block; or ``free``: the IDs no block holds, as
    sorted, disjoint (start, end) pairs (what a store finds without reading every block).
    """

    def __init__(self, pool, taken=(), free=None):
        self.block_size = pool.block_size
        holes = pool.withheld()
        if free is None:
            holes.extend(taken)
        self.starts = []
        self.intervals = []  # [start, end, origin]
        for rng in pool.ranges:
            pieces = subtract([(rng.start, rng.end)], holes)
            if free is not None:
                pieces = _intersect(pieces, free)
            for start, end in pieces:
                self.starts.append(start)
                self.intervals.append([start, end, rng.start])
        order = sorted(range(len(self.starts)), key=self.starts.__getitem__)
        self.starts = [self.starts[i] for i in order]
        self.intervals = [self.intervals[i] for i in order]
        # First-fit only ever moves up: remember where the last search for a size ended.
        self._hint = {}

    @staticmethod
    def _aligned(start, origin, step):
        offset = (start - origin) % step
        return start if offset == 0 else start + step - offset

    def take(self, count, absolute_step=None):
        """Start of the first aligned free run of ``count`` IDs (removed), or None.

        Blocks align to ``block_size`` from their pool range's start, or with
        ``absolute_step`` to multiples of it counted from ID 0.
        """
        key = (count, absolute_step)
        hint = self._hint.get(key, 0)
        i = bisect.bisect_left(self.starts, hint)
        if i and self.intervals[i - 1][1] > hint:
            i -= 1
        while i < len(self.intervals):
            start, end, origin = self.intervals[i]
            if absolute_step:
                candidate = self._aligned(start, 0, absolute_step)
            else:
                candidate = self._aligned(start, origin, self.block_size)
            if candidate + count <= end:
                self._hint[key] = candidate
                self._remove(i, candidate, candidate + count)
                return candidate
            i += 1
        self._hint[key] = ID_LIMIT
        return None

    def _remove(self, i, start, end):
        begin, finish, origin = self.intervals[i]
        pieces = [(s, e) for s, e in ((begin, start), (end, finish)) if e > s]
        self.intervals[i:i + 1] = [[s, e, origin] for s, e in pieces]
        self.starts[i:i + 1] = [piece[0] for piece in pieces]

    def largest_run(self):
        """The largest aligned free run as an IdRange, or None when nothing is free."""
        best = None
        for start, end, origin in self.intervals:
            candidate = self._aligned(start, origin, self.block_size)
            if candidate < end and (best is None or end - candidate > best.count):
                best = IdRange(candidate, end - candidate)
        return best


def _intersect(pieces, free):
    """The IDs in both lists of sorted, disjoint (start, end) pairs; ``pieces`` is short."""
    result = []
    for start, end in pieces:
        i = max(0, bisect.bisect_right(free, (start,)) - 1)
        while i < len(free) and free[i][0] < end:
            lo, hi = max(start, free[i][0]), min(end, free[i][1])
            if lo < hi:
                result.append((lo, hi))
            i += 1
    return result


def check_blocks_against_pool(blocks, pool):
    """Invariant 2 on the ledger as read: nothing below the floor or in a reserved range."""
    at_fault = set()
    for start, end in pool.withheld():  # one pass per interval: ledgers hold 50,000 blocks
        at_fault.update(i for i, b in enumerate(blocks) if b.start < end and start < b.start + b.count)
    problems = [problem for i in sorted(at_fault) for problem in pool.refusals(blocks[i].range, blocks[i].where())]
    if problems:
        raise AllocationError("ledger blocks conflict with the pool, nothing was written:\n  "
                              + "\n  ".join(problems))


def pool_admits(spans, pool):
    """Whether no block (given as a ledger.SpanIndex) is below the floor or reserved.

    The quick form of ``check_blocks_against_pool`` for a converged call; when it says
    no, the full check names the blocks at fault.
    """
    return not any(spans.touches(start, end) for start, end in pool.withheld())


def plan(blocks, pool, requests, host, today, known_only=False, free=None):
    """What the ledger becomes after serving ``requests`` for ``host``.

    ``blocks``: the ledger's current blocks; ``pool``: a Pool; ``requests``: Requests;
    ``today``: the date string recorded on new and released blocks. Fast when nothing
    changes: one pass over the blocks for the requested owners.

    ``known_only``: ``blocks`` holds only the requested owners' blocks, so return None as
    soon as new IDs are needed instead of placing them against those alone.

    ``free``: ``blocks`` holds only the requested owners' blocks (at least), and ``free``
    lists the IDs no block of the whole ledger holds, as sorted (start, end) pairs: new
    blocks are placed there, exactly where the whole ledger would place them. The Plan's
    ``blocks`` are then only those blocks afterwards, not the whole ledger.
    """
    check_blocks_against_pool(blocks, pool)
    names = {req.name for req in requests}
    by_key = collections.defaultdict(list)
    for b in blocks:
        if b.owner in names:
            by_key[b.owner, b.scope].append(b)

    replaced = {}  # id(block) -> its new version (reactivated or released)
    removed = set()  # id(block) of reclaimed blocks
    added, reactivated, released, reclaimed, held = [], [], [], [], []
    wanted = []  # (request, key, count still to allocate)

    for req in requests:
        key = (req.name, FLEET if req.scope == "fleet" else host_scope(host))
        mine = by_key.get(key, [])
        if req.state == "present":
            quarantined = [b for b in mine if b.state == "quarantined"]
            if quarantined and not req.reactivate:
                if not any(b.state == "active" for b in mine):
                    held.append((req.name, key[1], quarantined))  # offboarded: only "reactivated" undoes it
                    continue
                mine = [b for b in mine if b.state == "active"]  # the quarantined ones stay so
            for b in mine:
                if b.state == "quarantined":
                    new = b._replace(state="active", released=None)
                    replaced[id(b)] = new
                    reactivated.append(new)
            have = sum(b.count for b in mine)
            if req.name == KUBELET and mine and have < req.count:
                raise AllocationError(
                    "owner 'kubelet' (%s) already has %s; the kubelet accepts exactly one range and "
                    "fails to start if it changes while pods exist, so it is not grown to %d IDs"
                    % (key[1], ", ".join(str(b.range) for b in mine), req.count))
            wanted.append((req, key, max(0, req.count - have)))
        elif req.state == "released":
            for b in mine:
                if b.state == "active":
                    new = b._replace(state="quarantined", released=today)
                    replaced[id(b)] = new
                    released.append(new)
        else:  # reclaimed
            active = [b for b in mine if b.state == "active"]
            if active:
                raise AllocationError(
                    "owner %r (%s) still has active blocks (%s): release it before reclaiming"
                    % (req.name, key[1], ", ".join(str(b.range) for b in active)))
            for b in mine:
                removed.add(id(b))
                reclaimed.append(b)

    # New blocks, in sorted owner order so one call's result does not depend on the
    # order owners were listed in.
    pending = sorted((w for w in wanted if w[2] > 0), key=lambda w: (w[1], w[0].count))
    if pending and known_only:
        return None  # new IDs are needed: they can only be placed against the whole ledger
    new_by_key = collections.defaultdict(list)
    if pending:
        # Quarantined blocks stay taken; reclaimed ones are free again.
        if free is None:
            space = FreeSpace(pool, [(b.start, b.start + b.count) for b in blocks if id(b) not in removed])
        else:
            space = FreeSpace(pool, free=merge(list(free) + [(b.start, b.end) for b in reclaimed]))
        for req, key, need in pending:
            start = space.take(need, KUBELET_IDS_PER_POD if req.name == KUBELET else None)
            if start is None:
                largest = space.largest_run()
                raise AllocationError(
                    "pool exhausted: cannot allocate %d IDs for owner %r (scope %s); the largest "
                    "free run is %s, nothing was written"
                    % (need, req.name, key[1], largest if largest else "none (the pool is full)"))
            block = Block(req.name, key[1], start, need, "active", today, None, 0)
            added.append(block)
            new_by_key[key].append(block)

    if replaced or removed:
        result = [replaced.get(id(b), b) for b in blocks if id(b) not in removed]
    else:
        result = list(blocks)
    result.extend(added)

    # One owner may hold a fleet block and a host block: both go into its entries.
    entries = collections.OrderedDict()
    for req, key, dummy in wanted:
        mine = [b for b in (replaced.get(id(b), b) for b in by_key.get(key, [])) if b.state == "active"]
        mine += new_by_key.get(key, [])
        entries.setdefault(req.name, []).extend(IdRange(b.start, b.count) for b in mine)
    for ranges in entries.values():
        ranges.sort()
    return Plan(result, added, reactivated, released, reclaimed, entries, held)
