# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""/etc/subuid and /etc/subgid as text: lossless parsing, edits, checks and findings.

Pure logic. A file is kept as its raw lines (line endings included), so every line we
do not change is written back byte for byte: comments, blank lines and lines shadow
would not parse stay exactly where they were.

Lines are split on ``\\n`` only, as shadow's fgets() does (never on the other characters
``str.splitlines`` treats as line breaks), and numbers are read the way shadow reads
them (``strtoul(s, &end, 0)``: leading blanks, ``+``, ``0x`` hex and ``0`` octal), so a
line such as ``bob:0100000:65536`` is bob's range 32768-98303 to us exactly as it is to
newuidmap.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import bisect
import collections
import functools
import hashlib
import itertools
import json
import operator
import os
import re

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import (
    ID_LIMIT,
    IdRange,
    RangeError,
    check_owner_name,
    make_range,
)

# The canonical form we write and most files hold: owner:start:count in plain decimal.
# At most 18 digits: below 2**64, so strtoul never fails with ERANGE on these numbers.
_CANONICAL = re.compile(r"\A([^:#\s+-][^:\s]*):(0|[1-9][0-9]{0,17}):([1-9][0-9]{0,17})\Z")
_PLAIN_DECIMAL = re.compile(r"\A(0|[1-9][0-9]*)\Z")
_C_SPACE = " \t\n\v\f\r"
_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdefABCDEF")}
_DECIMAL_NOTE = "is not plain decimal"
# subordinate_parse() refuses lines of 1024 bytes or more.
MAX_LINE = 1023
# shadow reads the numbers into unsigned long: 64 bits on the hosts we manage.
ULONG = 1 << 64
# The highest ID a map can hold: (uid_t)-1 = 4294967295 is "no ID" and newuidmap refuses it.
LAST_ID = ID_LIMIT - 1
# commonio_open() reads with fgets() into a buffer of 4096 bytes that grows by 4096.
_BUFLEN = 4096


class SubidError(ValueError):
    """A refused change; the message names the file, line and range at fault."""


class Entry(collections.namedtuple("Entry", "owner start count line note last_line ignored",
                                   defaults=(None, None, False))):
    """One line that holds a range, as shadow reads it: ``line`` is its 1-based number in
    the file (``last_line`` the last one when shadow joins several lines, see
    shadow_records), ``start`` and ``count`` the unsigned longs shadow reads (a ``-`` wraps
    them modulo 2**64).

    ``note`` is None for a canonical line; otherwise it says how shadow reads (or ignores)
    this unusual line. ``ignored``: shadow skips the line (a CR line ending, a NIS entry),
    but its range still counts as taken when checking overlaps.
    """

    __slots__ = ()

    @property
    def shadow_last(self):
        """The last ID as shadow computes it: ``start + count - 1`` in 64-bit unsigned long."""
        return (self.start + self.count - 1) % ULONG

    @property
    def range(self):
        """The IDs this line lets its owner map (shadow's arithmetic, clipped to the IDs a
        map can hold), or None when it grants none: ``bob:0:0`` grants every ID, since
        0 + 0 - 1 wraps to the largest unsigned long; ``bob:5:0`` grants none."""
        last = self.shadow_last
        if last < self.start or self.start > LAST_ID:
            return None
        return IdRange(self.start, min(last, LAST_ID) - self.start + 1)

    @property
    def beyond_id_space(self):
        """Whether shadow reads this line as reaching past ID 2**32 - 1."""
        return self.start <= self.shadow_last and self.shadow_last >= 1 << 32

    def lines_text(self):
        if self.last_line and self.last_line != self.line:
            return "lines %d-%d" % (self.line, self.last_line)
        return "line %d" % self.line

    def __str__(self):
        return "%s:%d:%d" % (self.owner, self.start, self.count)


def split_lines(text):
    """Lines of ``text`` with their ``\\n`` kept; only ``\\n`` ends a line (as in shadow)."""
    if not text:
        return []
    lines = [line + "\n" for line in text.split("\n")]
    last = lines.pop()[:-1]
    if last:
        lines.append(last)
    return lines


def c_strtoul(text):
    """The number C's ``strtoul(text, &end, 0)`` reads when it consumes all of ``text``
    without ERANGE (as shadow's getulong requires), else None.

    As glibc on a 64-bit host: leading blanks, a ``+`` or ``-`` sign (``-N`` is
    2**64 - N, so ``-0`` is 0 and ``-1`` is 18446744073709551615), ``0x`` hex, ``0`` octal;
    a value of 2**64 or more is ERANGE."""
    s = text.lstrip(_C_SPACE)
    negative = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    if s[:2] in ("0x", "0X"):
        digits, base = s[2:], 16
    elif s[:1] == "0":
        digits, base = s, 8
    else:
        digits, base = s, 10
    if not digits or not _DIGITS[base].issuperset(digits):
        return None
    value = int(digits, base)
    if value >= ULONG:
        return None
    return (ULONG - value) % ULONG if negative else value


def _encoded_len(text):
    # Only long lines can reach the limit; a character is at most 4 bytes in UTF-8.
    return len(text) if len(text) * 4 <= MAX_LINE else len(text.encode("utf-8", "surrogateescape"))


def shadow_records(text):
    """The lines of ``text`` as shadow 4.13's commonio_open() hands them to the parser.

    Returns ``(records, unreadable)``: records are ``(first, raws, body)``: the 1-based
    number of the first physical line, the physical lines (``\\n`` kept) and the C string
    shadow parses. ``unreadable`` is the number of the line at which commonio_open() fails,
    so that shadow reads nothing at all from the file, or None.

    fgets() reads a line, and strrchr() looks for its ``\\n`` in the C string, which ends
    at the first NUL byte. A line with a NUL byte therefore seems to have no ``\\n``:
    shadow reads on from the NUL, so the next physical line is joined to what came before
    the NUL, and when nothing follows, fgets() fails and the whole file is refused.
    """
    lines = split_lines(text)
    if not _needs_model(text):
        return [(n, (raw,), raw[:-1] if raw.endswith("\n") else raw) for n, raw in enumerate(lines, 1)], None
    data = text.encode("utf-8", "surrogateescape")
    first_line = {0: 1}  # byte offset of each physical line's start -> its number
    offset = 0
    for number, raw in enumerate(lines, 1):
        first_line[offset] = number
        offset += len(raw.encode("utf-8", "surrogateescape"))
    spans, failed = _commonio_spans(data)
    records = []
    for start, end, body in spans:
        first = first_line[start]
        last = first_line[end] - 1 if end < len(data) else len(lines)
        records.append((first, tuple(lines[first - 1:last]), body.decode("utf-8", "surrogateescape")))
    return records, (first_line[failed] if failed is not None else None)


def _commonio_spans(data):
    """``([(start, end, body)], failed)``: byte spans of the lines commonio_open() reads,
    and the offset of the line at which it fails (None when it reads the whole file)."""
    pos, size, eof, spans = 0, _BUFLEN, False, []

    def fgets(limit):
        # At most limit - 1 bytes, up to and including a newline; EOF is flagged only when
        # a read ran into the end of the file.
        nonlocal pos, eof
        if pos >= len(data):
            eof = True
            return None
        newline = data.find(b"\n", pos, pos + limit - 1)
        end = newline + 1 if newline >= 0 else min(len(data), pos + limit - 1)
        if newline < 0 and end - pos < limit - 1:
            eof = True
        chunk, pos = data[pos:end], end
        return chunk

    while True:
        start = pos
        chunk = fgets(size)
        if chunk is None:
            return spans, None
        buf = chunk.split(b"\0", 1)[0]
        while b"\n" not in buf and not eof:
            size += _BUFLEN
            more = fgets(size - len(buf))
            if more is None:
                return spans, start
            buf = (buf + more).split(b"\0", 1)[0]
        spans.append((start, pos, buf[:buf.rfind(b"\n")] if b"\n" in buf else buf))


