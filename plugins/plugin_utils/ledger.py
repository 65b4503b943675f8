# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger: every subordinate ID block handed out from the pool, as YAML text.

One block a line, sorted by start, so a git diff of the ledger reads as "who got what":

    version: 1
    blocks:
    - {owner: "alice", scope: "fleet", start: 100000, count: 65536, state: active, allocated: 2026-11-24}

A block applies to both /etc/subuid and /etc/subgid. ``scope`` is ``fleet`` (the same
block on every host) or ``host:NAME`` (a block for one host only). ``state`` is
``active`` or ``quarantined`` (released: its IDs may still own files on disk, so it is
never handed to anyone else until it is explicitly reclaimed).

Loading is strict: a hand edit that breaks the syntax, repeats a key, writes a number in
anything but ASCII digits or makes blocks overlap is refused with the offending lines
named. Only an absent file means "no blocks yet": a file without ``version`` (empty, blank
or only comments) is refused, or the next run would hand out the pool's first IDs again. Lines in the canonical form above are read by a fast
line parser; anything else falls back to a full YAML parse.
"""

from __future__ import annotations

import array
import bisect
import collections
import itertools
import re
import sys

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import (
    ID_LIMIT,
    IdRange,
    RangeError,
    check_owner_name,
)

FORMAT_VERSION = 1
STATES = ("active", "quarantined")
FLEET = "fleet"
HOST_PREFIX = "host:"
HOST_NAME_RE = re.compile(r"\A[A-Za-z0-9_.:@\[\]-]{1,253}\Z")
# re.ASCII: numbers and dates are ASCII digits only (\d and int() accept any Unicode digit).
DATE_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z", re.ASCII)
DIGITS_RE = re.compile(r"\A\d+\Z", re.ASCII)

HEADER = (
    "# fleetid.subid ledger: subordinate ID blocks handed out from the pool.\n"
    "# Written by fleetid.subid.allocate: one block a line, sorted by start. A block is used\n"
    "# for both /etc/subuid and /etc/subgid. Quarantined blocks are released but never\n"
    "# reused until reclaimed: their IDs may still own files on disk.\n"
)

_CANONICAL_LINES = re.compile(
    r'^- \{owner: "([^"\\\n]*)", scope: "([^"\\\n]*)", start: (\d+), count: (\d+), '
    r"state: (active|quarantined), allocated: (\d{4}-\d\d-\d\d)"
    r"(?:, released: (\d{4}-\d\d-\d\d))?\}$",
    re.MULTILINE | re.ASCII,
)
# The same, for the file store's reads through its index, which work on the bytes read.
_CANONICAL_LINES_BYTES = re.compile(_CANONICAL_LINES.pattern.encode("ascii"), re.MULTILINE)


class LedgerError(ValueError):
    """The ledger text is unusable; the message names the lines at fault."""


class Block(
    collections.namedtuple("Block", "owner scope start count state allocated released line")
):
    """One ledger record. ``line`` is where it was read (0 for new blocks)."""

    __slots__ = ()

    @property
    def range(self):
        return IdRange(self.start, self.count)

    @property
    def end(self):
        return self.start + self.count

    @property
    def key(self):
        return (self.owner, self.scope)

    def place(self):
        """Where the block was read: its line, or what it is when it has none."""
        if self.line is None:  # read from a store without lines (PostgreSQL)
            return "block"
        return "line %d" % self.line if self.line else "new block"

    def where(self):
        """How to name this block in a message."""
        return "%s: %s (%s) %s" % (self.place(), self.owner, self.scope, self.range)


class Snapshot(collections.namedtuple("Snapshot", "blocks token")):
    """All blocks of the ledger (validated, sorted by start) and the token they were read at."""

    __slots__ = ()


class View(collections.namedtuple("View", "blocks free token index")):
    """Part of the ledger, read without reading every block: all blocks of some owners
    (validated, sorted by start), the IDs no block holds as sorted (start, end) pairs (or
    None when not asked for), the token they were read at, and the store's own handle
    for writing into it (the file store: the text's LedgerIndex)."""

    __slots__ = ()


class Change(collections.namedtuple("Change", "added updated removed")):
    """What a commit does: blocks to add, blocks whose state changed (same start and
    count, new state/dates), blocks to delete."""

    __slots__ = ()

    def __bool__(self):
        return bool(self.added or self.updated or self.removed)


def host_scope(host):
    if not isinstance(host, str) or not HOST_NAME_RE.match(host):
        raise RangeError("host name %r cannot be used as a ledger scope" % (host,))
    return HOST_PREFIX + host


def check_scope(scope):
    if scope == FLEET:
        return scope
    if isinstance(scope, str) and scope.startswith(HOST_PREFIX):
        host_scope(scope[len(HOST_PREFIX):])
        return scope
    raise RangeError("scope must be 'fleet' or 'host:NAME', got %r" % (scope,))


def render_block(block):
    line = '- {owner: "%s", scope: "%s", start: %d, count: %d, state: %s, allocated: %s' % (
        block.owner,
        block.scope,
        block.start,
        block.count,
        block.state,
        block.allocated,
    )
    if block.released:
        line += ", released: %s" % block.released
    return line + "}"


def render(blocks):
    """The canonical ledger text for ``blocks``."""
    ordered = sorted(blocks, key=_by_start)
    if not ordered:
        return HEADER + "version: %d\nblocks: []\n" % FORMAT_VERSION
    lines = [HEADER + "version: %d\nblocks:" % FORMAT_VERSION]
    lines.extend(render_block(b) for b in ordered)
    return "\n".join(lines) + "\n"


def parse(text, source="ledger"):
    """Blocks from ledger text, validated (syntax, fields, no overlaps), sorted by start.

    ``None`` (no ledger file) is an empty ledger; an empty text is refused.
    """
    return load(text, source)[0]


def load(text, source="ledger"):
    """``(blocks, canonical)``: the validated blocks, and whether the text is in the form
    ``render`` writes, one line a block sorted by start (then a ``LedgerIndex`` can read
    and edit it without a full parse).
    ``text`` None means the ledger file does not exist: no blocks yet."""
    if text is None:
        return [], False
    blocks = _parse_canonical(text)
    canonical = blocks is not None
    if not canonical:
        blocks = _parse_yaml(text, source)
    ordered = validate(blocks, source)
    # Indexed reads and spliced writes need block i on line first + i: a text whose
    # canonical lines are not sorted by start is read in full until it is rewritten.
    if canonical and any(a is not b for a, b in zip(blocks, ordered)):
        canonical = False
    return ordered, canonical


def _parse_canonical(text):
    """Fast path for text in the exact form ``render`` writes; None if it is not.

    One regex pass over all block lines (a ledger may hold 50,000 of them); the text is
    canonical only if every line after ``blocks:`` is a block line.
    """
    head, sep, body = text.partition("\nblocks:\n")
    if not sep:
        head, sep, body = text.partition("\nblocks: []")
        if not sep or body.strip():
            return None
    head_lines = head.split("\n")
    if [line for line in head_lines if line and not line.startswith("#")] != ["version: %d" % FORMAT_VERSION]:
        return None
    found = _CANONICAL_LINES.findall(body)
    if len(found) != body.count("\n") or (body and not body.endswith("\n")):
        return None
    first = len(head_lines) + 2
    return [
        Block(owner, scope, int(start), int(count), state, allocated, released or None, first + i)
        for i, (owner, scope, start, count, state, allocated, released) in enumerate(found)
    ]


def _parse_yaml(text, source):
    """Slow path: any YAML with the ledger's shape, with line numbers kept."""
    import yaml  # only needed for hand-edited, non-canonical ledgers

    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise LedgerError("%s is not valid YAML%s: %s" % (source, where, problem))
    if root is None or (isinstance(root, yaml.ScalarNode) and root.value == ""):
        raise LedgerError(
            "%s line 1: the file holds no ledger (no 'version: %d'); only an absent ledger file "
            "means no blocks yet. Restore the ledger (e.g. from git) or remove the file"
            % (source, FORMAT_VERSION))

    def fail(node, message):
        raise LedgerError("%s line %d: %s" % (source, node.start_mark.line + 1, message))

    def values(mapping):
        """Key name -> value node. A repeated key is refused: YAML would silently keep
        only the last, dropping e.g. every block under a first 'blocks:'."""
        seen = {}
        for key_node, value_node in mapping.value:
            if not isinstance(key_node, yaml.ScalarNode):
                fail(key_node, "a key must be a plain name")
            if key_node.value in seen:
                fail(key_node, "duplicate key %r (first at line %d)"
                     % (key_node.value, seen[key_node.value].start_mark.line + 1))
            seen[key_node.value] = key_node
        return {key_node.value: value_node for key_node, value_node in mapping.value}

    if not isinstance(root, yaml.MappingNode):
        fail(root, "the ledger must be a mapping with 'version' and 'blocks'")
    top = values(root)
    unknown = sorted(set(top) - {"version", "blocks"})
    if unknown:
        fail(root, "unknown top-level key(s): %s" % ", ".join(unknown))
    if "version" not in top or top["version"].value != str(FORMAT_VERSION):
        fail(root, "'version: %d' is required (this collection reads ledger format %d)"
             % (FORMAT_VERSION, FORMAT_VERSION))
    blocks_node = top.get("blocks")
    if blocks_node is None or not isinstance(blocks_node, yaml.SequenceNode):
        fail(blocks_node or root, "'blocks' must be a list")

    blocks = []
    for item in blocks_node.value:
        if not isinstance(item, yaml.MappingNode):
            fail(item, "each block must be a mapping")
        fields = values(item)
        for key, value_node in fields.items():
            if not isinstance(value_node, yaml.ScalarNode):
                fail(value_node, "%s must be a single value" % key)
            fields[key] = value_node.value
        blocks.append(_block_from_fields(fields, item.start_mark.line + 1, source))
    return blocks


def _block_from_fields(fields, line, source):
    def bad(message):
        raise LedgerError("%s line %d: %s" % (source, line, message))

    required = ("owner", "scope", "start", "count", "state", "allocated")
    missing = [k for k in required if k not in fields]
    if missing:
        bad("block is missing %s" % ", ".join(missing))
    unknown = sorted(set(fields) - set(required) - {"released"})
    if unknown:
        bad("unknown field(s) %s" % ", ".join(unknown))
    for number_field in ("start", "count"):
        if not DIGITS_RE.match(fields[number_field]):
            bad("%s must be a whole number, got %r" % (number_field, fields[number_field]))
    return Block(
        fields["owner"],
        fields["scope"],
        int(fields["start"]),
        int(fields["count"]),
        fields["state"],
        fields["allocated"],
        fields.get("released") or None,
        line,
    )


def validate(blocks, source="ledger"):
    """Refuse bad fields and overlapping blocks, naming every line at fault.

    Returns the blocks sorted by start. Written for speed: it runs on every read of a
    ledger that may hold 50,000 blocks.
    """
    problems = []
    good_names = set()
    good_scopes = {FLEET}
    for b in blocks:
        if b.owner not in good_names:
            try:
                good_names.add(check_owner_name(b.owner))
            except RangeError as exc:
                problems.append("%s: %s" % (_at(b), exc))
        if b.scope not in good_scopes:
            try:
                good_scopes.add(check_scope(b.scope))
            except RangeError as exc:
                problems.append("%s: %s" % (_at(b), exc))
        if b.count < 1:
            problems.append("%s: count must be at least 1" % _at(b))
        if b.start < 1 or b.start + b.count > ID_LIMIT:
            problems.append("%s: %s leaves the ID space 1-%d" % (_at(b), b.range, ID_LIMIT - 1))
        if b.state not in STATES:
            problems.append("%s: state must be active or quarantined, got %r" % (_at(b), b.state))
        if not DATE_RE.match(str(b.allocated)):
            problems.append("%s: allocated must be a date YYYY-MM-DD" % _at(b))
        if b.released is not None and not DATE_RE.match(str(b.released)):
            problems.append("%s: released must be a date YYYY-MM-DD" % _at(b))
        if b.state == "quarantined" and not b.released:
            problems.append("%s: a quarantined block needs its released date" % _at(b))

    ordered = sorted(blocks, key=_by_start)
    reach = None  # the block reaching furthest among those before the current one
    for b in ordered:
        if reach is not None and b.start < reach.start + reach.count:
            problems.append("blocks overlap: %s and %s" % (reach.where(), b.where()))
        if reach is None or b.start + b.count > reach.start + reach.count:
            reach = b
    if problems:
        raise LedgerError("%s refused, nothing was written:\n  %s" % (source, "\n  ".join(problems)))
    return ordered


def _at(block):
    """A block's line, or the whole block where it has no line (a database row)."""
    return block.where() if block.line is None else block.place()


def _by_start(block):
    return (block.start, block.count)


class SpanIndex(collections.namedtuple("SpanIndex", "starts ends")):
    """Starts and exclusive ends of all blocks of a valid ledger, in order.

    Valid blocks never overlap, so sorted by start they are sorted by end too, and
    "does any block touch this range" is two binary searches.
    """

    __slots__ = ()

    def touches(self, start, end):
        """Whether any block has an ID in ``[start, end)``."""
        i = bisect.bisect_right(self.ends, start)
        return i < len(self.starts) and self.starts[i] < end


# Where an owner's name sits in a canonical block line: '- {owner: "NAME", ...'.
_OWNER_AT = len('- {owner: "')
_BLOCKS_AT = "\nblocks:\n"


def _numbers(values=()):
    return array.array("Q", values)


class LedgerIndex:
    """Where every block of one validated canonical ledger text is.

    A converged host asks for a few owners of a ledger that may hold 200,000 blocks; a
    scan of the text per owner costs seconds there. The index answers with binary
    searches: ``spans`` (starts and ends in order: block ``i`` is on line
    ``first_line + i``), ``offsets`` (where each block's line begins in the text) and
    ``by_owner`` (the blocks' positions ordered by owner, then start; a splice renumbers
    them). It belongs to exactly one text, read as
    bytes (``data``): the file store keeps it with a copy of that text. Only ASCII texts
    are indexed, so a character's offset is its byte's. Every line read through it is
    also checked against it (owner, start and end), so an index that does not fit its
    text is noticed on a lookup, and a splice reads the lines around each new block back.
    """

    __slots__ = ("spans", "offsets", "by_owner", "first_line", "_slots")

    def __init__(self, spans, offsets, by_owner, first_line):
        self.spans = spans
        self.offsets = offsets
        self.by_owner = by_owner
        self.first_line = first_line
        self._slots = {}  # owner -> where its first block is (or would go) in by_owner

    @classmethod
    def build(cls, text, blocks):
        """The index of ``text`` (ASCII), whose validated blocks are ``blocks``, sorted by
        start (``load`` said the text is canonical: block ``i`` is on the ``i``-th block line)."""
        if not blocks:
            return cls(SpanIndex(_numbers(), _numbers()), _numbers(), _numbers(), 0)
        body = text.index(_BLOCKS_AT) + len(_BLOCKS_AT)
        first_line = text.count("\n", 0, body) + 1
        lengths = map(len, text[body:].split("\n")[:len(blocks)])
        offsets = _numbers(itertools.accumulate(itertools.chain((body,), (n + 1 for n in lengths))))
        del offsets[-1]
        owners = [b.owner for b in blocks]
        by_owner = sorted(range(len(blocks)), key=owners.__getitem__)  # stable: ties stay by start
        return cls(SpanIndex(_numbers(b.start for b in blocks), _numbers(b.start + b.count for b in blocks)),
                   offsets, _numbers(by_owner), first_line)

    # Stored form: a count, the first line, then four arrays of little-endian uint64.

    def to_bytes(self):
        numbers = _numbers((len(self.offsets), self.first_line))
        for part in (self.spans.starts, self.spans.ends, self.offsets, self.by_owner):
            numbers.extend(part)
        if sys.byteorder != "little":
            numbers.byteswap()
        return numbers.tobytes()

    @classmethod
    def from_bytes(cls, data):
        """The index stored by ``to_bytes`` (bytes or a memoryview); None if ``data`` is not one."""
        size = _numbers().itemsize
        if len(data) % size or len(data) < 2 * size:
            return None
        head = _numbers()
        head.frombytes(data[:2 * size])
        if sys.byteorder != "little":
            head.byteswap()
        n = head[0]
        if len(data) != (2 + 4 * n) * size:
            return None
        part = []
        for k in range(4):
            numbers = _numbers()
            numbers.frombytes(data[(2 + k * n) * size:(2 + (k + 1) * n) * size])
            if sys.byteorder != "little":
                numbers.byteswap()
            part.append(numbers)
        return cls(SpanIndex(part[0], part[1]), part[2], part[3], head[1])

    def __len__(self):
        return len(self.offsets)

    def _line_end(self, data, i):
        return self.offsets[i + 1] - 1 if i + 1 < len(self.offsets) else len(data) - 1

    def block(self, data, i):
        """Block ``i`` read from its line; None if the line is not what the index says."""
        start = self.offsets[i]
        m = _CANONICAL_LINES_BYTES.match(data, start, self._line_end(data, i))
        if m is None:
            return None
        owner, scope, first, count, state, allocated, released = (
            None if field is None else field.decode("ascii") for field in m.groups())
        block = Block(owner, scope, int(first), int(count), state, allocated, released, self.first_line + i)
        if block.start != self.spans.starts[i] or block.start + block.count != self.spans.ends[i]:
            return None
        return block

    def position(self, start):
        """The number of the block starting at ``start``, or None."""
        i = bisect.bisect_left(self.spans.starts, start)
        return i if i < len(self.offsets) and self.spans.starts[i] == start else None

    def _owner_of(self, data, i):
        """The owner of block ``i``, as bytes."""
        at = self.offsets[i] + _OWNER_AT
        return data[at:data.index(b'"', at)]

    def _owner_slot(self, data, owner, start=0, lo=0):
        """Where ``(owner, start)`` belongs in ``by_owner``, at ``lo`` or after (a
        binary search); ``owner`` as bytes."""
        by_owner = self.by_owner
        hi = len(by_owner)
        while lo < hi:
            mid = (lo + hi) // 2
            here = self._owner_of(data, by_owner[mid])
            if here < owner or (here == owner and self.spans.starts[by_owner[mid]] < start):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _new_owner_slot(self, data, owner):
        """The slot of an owner looked up before that has no block here, else None."""
        k = self._slots.get(owner)
        if k is None or (k < len(self.by_owner)
                         and self._owner_of(data, self.by_owner[k]) == owner.encode("ascii")):
            return None
        return k

    def owner_blocks(self, data, names):
        """The blocks of ``names``, sorted by start; None if the index does not fit ``data``."""
        found = []
        try:
            k = 0
            # In name order, each search starts where the last one ended.
            for name in sorted(names):
                k = self._slots[name] = self._owner_slot(data, name.encode("ascii"), lo=k)
                while k < len(self.by_owner):
                    block = self.block(data, self.by_owner[k])
                    if block is None:
                        return None
                    if block.owner != name:
                        break
                    found.append(block)
                    k += 1
        except (ValueError, IndexError, UnicodeError):
            return None
        found.sort(key=_by_start)
        return found

    def free(self):
        """The IDs no block holds, as sorted ``(start, end)`` pairs within 0 to ID_LIMIT."""
        starts, ends = self.spans
        if not starts:
            return [(0, ID_LIMIT)]
        gaps = [(ends[i], starts[i + 1]) for i in _differ(memoryview(ends)[:-1], memoryview(starts)[1:])]
        if starts[0] > 0:
            gaps.insert(0, (0, starts[0]))
        if ends[-1] < ID_LIMIT:
            gaps.append((ends[-1], ID_LIMIT))
        return gaps

    def splice(self, data, change):
        """``(new data, its index)``: ``data`` (the text this index belongs to, as bytes)
        after ``change``, without parsing, validating or rendering the untouched lines.

        The new text is valid because the old one was and each edit is checked here:
        new and changed blocks pass ``validate`` on their own and render to canonical
        lines, new ones touch no block that stays, and every changed or removed line is
        first read back and must be the block the change names. None when ``data`` does
        not begin exactly as ``render`` writes it (or holds no block): then the caller
        renders the whole ledger, as it always did.
        """
        if not len(self) or not data.startswith(_PREFIX_BYTES) or self.offsets[0] != len(_PREFIX_BYTES):
            return None
        starts, ends = self.spans
        validate(list(change.added) + list(change.updated), "the ledger's new lines")
        edits = []  # (position, order, kind, block): inserts before the block at a position
        gone = set()
        for kind, blocks in (("replace", change.updated), ("remove", change.removed)):
            for b in blocks:
                i = self.position(b.start)
                old = None if i is None else self.block(data, i)
                if old is None or (old.owner, old.scope, old.start, old.count) != (b.owner, b.scope, b.start, b.count):
                    raise LedgerError("the ledger has no line for %s to change: its index is stale; nothing "
                                      "was written" % b.where())
                if kind == "remove":
                    gone.add(i)
                edits.append((i, 1, kind, b))
        for b in change.added:
            i = bisect.bisect_right(ends, b.start)
            # The lines around the new one are read back: the text itself, not only the
            # index, then shows that the new block lies between them.
            if any(self.block(data, k) is None for k in (i - 1, i) if 0 <= k < len(starts)):
                raise LedgerError("the ledger's lines around %s are not where its index says; nothing was "
                                  "written" % b.where())
            j = i
            while j < len(starts) and starts[j] < b.start + b.count:
                if j not in gone:
                    other = self.block(data, j)
                    raise LedgerError("%s overlaps %s; nothing was written"
                                      % (b.where(), other.where() if other else "the block at line %d"
                                         % (self.first_line + j)))
                j += 1
            edits.append((bisect.bisect_left(starts, b.start), 0, "insert", b))
        edits.sort(key=lambda e: (e[0], e[1], e[3].start))

        pieces, new_starts, new_ends, new_offsets = [_PREFIX_BYTES], _numbers(), _numbers(), _numbers()
        size = len(_PREFIX_BYTES)  # of the new text so far
        done = 0  # old blocks before this one are copied, edited or removed
        renumber = _numbers()  # old position -> new position (_GONE: removed)
        inserted = []  # (block, its position in the new text)
        for i, dummy, kind, b in edits + [(len(starts), 2, "end", None)]:
            if i > done:  # untouched lines: one slice, their offsets moved by what went before
                renumber.extend(range(len(new_starts), len(new_starts) + i - done))
                chunk = data[self.offsets[done]:self._line_end(data, i - 1) + 1]
                shift = size - self.offsets[done]
                offsets = self.offsets[done:i]
                new_offsets.extend(offsets if not shift else (o + shift for o in offsets))
                new_starts.extend(starts[done:i])
                new_ends.extend(ends[done:i])
                pieces.append(chunk)
                size += len(chunk)
                done = i
            if kind in ("remove", "replace"):
                renumber.append(_GONE if kind == "remove" else len(new_starts))
                done = i + 1
            elif kind == "insert":
                inserted.append((b, len(new_starts)))
            if kind in ("insert", "replace"):
                line = render_block(b)
                if not _CANONICAL_LINES.fullmatch(line):
                    raise LedgerError("%s cannot be written as a ledger line; nothing was written" % b.where())
                new_offsets.append(size)
                new_starts.append(b.start)
                new_ends.append(b.start + b.count)
                pieces.append(line.encode("ascii") + b"\n")
                size += len(line) + 1
        new_data = b"".join(pieces)

        by_owner = _numbers(map(renumber.__getitem__, self.by_owner))
        if gone:
            by_owner = _numbers(p for p in by_owner if p != _GONE)
        index = LedgerIndex(SpanIndex(new_starts, new_ends), new_offsets, by_owner, self.first_line)
        if inserted:
            # New blocks go where their owner sorts: found in the new text, merged in one
            # pass. An owner without blocks goes where the view's lookup found it would.
            slots = []
            for b, position in inserted:
                slot = None if gone else self._new_owner_slot(data, b.owner)
                if slot is None:
                    slot = index._owner_slot(new_data, b.owner.encode("ascii"), b.start)
                slots.append((slot, b.owner, b.start, position))
            slots.sort()
            merged, done = _numbers(), 0
            for slot, dummy, start, position in slots:
                merged.extend(by_owner[done:slot])
                merged.append(position)
                done = slot
            merged.extend(by_owner[done:])
            index.by_owner = merged
        return new_data, index


def apply_change(blocks, change):
    """``blocks`` after ``change`` (blocks are named by their start), sorted by start."""
    changed = {b.start: b for b in change.updated}
    removed = {b.start for b in change.removed}
    after = [changed.get(b.start, b) for b in blocks if b.start not in removed]
    return sorted(after + list(change.added), key=_by_start)


def _differ(a, b):
    """The positions where two equally long sequences of numbers differ.

    A ledger filled first fit has few gaps between its blocks: halving the range while
    the halves differ finds them with comparisons of whole slices (memcmp for memoryviews),
    not one Python step per block."""
    found = []
    pending = [(0, len(a))]
    while pending:
        lo, hi = pending.pop()
        if a[lo:hi] == b[lo:hi]:
            continue
        if hi - lo <= 32:
            found.extend(i for i in range(lo, hi) if a[i] != b[i])
        else:
            mid = (lo + hi) // 2
            pending += [(mid, hi), (lo, mid)]
    return found


# A removed block's new position while a splice renumbers the blocks.
_GONE = 2 ** 64 - 1

_PREFIX_BYTES = (HEADER + "version: %d\nblocks:\n" % FORMAT_VERSION).encode("ascii")
