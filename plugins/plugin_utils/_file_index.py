# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file store's index of a ledger file: where each block of a validated canonical
ledger text is, lookups by owner, and splicing a change into that text (private to the
file store)."""

from __future__ import annotations

import array
import bisect
import itertools
import sys

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import ID_LIMIT
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import (
    _CANONICAL_LINES,
    _CANONICAL_LINES_BYTES,
    FORMAT_VERSION,
    HEADER,
    Block,
    LedgerError,
    SpanIndex,
    _by_start,
    render_block,
    validate,
)


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