def parse_entry(raw, number):
    """An Entry from one physical line (its ``\\n`` kept or not), or None when shadow
    reads no range from it. A line with a NUL byte: see shadow_records."""
    return parse_line(raw[:-1] if raw.endswith("\n") else raw, number)


def parse_line(body, number, last_line=None, joined=None):
    """An Entry from the C string shadow's subordinate_parse() gets, or None when it holds
    no range. ``joined``: a note saying how shadow joined physical lines into ``body``."""
    if _encoded_len(body) > MAX_LINE:
        return None
    m = _CANONICAL.match(body)
    if m and joined is None:  # the common line, read as read_line reads it
        return Entry(m.group(1), int(m.group(2)), int(m.group(3)), number)
    return read_line(body, number, last_line, joined)


def read_line(body, number, last_line=None, joined=None):
    """parse_line without its shortcut for canonical lines: shadow's subordinate_parse()
    step by step (fields, strtoul). The reference the faster readers are tested against."""
    if _encoded_len(body) > MAX_LINE:
        return None
    notes, ignored = [joined] if joined else [], False
    if body.endswith("\r"):
        body = body[:-1]
        notes.append("ends in CR (a Windows line ending), so shadow and newuidmap ignore it")
        ignored = True
    elif body[:1] in ("+", "-"):
        notes.append("starts with %r, which shadow takes for a NIS entry and ignores" % body[0])
        ignored = True
    fields = body.split(":")
    if len(fields) < 3 or not all(fields[:3]) or fields[0].lstrip().startswith("#"):
        return None
    start, count = c_strtoul(fields[1]), c_strtoul(fields[2])
    if start is None or count is None:
        return None
    entry = Entry(fields[0], start, count, number, None, last_line, ignored)
    if len(fields) > 3:
        notes.append("has %d fields: shadow 4.13 and older read it as %s, newer shadow ignores it"
                     % (len(fields), entry))
    if entry.range is None:
        notes.append("grants no ID: shadow computes its last ID, start+count-1, as %d, below its start"
                     % entry.shadow_last)
    if not notes:
        if _CANONICAL.match(body):
            return entry
        notes.append("%s: shadow reads it as %r:%d:%d" % (_DECIMAL_NOTE, fields[0], start, count))
    return entry._replace(note="; ".join(notes))


def parse_record(record):
    """The Entry shadow reads from one of shadow_records' records, or None."""
    first, raws, body = record
    if len(raws) == 1:
        return parse_line(body, first)
    joined = ("holds a NUL byte: shadow joins lines %d-%d into %r" % (first, first + len(raws) - 1, body))
    return parse_line(body, first, first + len(raws) - 1, joined)


def _is_comment_or_blank(body):
    body = body.rstrip("\r")
    return not body.strip() or body.lstrip().startswith("#")


class SubidFile:
    """The lines of one subuid/subgid file and the entries shadow reads among them."""

    def __init__(self, path, text):
        self.path = path
        self.text = text
        self.lines = split_lines(text)
        records, self.unreadable = shadow_records(text)
        self.entries = []
        self.malformed = []  # (line number, text) of lines that hold no range and are no comment
        self.compat = []  # (line number, problem) of lines shadow reads that other tools do not
        for record in records:
            number, raws, body = record
            entry = parse_record(record)
            if entry is not None:
                self.entries.append(entry)
                if not entry.ignored:
                    self.compat.extend((number, "(%s) %s" % (entry, problem))
                                       for problem in compat_problems(body, entry))
            elif body.lstrip().startswith("#"):
                self.compat.append((number, "is a comment: shadow reads it as a line of an owner named %r, "
                                            "but Docker Desktop and other tools fail on '#' lines"
                                    % body.split(":", 1)[0]))
            elif not _is_comment_or_blank(body):
                self.malformed.append((number, "".join(raws).rstrip("\n")))

    def where(self, entry):
        return "%s %s (%s)" % (self.path, entry.lines_text(), entry)


def compat_problems(body, entry):
    """Why tools other than shadow may read a line shadow reads as ``entry`` differently
    or not at all. The lines this collection writes have none of these."""
    problems = []
    fields = body.split(":")
    if any(c in _C_SPACE for c in body):
        problems.append("holds whitespace: shadow skips blanks before a number, but Podman and other tools "
                        "that split the line themselves fail on it or read another owner")
    if not all(_PLAIN_DECIMAL.match(field.lstrip(_C_SPACE)) for field in fields[1:3]):  # blanks: see above
        problems.append("has a number that is not plain decimal: shadow reads base 0 (a leading 0 is octal, "
                        "0x hex, a sign wraps), Go tools such as Podman and the kubelet read base 10 or fail")
    if entry.owner.isdigit():
        problems.append("names its owner by numeric UID: several tools match owners by name only")
    if entry.shadow_last == ID_LIMIT:
        problems.append("ends at ID %d (2^32-1, which is no ID): newuidmap refuses to map it, so the kubelet and "
                        "other tools that map the whole range fail" % ID_LIMIT)
    return problems


def _refused(path, problems):
    return SubidError("%s: refused, nothing was written: %s" % (path, "; ".join(problems)))


def desired_entries(items, floor, what, path=None):
    """Checked ``{owner: [IdRange, ...]}`` from module input ``[{name, start, count}]``."""
    wanted = collections.OrderedDict()
    for i, item in enumerate(items):
        label = "%s[%d]" % (what, i)
        name = item.get("name")
        try:
            check_owner_name(name, "%s owner" % label)
            rng = make_range(item.get("start"), item.get("count"), "%s (%s)" % (label, name))
        except RangeError as exc:
            raise _refused(path or what, [str(exc)])
        if name.isdigit():
            raise _refused(path or what, ["%s owner %r is a numeric UID: several tools match owners by name only, "
                                          "so this module writes names; give the account's name" % (label, name)])
        if rng.start < floor:
            raise _refused(path or what, ["%s: %s:%d:%d reaches below %d: %s" % (
                label, name, rng.start, rng.count, floor,
                "ID 0 is root" if rng.start == 0 else "IDs below the floor belong to system accounts")])
        wanted.setdefault(name, []).append(rng)
    return wanted


def owners_to_remove(items, what, path=None):
    """Checked ``{owner: []}`` for state absent: only names are needed."""
    names = collections.OrderedDict()
    for i, item in enumerate(items):
        try:
            names[check_owner_name(item.get("name"), "%s[%d] owner" % (what, i))] = []
        except RangeError as exc:
            raise _refused(path or what, [str(exc)])
    return names


