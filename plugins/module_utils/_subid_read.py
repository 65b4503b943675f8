# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""/etc/subuid and /etc/subgid read exactly as shadow reads them: lines, entries, notes.

Pure logic. A file is kept as its raw lines (line endings included), so a caller can
write every line it does not change back byte for byte.

Lines are split on ``\\n`` only, as shadow's fgets() does (never on the other characters
``str.splitlines`` treats as line breaks), and numbers are read the way shadow reads
them (``strtoul(s, &end, 0)``: leading blanks, ``+``, ``0x`` hex and ``0`` octal), so a
line such as ``bob:0100000:65536`` is bob's range 32768-98303 to us exactly as it is to
newuidmap. This is the reference reader: the bulk reader (_subid_fast) is held to it by
its property tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import ID_LIMIT, IdRange

# The files' paths, as every host module that reads them takes them (documented by the
# doc fragment fleetid.subid.subid_paths).
SUBID_PATHS_SPEC = {
    "subuid_path": {"type": "path", "default": "/etc/subuid"},
    "subgid_path": {"type": "path", "default": "/etc/subgid"},
}

# The canonical form we write and most files hold: owner:start:count in plain decimal.
# At most 18 digits: below 2**64, so strtoul never fails with ERANGE on these numbers.
_CANONICAL = re.compile(r"\A([^:#\s+-][^:\s]*):(0|[1-9][0-9]{0,17}):([1-9][0-9]{0,17})\Z")
_PLAIN_DECIMAL = re.compile(r"\A(0|[1-9][0-9]*)\Z")
_C_SPACE = " \t\n\v\f\r"
_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"), 16: frozenset("0123456789abcdefABCDEF")}
DECIMAL_NOTE = "is not plain decimal"
# subordinate_parse() refuses lines of 1024 bytes or more.
MAX_LINE = 1023
# shadow reads the numbers into unsigned long: 64 bits on the hosts we manage.
ULONG = 1 << 64
# The highest ID a map can hold: (uid_t)-1 = 4294967295 is "no ID" and newuidmap refuses it.
LAST_ID = ID_LIMIT - 1
# commonio_open() reads with fgets() into a buffer of 4096 bytes that grows by 4096.
_BUFLEN = 4096


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
    if not needs_model(text):
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
        notes.append("%s: shadow reads it as %r:%d:%d" % (DECIMAL_NOTE, fields[0], start, count))
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


def unreadable_message(path, number):
    return ("%s line %d has a NUL byte before its newline and nothing after it, so shadow cannot read %s at "
            "all (newuidmap fails for every owner): remove the NUL byte by hand" % (path, number, path))


def needs_model(text):
    """Whether shadow's lines can differ from the physical lines (see shadow_records)."""
    if "\0" in text:
        return True
    last = text[text.rfind("\n") + 1:]
    return bool(last) and _encoded_len(last) >= _BUFLEN - 1
