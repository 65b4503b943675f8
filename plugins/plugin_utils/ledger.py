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

import bisect
import collections
import datetime
import hashlib
import re

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import (
    ID_LIMIT,
    IdRange,
    RangeError,
    check_owner_name,
)
from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError

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
    "# Its last line seals it: a copy cut short or changed by hand is refused until that line\n"
    "# reads '# end: accept my edit' (the next write seals it again).\n"
)
# Truncation keeps a file's beginning: a file whose header carries this mark must end
# with its seal. Ledgers written before seals (or by hand, without the header) have none.
_SEAL_MARK = b"\n# Its last line seals it: "
_SEAL_RE = re.compile(rb"# end: ([0-9]+) blocks, sha256 ([0-9a-f]{64})\n\Z")
ACCEPT_EDIT = b"# end: accept my edit\n"

_CANONICAL_LINES = re.compile(
    r'^- \{owner: "([^"\\\n]*)", scope: "([^"\\\n]*)", start: (\d+), count: (\d+), '
    r"state: (active|quarantined), allocated: (\d{4}-\d\d-\d\d)"
    r"(?:, released: (\d{4}-\d\d-\d\d))?\}$",
    re.MULTILINE | re.ASCII,
)
# The same, for the file store's reads through its index, which work on the bytes read.
_CANONICAL_LINES_BYTES = re.compile(_CANONICAL_LINES.pattern.encode("ascii"), re.MULTILINE)


class LedgerError(FleetidError):
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


def _asks_for_seal(data):
    """Whether the header of the ledger bytes ``data`` (before ``version:``) carries the seal mark."""
    return _SEAL_MARK in data[:data.find(b"\nversion:") + 1]


def seal(body):
    """The file bytes for the ledger bytes ``body``: with its seal line (the number of
    block lines and the SHA-256 of everything before it) if its header asks for one."""
    if not _asks_for_seal(body):
        return body
    return body + b"# end: %d blocks, sha256 %s\n" % (body.count(b"\n- {"), hashlib.sha256(body).hexdigest().encode())


def unseal(data, source="ledger"):
    """The ledger bytes of the file bytes ``data`` (None stays None), its seal checked
    and taken off; LedgerError when a file that should end with its seal does not."""
    if data is None or not _asks_for_seal(data):
        return data
    cut = data.rfind(b"\n", 0, len(data) - 1) + 1
    body, last = data[:cut], data[cut:]
    if last == ACCEPT_EDIT:  # a person vouches for a hand edit: validated as any text is
        return body
    found = _SEAL_RE.match(last)
    blocks = body.count(b"\n- {")
    problem = None
    if not found:
        problem = "its last line is not its seal, so it was cut short (%d block lines remain) or edited by hand" % (
            data.count(b"\n- {"))
    elif int(found.group(1)) != blocks:
        problem = "its seal counts %s blocks and %d are left, so it was cut short or edited by hand" % (
            found.group(1).decode(), blocks)
    elif hashlib.sha256(body).hexdigest() != found.group(2).decode():
        problem = "its content does not match its seal, so it was edited by hand or damaged"
    if problem:
        raise LedgerError(
            "%s refused, nothing was read or written: %s. Restore it (from git, or an export); if you changed it "
            "on purpose, make its last line '# end: accept my edit' and run again, and the next write seals it"
            % (source, problem))
    return body


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


_PROBLEMS_SHOWN = 50


def _is_date(value):
    """Whether ``value`` is a day of the calendar written YYYY-MM-DD (2026-13-45 is not)."""
    if not DATE_RE.match(str(value)):
        return False
    try:
        datetime.date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


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
        if not _is_date(b.allocated):
            problems.append("%s: allocated must be a date YYYY-MM-DD, not %r" % (_at(b), b.allocated))
        if b.released is not None and not _is_date(b.released):
            problems.append("%s: released must be a date YYYY-MM-DD, not %r" % (_at(b), b.released))
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
        shown = problems[:_PROBLEMS_SHOWN]
        if len(problems) > _PROBLEMS_SHOWN:  # a message, not a copy of the ledger
            shown.append("and %d more problems" % (len(problems) - _PROBLEMS_SHOWN))
        raise LedgerError("%s refused, nothing was written:\n  %s" % (source, "\n  ".join(shown)))
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