class Edit:
    """An edit of one file: ``listed`` the (owner, IdRange, line in the new text) triples
    the listed owners will have, ``removed`` the old lines (without ``\\n``) of the listed
    owners, ``alias`` {owner field: listed owner} for every field that names a listed owner.

    ``others``, the entries of owners not being changed (with their line numbers), are
    read from the old text only when asked for: a converged run never needs them.
    """

    def __init__(self, path, old, new, listed, removed, alias, remove=False):
        self.path, self.old, self.new = path, old, new
        self.listed, self.removed, self.alias, self.remove = listed, removed, alias, remove
        self._others = None
        self.spans = None  # _alias_lines of ``old``, when the edit was spliced (see edit_text)
        self._reading = {}  # the bulk reading of ``old`` (see columns), shared by share_reading

    @property
    def others(self):
        if self._others is None:
            self._others = [] if self.remove else other_entries(self.old, self.alias)
        return self._others

    def _fields(self):
        """_fast_fields of the old text, read once."""
        if "fields" not in self._reading:
            self._reading["fields"] = _fast_fields(self.old)
        return self._reading["fields"]

    @property
    def columns(self):
        """fast_columns of the old text, read once (the numbers only when asked for)."""
        if "columns" not in self._reading:
            fields = self._fields()
            self._reading["columns"] = None if fields is None else _columns(*fields)
        return self._reading["columns"]

    def overlapping(self, start, end):
        """How many range lines of the old text, which is in fast_form, overlap [start, end)."""
        return self._fields()[2].overlapping(start, end)

    def share_reading(self, other):
        """Take ``other``'s bulk reading when both edits start from the same text (a subgid
        file kept in step with the subuid file): it depends on the text alone."""
        if other.old == self.old:
            self._reading = other._reading


def other_entries(text, alias):
    """The entries shadow reads from ``text`` that grant IDs and belong to no owner in
    ``alias``, in file order (the exact per-line reader)."""
    others = []
    records, unreadable = shadow_records(text)
    canonical = _CANONICAL_LINE.match if "\0" not in text else (lambda raw: None)
    for record in records:
        number, raws, body = record
        m = canonical(raws[0]) if len(raws[0]) < 256 else None  # short: no 1023-byte limit to check
        entry = Entry(m.group(1), int(m.group(2)), int(m.group(3)), number) if m else parse_record(record)
        if entry is not None and entry.owner not in alias and entry.range is not None:
            others.append(entry)
    return others


# A canonical line as it comes from split_lines: owner:start:count and maybe its newline.
_CANONICAL_LINE = re.compile(r"([^:#\s+-][^:\s]*):(0|[1-9][0-9]{0,17}):([1-9][0-9]{0,17})\n?\Z")


def _aliases(wanted, aliases_of):
    alias = {}
    for name in wanted:
        for field in aliases_of(name):
            alias.setdefault(field, name)
    return alias


def edit_text(path, text, wanted, aliases_of, remove=False, previous=None):
    """Edit: the owners in ``wanted`` get exactly those ranges (with ``remove``, no lines).

    ``aliases_of(name)`` returns every owner field meaning that account (its name, its
    numeric UID); only the listed owners are resolved, never the whole file, which may
    hold 1,000,000 owners. A listed owner's lines are every line shadow reads as theirs,
    whatever shadow makes of its numbers (``alice:-0:65536`` is alice's range over root,
    ``alice:0:0`` every ID, ``alice:5:0`` none): all of them go, and the new lines are
    written where the first of them was, in the name form given; owners without lines
    are appended. Lines we write end in ``\\n`` (shadow does not read a line ending in
    CR); a missing final newline stays missing unless we append after it. Every other
    line is kept byte for byte.

    A file with a NUL byte is edited the way shadow reads it (see shadow_records), and the
    edit is refused when shadow would then read any line differently than intended.

    Without a NUL byte (or an over-long last line) every physical line is one of shadow's
    lines, and shadow takes a line's owner from the text before its first ``:``. So only
    the lines that start with ``<alias>:`` can be a listed owner's: one regex search finds
    them and each is read by the exact reader (parse_line); the rest of the text is copied
    in slices, unread (see _edit_spliced). Otherwise every line is read (_edit_records).
    ``previous``, the Edit of the other file: when it was spliced from the same text with
    the same owner fields, its lines are those lines, and the search is not run again.
    """
    alias = _aliases(wanted, aliases_of)
    spans = None
    if _needs_model(text):
        records, unreadable = shadow_records(text)
        if unreadable is not None:
            raise _refused(path, [_unreadable_message(path, unreadable)])
        new, listed, removed = _edit_records(text, records, wanted, alias, remove)
    else:
        # A subgid file kept in step with the subuid file: the same text, the same owners.
        if previous is not None and previous.spans is not None and previous.alias.keys() == alias.keys() \
                and previous.old == text:
            spans = previous.spans
        else:
            spans = _alias_lines(text, alias)
        new, listed, removed = _edit_spliced(text, wanted, alias, remove, spans)
    if _needs_model(text) or _needs_model(new):
        _check_shadow_view(path, text, new, alias, {} if remove else wanted)
    edit = Edit(path, text, new, listed, removed, alias, remove)
    edit.spans = spans
    return edit


def _edit_records(text, records, wanted, alias, remove):
    """``(new text, listed, removed)`` from shadow's records, every line read."""
    placed = set()
    out, listed, removed = [], [], []
    canonical = _CANONICAL_LINE.match if "\0" not in text else (lambda raw: None)
    for record in records:
        number, raws, body = record
        m = canonical(raws[0]) if len(raws[0]) < 256 else None  # short: no 1023-byte limit to check
        entry = Entry(m.group(1), int(m.group(2)), int(m.group(3)), number) if m else parse_record(record)
        name = alias.get(entry.owner) if entry is not None else None
        if name is None:
            out.extend(raws)  # not a listed owner's range (a line without a range is never ours)
            continue
        removed.extend(raw.rstrip("\n") for raw in raws)
        if remove or name in placed:
            continue
        placed.add(name)
        for rng in wanted[name]:
            listed.append((name, rng, len(out) + 1))
            out.append("%s:%d:%d\n" % (name, rng.start, rng.count))
    missing = [] if remove else [name for name in wanted if name not in placed]
    if text and not text.endswith("\n") and not missing and listed and listed[-1][2] == len(out):
        out[-1] = out[-1][:-1]  # the file ended without a newline, in lines we rewrote: keep it so
    if missing:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        for name in missing:
            for rng in wanted[name]:
                listed.append((name, rng, len(out) + 1))
                out.append("%s:%d:%d\n" % (name, rng.start, rng.count))
    return "".join(out), listed, removed


def _alias_search(alias):
    """A regex for ``\\n<alias>:``, the aliases as a trie so that each line costs a few
    character tests however many owners are listed (an alternation tests them all)."""
    trie = {}
    for field in alias:
        node = trie
        for char in field:
            node = node.setdefault(char, {})
        node[""] = {}

    def pattern(node):
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:%s)" % "|".join(branches)
        return "(?:%s)?" % body if "" in node else body

    return re.compile(r"\n%s:" % pattern(trie)) if alias else None


def _alias_lines(text, alias):
    """``(start, end, number)`` of the physical lines that start with ``<alias>:``, in
    order; ``end`` includes the ``\\n``."""
    search = _alias_search(alias)
    if search is None:
        return []
    found = []
    head = text[:text.find("\n")] if "\n" in text else text
    if ":" in head and head.split(":", 1)[0] in alias:
        found.append(0)
    found.extend(m.start() + 1 for m in search.finditer(text))
    spans, number, counted = [], 1, 0
    for start in found:
        number += text.count("\n", counted, start)
        counted = start
        end = text.find("\n", start)
        spans.append((start, len(text) if end < 0 else end + 1, number))
    return spans


