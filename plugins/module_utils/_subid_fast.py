# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bulk reader of /etc/subuid and /etc/subgid: a text whose every line is in the
form this collection writes (fast_form) is read column by column, not line by line.

Pure logic. It decides exactly what the reference reader (_subid_read.parse_line) would
read from such a text, with a few operations over the whole text; a file of 1,000,000
lines then costs milliseconds. Its property tests hold it to that reader and to its own
definition, the regex _FAST_FILE.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import itertools
import operator
import re

from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import needs_model

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
    few operations over the whole text and whole columns (see fast_fields)."""
    return fast_fields(text) is not None


def fast_form_by_regex(text):
    """fast_form by its definition: _FAST_FILE matches the whole text. The tests hold
    fast_form to it."""
    if needs_model(text):
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


def fast_fields(text):
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
    if needs_model(text):
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
    fields = fast_fields(text)
    return None if fields is None else columns_of(*fields)


def columns_of(owners, skipped, numbers):
    """fast_columns from fast_fields."""
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