def _edit_spliced(text, wanted, alias, remove, spans=None):
    """``(new text, listed, removed)`` as _edit_records makes them, for a text whose
    physical lines are shadow's lines: only the lines starting with a listed owner's
    field are read (by parse_line), everything between them is copied as it is.
    ``spans``: _alias_lines(text, alias), when known."""
    placed = set()
    pieces, listed, removed = [], [], []
    prev, delta, ends_listed = 0, 0, False  # delta: lines added minus lines dropped so far
    for start, end, number in _alias_lines(text, alias) if spans is None else spans:
        raw = text[start:end]
        entry = parse_line(raw[:-1] if raw.endswith("\n") else raw, number)
        if entry is None:  # no range: not the owner's line, kept with what follows
            continue
        name = alias[entry.owner]
        if start > prev:
            pieces.append(text[prev:start])
            ends_listed = False
        prev = end
        removed.append(raw.rstrip("\n"))
        delta -= 1
        if remove or name in placed:
            continue
        placed.add(name)
        for rng in wanted[name]:
            delta += 1
            listed.append((name, rng, number + delta))
            pieces.append("%s:%d:%d\n" % (name, rng.start, rng.count))
            ends_listed = True
    if prev < len(text):
        pieces.append(text[prev:])
        ends_listed = False
    missing = [] if remove else [name for name in wanted if name not in placed]
    if text and not text.endswith("\n") and not missing and ends_listed:
        pieces[-1] = pieces[-1][:-1]  # the file ended without a newline, in lines we rewrote: keep it so
    if missing:
        if pieces and not pieces[-1].endswith("\n"):
            pieces[-1] += "\n"
        lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0) + delta
        for name in missing:
            for rng in wanted[name]:
                lines += 1
                listed.append((name, rng, lines))
                pieces.append("%s:%d:%d\n" % (name, rng.start, rng.count))
    return "".join(pieces), listed, removed


def written_ranges(text, owners, aliases_of):
    """For each of ``owners`` that has lines in ``text``: the ``[start, count]`` of its
    lines, in file order, when they are exactly what edit_text writes for those ranges
    (``<owner>:<start>:<count>\\n`` each, one line after the other), or None when edit_text
    would rewrite them whatever the ranges (another owner field such as the UID, other
    number forms, lines apart). Owners without lines are left out.
    None instead of the dict when shadow's lines are not the physical lines (see
    _needs_model): nothing is known then.

    edit_text(text, wanted, aliases_of) leaves ``text`` as it is exactly when every owner
    in ``wanted`` maps here to its wanted ranges in order: _edit_spliced writes an owner's
    ranges where its first line was and drops its other lines, and keeps every other line
    byte for byte. So a caller that knows the ranges can tell a write would change nothing
    without the write."""
    if _needs_model(text):
        return None
    alias = _aliases(owners, aliases_of)
    found = collections.OrderedDict()
    for start, end, number in _alias_lines(text, alias):
        raw = text[start:end]
        entry = parse_line(raw[:-1] if raw.endswith("\n") else raw, number)
        if entry is not None:  # a line without a range is kept as it is (see _edit_spliced)
            found.setdefault(alias[entry.owner], []).append((number, raw, entry))
    held = {}
    for owner, lines in found.items():
        # A line without its newline is the text's last: edit_text keeps it without one.
        as_written = all(raw.rstrip("\n") == "%s:%d:%d" % (owner, entry.start, entry.count)
                         for number, raw, entry in lines)
        together = all(later[0] == earlier[0] + 1 for earlier, later in zip(lines, lines[1:]))
        held[owner] = [[entry.start, entry.count] for number, raw, entry in lines] if as_written and together else None
    return held


def _unreadable_message(path, number):
    return ("%s line %d has a NUL byte before its newline and nothing after it, so shadow cannot read %s at "
            "all (newuidmap fails for every owner): remove the NUL byte by hand" % (path, number, path))


def _shadow_view(text, alias):
    """What shadow reads from ``text``: (line where it fails or None, the other owners'
    entries in order, {listed owner: [(start, count), ...]})."""
    records, unreadable = shadow_records(text)
    others, mine = [], {}
    for record in records:
        entry = parse_record(record)
        if entry is None:
            continue
        name = alias.get(entry.owner)
        if name is None:
            others.append((entry.owner, entry.start, entry.count, entry.ignored))
        else:
            mine.setdefault(name, []).append((entry.start, entry.count))
    return unreadable, others, mine


def _check_shadow_view(path, old, new, alias, wanted):
    """Refuse an edit after which shadow would read another owner's line differently, or
    a listed owner's lines other than as written (lines joined at a NUL byte)."""
    old_view = _shadow_view(old, alias)
    new_view = _shadow_view(new, alias)
    expected = {name: [(rng.start, rng.count) for rng in ranges] for name, ranges in wanted.items()}
    if new_view[0] is None and new_view[1] == old_view[1] and new_view[2] == expected:
        return
    nul = next((number for number, raw in enumerate(split_lines(old), 1) if "\0" in raw), None)
    raise _refused(path, ["shadow would not read the new lines as written%s" % (
        ": %s line %d holds a NUL byte, which makes shadow join it with the line after it; remove the NUL "
        "byte by hand" % (path, nul) if nul else "")])


def _needs_model(text):
    """Whether shadow's lines can differ from the physical lines (see shadow_records)."""
    if "\0" in text:
        return True
    last = text[text.rfind("\n") + 1:]
    return bool(last) and _encoded_len(last) >= _BUFLEN - 1


def line_changes(edit):
    """``(added, removed)`` lines (without newline) of an edit, lines kept as they were
    left out. Only the listed owners' lines can change."""
    written = ["%s:%d:%d" % (name, rng.start, rng.count) for name, rng, line in edit.listed]
    old, new = set(edit.removed), set(written)
    return [line for line in written if line not in old], [line for line in edit.removed if line not in new]


# A line in the form this module writes and inside every limit of shadow's reader: a
# printable ASCII owner that is no comment or NIS entry, numbers without sign or leading
# zero of at most 10 digits (no ERANGE, no wrap in start+count-1), at most 277 bytes.
_FAST_LINE = r"[!\"$-*,.-9;-~][!-9;-~]{0,254}:(?:0|[1-9][0-9]{0,9}):[1-9][0-9]{0,9}"
# ... or a line shadow never reads a range from, whatever follows: a comment, a blank line.
_FAST_FILE = re.compile(r"(?:(?:%s|#[^\n]*)?\n)*(?:%s|#[^\n]*)?" % (_FAST_LINE, _FAST_LINE))
# Matched in slices of about this many characters, cut at line ends: the regex engine
# keeps a backtracking frame for each repetition, so a whole 25 MiB file would cost memory.
_FAST_CHUNK = 1 << 16


def fast_form(text):
    """Whether every line of ``text`` is a _FAST_LINE, a comment or a blank line: then
    each line holds the range its three fields say in plain decimal, exactly as shadow's
    reader (parse_line) reads it, and the numbers can be read in bulk (fast_columns).

    _FAST_FILE is the definition (see fast_form_by_regex); this decides the same with a
    few operations over the whole text and whole columns (see _fast_fields)."""
    return _fast_fields(text) is not None


def fast_form_by_regex(text):
    """fast_form by its definition: _FAST_FILE matches the whole text. The tests hold
    fast_form to it."""
    if _needs_model(text):
        return False
    pos = 0
    while pos < len(text):
        if pos + _FAST_CHUNK >= len(text):
            end = len(text)
        else:
            end = text.rfind("\n", pos, pos + _FAST_CHUNK) + 1
            if end <= pos:
                newline = text.find("\n", pos)
                end = len(text) if newline < 0 else newline + 1
        if _FAST_FILE.fullmatch(text, pos, end) is None:
            return False
        pos = end
    return True


# The range lines of a text in fast_form mapped to their shape: each field character
# (printable ASCII but space and ":") to "x", ":" and the newline kept, any other to "!".
_FAST_SHAPE = b"".join(b"\n" if c == 0x0a else b":" if c == 0x3a else b"x" if 0x21 <= c < 0x7f else b"!"
                       for c in range(256))
_LONG_FIELD = b"x" * 256  # no field may be this long: owners have 255 characters at most, numbers 10
_MAX_NUMBER = 10 ** 10  # below it: at most 10 digits, when there is no leading zero
_FAST_COUNT = re.compile(r"[1-9][0-9]{0,9}\Z")
# In lines of two colons each: a start or a count that begins with 0 and is not the start
# 0 (re finds this pair of characters faster than str does, ~25 ms against ~50 in 25 MiB).
_LEADING_ZERO = re.compile(r":0(?!:)")


class _Owners:
    """The owner column of a text in fast_form, split off only when asked for (a refusal
    naming lines, the tests): the change case reads the numbers alone."""

    def __init__(self, body):
        self._body, self._owners = body, None

    def _column(self):
        if self._owners is None:
            self._owners = _owners_and_counts(self._body.split(":"))[0::2]
            self._body = None
        return self._owners

    def __getitem__(self, i):
        return self._column()[i]

    def __len__(self):
        return len(self._column())

    def __iter__(self):
        return iter(self._column())


def _owners_and_counts(fields):
    """``[owner 1, count 1, owner 2, ...]`` from the ``:`` fields of lines of two colons
    each (owner 1, start 1, "count 1\\nowner 2", start 2, ..., count N)."""
    return "\n".join(fields[0::2]).split("\n")


def _fast_fields(text):
    """``(owners, skipped, numbers)`` of a text in fast_form, ``skipped`` its
    _skipped_lines and ``numbers`` its starts and counts (_OneCount or _Counts); None for
    a text not in fast_form.

    Each test is one operation over the whole text or a whole column, and together they
    accept exactly what _FAST_FILE accepts:
    - comment and blank lines are taken out (_FAST_FILE takes any comment, and only empty
      lines as blank); the rest, ``body``, must be lines of owner:start:count;
    - body holds only printable ASCII but space (0x21-0x7e) and newlines (no "!" in its
      shape), no field of 256 characters or more, and each of its lines exactly two
      colons: the shape without its "x"s reads "::\\n" a line (lines of four and two
      fields, "a:1:2:3\\nb:4", split into six fields as well);
    - so body split on ":" alone is owner 1, start 1, "count 1\\nowner 2", start 2, ...,
      count N: the starts are every other field and hold no newline;
    - owners: 1-255 characters; a line starts with neither ":" (no owner) nor "+" or "-"
      ("#" lines are comments);
    - numbers: int() takes them, so they are digits, but for what else int() takes:
      a sign (no ":+" or ":-"), an underscore (none in the number columns) and blanks
      (not in body). No leading zero: every ":0" in body is a start "0" followed by ":"
      (_LEADING_ZERO).
      With no leading zero, 10 digits at most is a value below 10**10;
    - one count c on every line (login.defs and the pool hand out one size): c, the first
      line's, is plain decimal, and ":c\\n" ends every line but the last and ":c" the last
      (":" then digits then the line's end: the line's second colon and its count).
      Then the starts are not read as numbers: their column, joined, is ASCII digits
      alone, and each start has 1 to 10 of them (see _OneCount).
      Otherwise the counts are split off with the owners and each read."""
    if _needs_model(text):
        return None
    skipped = _skipped_lines(text)
    body = text
    if skipped:
        pieces, prev = [], 0
        for start, end, number in skipped:
            pieces.append(body[prev:start])
            prev = end
        pieces.append(body[prev:])
        body = "".join(pieces)
    if body.endswith("\n"):
        body = body[:-1]  # every line of body ended in a newline: the last one's is not a separator
    if not body:
        return [], skipped, _Counts([], [], [])
    # A one-character test ("+" in body) is a memchr: the pairs are looked for only then.
    shape = body.encode("ascii").translate(_FAST_SHAPE) if body.isascii() else b"!"
    if b"!" in shape or _LONG_FIELD in shape:
        return None
    skeleton = shape.translate(None, b"x")
    lines = (len(skeleton) + 1) // 3  # the number of lines when the skeleton is right
    if skeleton != b"::\n" * (lines - 1) + b"::" \
            or body[0] == ":" or "\n:" in body \
            or any(sign in body and (body[0] == sign or "\n" + sign in body or ":" + sign in body)
                   for sign in "+-") \
            or _LEADING_ZERO.search(body):
        return None
    fields = body.split(":")
    starts = fields[1::2]
    first_count = body[:body.find("\n")].split(":")[2] if lines > 1 else fields[2]
    if _FAST_COUNT.match(first_count) and body.endswith(":" + first_count) \
            and body.count(":%s\n" % first_count) == lines - 1:
        del fields
        # The starts are ASCII (body is) and shorter than 256 characters (no _LONG_FIELD).
        numbers = _OneCount(starts, bytes(map(len, starts)), int(first_count))
        if not "".join(starts).encode("ascii").isdigit() or numbers.below(_MAX_NUMBER) != lines:
            return None  # a start not all digits, empty or of more than 10 digits
        return _Owners(body), skipped, numbers
    columns = _owners_and_counts(fields)
    del fields
    owners, counts = columns[0::2], columns[1::2]
    del columns
    if "_" in body and "_" in "".join(counts):
        return None
    try:
        # Most files hold a few counts: read each once.
        distinct = set(counts)
        if len(distinct) * 4 <= len(counts):
            number = {count: int(count) for count in distinct}
            counts, largest = list(map(number.__getitem__, counts)), max(number.values())
        else:
            counts = list(map(int, counts))
            largest = max(counts)
    except ValueError:
        return None
    if "_" in body and "_" in "".join(starts):
        return None
    try:
        starts = list(map(int, starts))
    except ValueError:
        return None
    ordered = sorted(starts)  # near linear on the mostly sorted files useradd and this module write
    if ordered[-1] >= _MAX_NUMBER or largest >= _MAX_NUMBER:
        return None
    return owners, skipped, _Counts(starts, counts, ordered)


class _Counts:
    """The starts and counts of the range lines of a text in fast_form, read as numbers,
    and the starts sorted: the lines overlapping a range are counted with the ends sorted
    too (see overlapping)."""

    def __init__(self, starts, counts, ordered):
        self.starts, self.counts, self._ordered, self._ends = starts, counts, ordered, None

    def columns(self):
        return self.starts, self.counts

    def overlapping(self, start, end):
        """How many lines [s, e) overlap [start, end): a line with e <= start has
        s < e <= start < end, so these are the lines with s < end less those with
        e <= start, two binary searches in the starts and the ends, each sorted on its own."""
        if self._ends is None:
            # Timsort is near linear on the mostly sorted files useradd and this module write.
            self._ends = sorted(map(operator.add, self.starts, self.counts))
        return bisect.bisect_left(self._ordered, end) - bisect.bisect_right(self._ends, start)


class _OneCount:
    """The starts of the range lines of a text in fast_form that all have the count
    ``count``, kept as the digit strings split off (``starts``, with ``lengths`` their
    lengths): a run that changes lines only asks how many lines overlap a few ranges,
    which needs no start read as a number. Read only when asked for (columns).

    A start has no leading zero and 1 to 10 digits, so a start of fewer digits than
    another is less, and among starts of d digits the order of the strings is the order
    of the numbers: only the starts of the digit lengths of the bounds asked about are
    sorted (_group)."""

    def __init__(self, starts, lengths, count):
        self.starts, self.lengths, self.count = starts, lengths, count
        self._numbers, self._groups = None, {}
        # _shorter[d]: how many starts have fewer than d digits (d = 1 ... 11).
        self._shorter = [0, 0]
        for digits in range(1, 11):
            self._shorter.append(self._shorter[-1] + lengths.count(digits))

    def columns(self):
        if self._numbers is None:
            self._numbers = list(map(int, self.starts))
        return self._numbers, [self.count] * len(self._numbers)

    def _group(self, digits):
        """The starts of ``digits`` digits, sorted."""
        if digits not in self._groups:
            select = self.lengths.translate(_SELECT_LENGTH[digits])
            self._groups[digits] = sorted(itertools.compress(self.starts, select))
        return self._groups[digits]

    def below(self, bound):
        """How many starts are less than ``bound``."""
        if bound <= 0:
            return 0
        if bound >= _MAX_NUMBER:
            return self._shorter[11]
        key = str(bound)
        return self._shorter[len(key)] + bisect.bisect_left(self._group(len(key)), key)

    def overlapping(self, start, end):
        """How many lines [s, s + count) overlap [start, end): those with s < end less
        those with s + count <= start, that is s < start - count + 1 (see _Counts)."""
        return self.below(end) - self.below(start - self.count + 1)


# _SELECT_LENGTH[d] maps the byte d to 1 and every other byte to 0: with bytes.translate,
# a selector of the starts of d digits for itertools.compress.
_SELECT_LENGTH = [bytes(int(byte == digits) for byte in range(256)) for digits in range(11)]


def _skipped_lines(text):
    """``(start, end, number)`` of the comment and blank lines of ``text``, in order."""
    starts = [0] if text[:1] in ("#", "\n") else []
    for needle in ("\n#", "\n\n"):
        pos = text.find(needle)
        while pos >= 0:
            starts.append(pos + 1)
            pos = text.find(needle, pos + 1)
    spans, number, counted = [], 1, 0
    for start in sorted(starts):
        number += text.count("\n", counted, start)
        counted = start
        end = text.find("\n", start)
        spans.append((start, len(text) if end < 0 else end + 1, number))
    return spans


def fast_columns(text):
    """``(owners, starts, counts, line_of)`` for the range lines of a ``text`` in
    fast_form, read in bulk (``line_of(i)``: the line number of the i-th of them), or
    None when ``text`` is not in fast_form and must be read line by line."""
    fields = _fast_fields(text)
    return None if fields is None else _columns(*fields)


def _columns(owners, skipped, numbers):
    """fast_columns from _fast_fields."""
    starts, counts = numbers.columns()
    skipped_at = [number for start, end, number in skipped]

    def line_of(i):
        line = i + 1
        for number in skipped_at:
            if number > line:
                break
            line += 1
        return line

    return owners, starts, counts, line_of


def overlapping_others(edit, starts, ends):
    """The entries of ``edit.others`` whose range overlaps one of the disjoint ranges
    ``[starts[j], ends[j])`` (sorted), in file order. A file in fast_form is checked on its
    columns of numbers, without an Entry for each line, and first only counted."""
    bulk = not edit.remove and edit._others is None and edit._fields() is not None
    if not bulk:
        for entry in edit.others:
            taken = entry.range
            j = bisect.bisect_right(ends, taken.start)
            if j < len(starts) and starts[j] < taken.end:
                yield entry
        return
    if not _overlap_count(edit, starts, ends):
        return
    owners, first, count, line_of = edit.columns
    # Some line overlaps: find which, in file order. A line [s, s+c) overlaps iff the first
    # listed range ending after s starts before s+c (clipping: see _overlap_count).
    bound = starts + [ULONG]
    after = map(bound.__getitem__, map(functools.partial(bisect.bisect_right, ends), first))
    for i in itertools.compress(itertools.count(), map(operator.lt, after, map(operator.add, first, count))):
        if owners[i] not in edit.alias:
            yield Entry(owners[i], first[i], count[i], line_of(i))


def _overlap_count(edit, starts, ends):
    """How many (line of an owner not listed, listed range) pairs overlap, for an edit of a
    text in fast_form; 0 means no line of another owner overlaps any listed range.

    All lines overlapping each listed range are counted in bulk (Edit.overlapping: binary
    searches in sorted columns, see _Counts and _OneCount). The listed owners' own old
    lines (``edit.removed``, a handful: every line of a listed owner, since in fast_form
    each is a range line that _edit_spliced takes out) are counted one by one and taken off.

    Clipping: shadow grants a line [s, min(e, 2^32 - 1)) (the last ID a map can hold is
    2^32 - 2), and none when s > 2^32 - 2; the listed ranges end at or below 2^32 - 1. So a
    line with s > 2^32 - 2 has s >= E: counted by neither; a line with s <= 2^32 - 2 and
    e > 2^32 - 1 has e > E > S as its clipped end 2^32 - 1 >= E > S does: the same answer.
    No unsigned wrap either: fast_form numbers have at most 10 digits."""
    pairs = sum(map(edit.overlapping, starts, ends))
    for line in edit.removed:
        owner, start, count = line.split(":")
        start, count = int(start), int(count)
        pairs -= sum(start < end and start + count > begin for begin, end in zip(starts, ends))
    return pairs


def check_edit(edit, host_ids, kind, own_ids=None, id_names=None):
    """Refuse an edit whose listed ranges overlap each other or another owner's range, or
    contain an ID the host uses.

    ``host_ids``: sorted UIDs (subuid) or GIDs (subgid) in use; ``own_ids``: owner name ->
    that owner's own UID or primary GID, to say so when a range holds it; ``id_names``:
    ID -> account or group name, for the message. Overlaps between two owners that are
    not being changed are left to subid_info: this module answers for the lines it writes.
    """
    own_ids = own_ids or {}
    id_names = id_names or {}
    problems = []

    def new(name, rng, line):
        return "%s:%d:%d (new line %d)" % (name, rng.start, rng.count, line)

    listed = sorted(edit.listed, key=lambda triple: triple[1])
    for (name1, rng1, line1), (name2, rng2, line2) in zip(listed, listed[1:]):
        if rng2.start < rng1.end:
            problems.append("%s overlaps %s%s" % (
                new(name2, rng2, line2), new(name1, rng1, line1),
                " (the same owner twice)" if name1 == name2 else ""))
    for name, rng, line in listed:
        own = own_ids.get(name)
        if own is not None and rng.contains_id(own):
            problems.append("%s contains %s's own %s %d: an account's own ID must never be one of its "
                            "subordinate IDs" % (new(name, rng, line), name, kind, own))
            continue
        i = bisect.bisect_left(host_ids, rng.start)
        if i < len(host_ids) and host_ids[i] < rng.end:
            holder = id_names.get(host_ids[i])
            problems.append("%s contains %s %d%s, which the host uses" % (
                new(name, rng, line), kind, host_ids[i], " (%s)" % holder if holder else ""))
    if not problems:  # listed ranges are disjoint: sorted by start, they are sorted by end too
        starts = [rng.start for name, rng, line in listed]
        ends = [rng.end for name, rng, line in listed]
        for entry in overlapping_others(edit, starts, ends):
            name, rng, line = listed[bisect.bisect_right(ends, entry.range.start)]
            problems.append("%s overlaps %s %s (%s)%s" % (
                new(name, rng, line), edit.path, entry.lines_text(), entry,
                ", which %s" % entry.note if entry.note else ""))
    if problems:
        raise _refused(edit.path, problems)


LOGIN_DEFS_KEYS = ("SUB_UID_MIN", "SUB_UID_MAX", "SUB_UID_COUNT", "SUB_GID_MIN", "SUB_GID_MAX",
                   "SUB_GID_COUNT", "UID_MIN", "UID_MAX", "GID_MIN", "GID_MAX")


def parse_login_defs(text):
    """SUB_UID_*/SUB_GID_*/UID_*/GID_* values from login.defs text.

    As shadow's getdef.c: ``NAME value`` with blanks between, ``#`` comment lines
    skipped, the last definition wins; numbers are read like strtol base 0 (so ``0x``
    hex works); a value that is no number is returned as the string.
    """
    values = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in LOGIN_DEFS_KEYS:
            value = fields[1].strip('"')
            number = c_strtoul(value)
            values[fields[0]] = number if number is not None else value
    return values


CAP_SETGID = 6
CAP_SETUID = 7
VFS_CAP_REVISION_MASK = 0xFF000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
VFS_CAP_REVISION_1 = 0x01000000
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_REVISION_3 = 0x03000000


def decode_file_caps(raw):
    """Permitted capability numbers in a ``security.capability`` xattr.

    struct vfs_cap_data (linux/capability.h), little-endian u32s: magic_etc (revision
    in the top byte, bit 0 = effective), then {permitted, inheritable} for the low 32
    capabilities, for revisions 2 and 3 a second pair for the high 32, and for revision
    3 the namespace root UID.
    """
    caps = decode_file_caps_full(raw)
    return caps["permitted"] if caps else set()


def decode_file_caps_full(raw):
    """``{revision, effective, permitted, inheritable, rootid}`` or None when ``raw`` is
    no vfs_cap_data."""
    if not raw or len(raw) < 12 or len(raw) % 4:
        return None
    words = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]
    revision = words[0] & VFS_CAP_REVISION_MASK
    need = {VFS_CAP_REVISION_1: 3, VFS_CAP_REVISION_2: 5, VFS_CAP_REVISION_3: 6}.get(revision)
    if need is None or len(words) < need:
        return None
    permitted, inheritable = words[1], words[2]
    if revision != VFS_CAP_REVISION_1:
        permitted |= words[3] << 32
        inheritable |= words[4] << 32
    return {
        "revision": revision >> 24,
        "effective": bool(words[0] & VFS_CAP_FLAGS_EFFECTIVE),
        "permitted": {bit for bit in range(64) if permitted >> bit & 1},
        "inheritable": {bit for bit in range(64) if inheritable >> bit & 1},
        "rootid": words[5] if revision == VFS_CAP_REVISION_3 else None,
    }


# Owners whose entry is read by name with no account behind it: containers/storage
# (Podman and CRI-O --userns=auto) looks up the `containers` entry only in the files.
ACCOUNTLESS_OWNERS = frozenset({"containers"})


def findings(files, uid_of, host_uids, host_gids, floor=1000):
    """Problems in parsed subuid/subgid files, as {severity, kind, file, line, message}.

    ``files``: {"subuid": SubidFile, "subgid": SubidFile}; ``uid_of(owner)``: the owner's
    (UID, primary GID), for a name or a numeric UID, or None without an account;
    host_uids/host_gids: sorted IDs in use.
    """
    found = []

    def add(severity, kind, path, line, message):
        found.append({"severity": severity, "kind": kind, "file": path, "line": line, "message": message})

    for kind_name, subid_file in files.items():
        if subid_file is None:
            continue
        host_ids = host_uids if kind_name == "subuid" else host_gids
        id_word = "UID" if kind_name == "subuid" else "GID"
        accounts = {}  # owner field -> uid_of(owner), looked up once per owner
        if subid_file.unreadable is not None:
            add("critical", "unreadable", subid_file.path, subid_file.unreadable,
                _unreadable_message(subid_file.path, subid_file.unreadable))
        for number, body in subid_file.malformed:
            add("warning", "malformed_line", subid_file.path, number,
                "%s line %d is not owner:start:count and is ignored: %r" % (subid_file.path, number, body))
        for number, problem in subid_file.compat:
            add("warning", "consumer_compat", subid_file.path, number,
                "%s line %d %s" % (subid_file.path, number, problem))
        for entry in subid_file.entries:
            rng = entry.range
            where = subid_file.where(entry)
            if entry.note and not entry.note.startswith(_DECIMAL_NOTE):  # that one is a consumer_compat
                add("warning", "malformed_line", subid_file.path, entry.line, "%s %s" % (where, entry.note))
            if entry.beyond_id_space:
                add("critical", "beyond_id_space", subid_file.path, entry.line,
                    "%s reaches past ID 2^32-1: shadow reads its last ID as %d and lets its owner map every ID "
                    "from %d to %d" % (where, entry.shadow_last, rng.start, rng.last) if rng else
                    "%s reaches past ID 2^32-1" % where)
            if rng is None:
                continue
            if rng.start == 0:
                add("critical", "maps_root", subid_file.path, entry.line,
                    "%s contains ID 0: its owner can become the host's root" % where)
            elif rng.start < floor:
                add("critical", "below_floor", subid_file.path, entry.line,
                    "%s reaches below %d, into system accounts" % (where, floor))
            if entry.owner not in accounts:
                accounts[entry.owner] = uid_of(entry.owner)
            account = accounts[entry.owner]
            if account is None and entry.owner not in ACCOUNTLESS_OWNERS:
                add("warning", "unknown_owner", subid_file.path, entry.line,
                    "%s: owner %s has no account on this host" % (where, entry.owner))
            own = account[0] if account and kind_name == "subuid" else (account[1] if account else None)
            i = bisect.bisect_left(host_ids, rng.start)
            if own is not None and rng.contains_id(own):
                add("critical", "owner_id_in_range", subid_file.path, entry.line,
                    "%s contains its owner's own %s %d" % (where, id_word, own))
            elif i < len(host_ids) and host_ids[i] < rng.end:
                add("critical", "host_id_collision", subid_file.path, entry.line,
                    "%s contains %s %d, which the host uses" % (where, id_word, host_ids[i]))
        # Sweep by start; ``active`` holds the ranges still open at the sweep position.
        ordered = sorted((e for e in subid_file.entries if e.range), key=lambda e: e.range)
        active = []
        for entry in ordered:
            active = [other for other in active if other.range.end > entry.range.start]
            for other in active:
                if _different_accounts(other.owner, entry.owner, accounts):
                    add("critical", "overlap", subid_file.path, entry.line,
                        "%s overlaps %s: each owner can reach the other's files"
                        % (subid_file.where(entry), subid_file.where(other)))
            active.append(entry)
    return found


def _different_accounts(owner1, owner2, accounts):
    """Whether two owner fields are different accounts (a name and its numeric UID are one)."""
    if owner1 == owner2:
        return False
    account1, account2 = accounts.get(owner1), accounts.get(owner2)
    return not (account1 and account2 and account1[0] == account2[0])


def nsswitch_subid_source(text):
    """The first source of the ``subid:`` line of nsswitch.conf text, or None."""
    for line in (text or "").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] == "subid:" and len(fields) > 1:
            return fields[1]
    return None


def system_findings(helpers, sysctls, nsswitch_source=None, nsswitch_path="/etc/nsswitch.conf"):
    """Findings about the helpers, the user-namespace sysctls and nsswitch.

    ``helpers``: [{name, path, exists, setuid, capability, capability_ok}];
    ``sysctls``: {name: int} for the sysctls that exist.
    """
    found = []

    def add(severity, kind, path, message):
        found.append({"severity": severity, "kind": kind, "file": path, "line": None, "message": message})

    for helper in helpers:
        if not helper["exists"]:
            add("critical", "helper_missing", None, "%s is not installed: rootless containers get only the "
                "user's own ID (install uidmap on Debian/Ubuntu, shadow-utils on Fedora/RHEL)" % helper["name"])
        elif not (helper["setuid"] or helper["capability_ok"]):
            add("critical", "helper_not_privileged", helper["path"], "%s has neither the setuid bit (owner root) "
                "nor %s+ep: writing ID maps fails with 'Operation not permitted'"
                % (helper["path"], helper["capability"]))
    off = sorted(name for name in ("user.max_user_namespaces", "kernel.unprivileged_userns_clone")
                 if sysctls.get(name) == 0)
    if off:
        add("critical", "userns_disabled", None, "unprivileged user namespaces are disabled (%s)"
            % ", ".join("%s=0" % name for name in off))
    if sysctls.get("kernel.apparmor_restrict_unprivileged_userns") == 1:
        add("warning", "userns_disabled", None, "AppArmor restricts unprivileged user namespaces "
            "(kernel.apparmor_restrict_unprivileged_userns=1): only programs with a 'userns,' profile "
            "(the distribution's podman has one) can create them")
    if nsswitch_source and nsswitch_source != "files":
        add("warning", "nsswitch_subid", nsswitch_path, "subid: %s in %s: tools built with libsubid read "
            "ranges from %s, not from these files" % (nsswitch_source, nsswitch_path, nsswitch_source))
    return found


# systemd-nspawn -U and systemd-nsresourced hand out 64K-aligned ID blocks from these
# windows and check only the user database (a block's first ID), never /etc/subuid, so a
# subordinate range inside them can end up shared with a container or a foreign image.
SYSTEMD_WINDOWS = (
    ("systemd's container UID range", IdRange(0x00080000, 0x70000000 - 0x00080000)),
    ("systemd's foreign UID range", IdRange(0x7FFE0000, 0x10000)),
)
SYSTEMD_ID_ALLOCATORS = ("systemd-nspawn", "systemd-nsresourced")


def systemd_window_findings(files, allocators):
    """Warnings for ranges inside SYSTEMD_WINDOWS, when ``allocators`` (paths of
    systemd-nspawn or systemd-nsresourced on the host) is not empty."""
    found = []
    if not allocators:
        return found
    programs = " and ".join(sorted(os.path.basename(path) for path in allocators))
    for subid_file in files.values():
        if subid_file is None:
            continue
        for entry in subid_file.entries:
            for label, window in SYSTEMD_WINDOWS:
                if entry.range and entry.range.overlaps(window):
                    found.append({
                        "severity": "warning", "kind": "systemd_window", "file": subid_file.path,
                        "line": entry.line,
                        "message": "%s lies in %s %d-%d: %s on this host pick IDs there without reading %s; "
                                   "list that range in subid_pool.reserved" % (
                                       subid_file.where(entry), label, window.start, window.end - 1, programs,
                                       subid_file.path)})
    return found


def sort_findings(found):
    """Most severe first, then by file and line."""
    return sorted(found, key=lambda f: (f["severity"] != "critical", f["file"] or "", f["line"] or 0))


# The journal of a write of both files (see the subid module): written durably before the
# first file is replaced, removed after the second. Found by the next run, it tells a file
# replaced alone (a kill between the two renames) from files that are both old or both new.
# Each file's old content is kept by a hard link (old_copy_path) made before the journal:
# "still old" is then a comparison with the kept file, where a digest of each old content
# and a copy of the first one in the journal cost a hash, a base64 and a write of 25 MiB.
JOURNAL_SUFFIX = ".fleetid-journal"
OLD_COPY_SUFFIX = ".fleetid-old"
_JOURNAL_FORMAT = "fleetid.subid journal 2"
# Format 1 held the old content of the first file (base64) and a digest of each old
# content; a journal left by a run of an earlier version is still read and rolled back.
_JOURNAL_FORMAT_1 = "fleetid.subid journal 1"


def journal_path(first_path):
    """``.<name>.fleetid-journal`` beside the file written first (the subuid file)."""
    folder, name = os.path.split(os.path.abspath(first_path))
    return os.path.join(folder, "." + name + JOURNAL_SUFFIX)


def old_copy_path(path):
    """``.<name>.fleetid-old`` beside ``path``: a hard link to its old content while a
    journal says the files may need rolling back."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, "." + name + OLD_COPY_SUFFIX)


def _digest(data):
    return None if data is None else hashlib.sha256(data).hexdigest()


def journal_bytes(first, second):
    """The journal for replacing ``first`` then ``second``, each ``(path, whether the file
    exists, new bytes)``: the digest of each new content (hashed once when both are the
    same) and whether the old file is kept in old_copy_path (there was one)."""
    first_new = _digest(first[2])
    second_new = first_new if second[2] == first[2] else _digest(second[2])
    return (json.dumps({
        "format": _JOURNAL_FORMAT,
        "first": {"path": first[0], "old_kept": first[1], "new_sha256": first_new},
        "second": {"path": second[0], "old_kept": second[1], "new_sha256": second_new},
    }, sort_keys=True) + "\n").encode()


def read_journal(data):
    """The journal in ``data``, or None when it is incomplete (the run was killed while
    writing it, before either file was replaced) or of an unknown format."""
    try:
        journal = json.loads(data.decode("utf-8"))
        first, second = journal["first"], journal["second"]
        if journal.get("format") == _JOURNAL_FORMAT:
            if not all(isinstance(part["old_kept"], bool) and isinstance(part["path"], str)
                       for part in (first, second)):
                return None
        elif journal.get("format") == _JOURNAL_FORMAT_1:
            old = first["old"]
            first["old"] = None if old is None else base64.b64decode(old.encode(), validate=True)
        else:
            return None
        return journal
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _kept(part, read):
    """The old content of one file of a journal: its bytes, None for no file, or False
    when it is kept no more (``read(path)``: the file's bytes or None)."""
    if "old_kept" not in part:  # format 1: only the first file's content
        return part.get("old", False)
    if not part["old_kept"]:
        return None
    data = read(old_copy_path(part["path"]))
    return False if data is None else data


def _is_old(part, now, read):
    if "old_sha256" in part:  # format 1
        return _digest(now) == part["old_sha256"]
    return _kept(part, read) == now


def old_content(journal, read):
    """The first file's old bytes a journal rolls back to, or None for no file; raises
    SubidError when its kept copy is gone."""
    old = _kept(journal["first"], read)
    if old is False:
        raise SubidError("%s, the old content of %s that an interrupted run kept to roll it back, is missing" % (
            old_copy_path(journal["first"]["path"]), journal["first"]["path"]))
    return old


def journal_state(journal, first_now, second_now, read):
    """``before`` (neither file replaced), ``split`` (only the first), ``after`` (both),
    or ``changed`` (another program wrote a file since) from the files' bytes now and
    their kept old contents (``read``: see _kept)."""
    first = (_is_old(journal["first"], first_now, read), _digest(first_now) == journal["first"]["new_sha256"])
    second = (_is_old(journal["second"], second_now, read), _digest(second_now) == journal["second"]["new_sha256"])
    if first[0] and second[0]:
        return "before"
    if first[1] and second[0]:
        return "split"
    if first[1] and second[1]:
        return "after"
    return "changed"
