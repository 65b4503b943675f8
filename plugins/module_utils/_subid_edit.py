# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edits of /etc/subuid and /etc/subgid and the checks that refuse them.

Pure logic. edit_text gives the listed owners exactly their ranges and keeps every
other line byte for byte; check_edit refuses an edit whose ranges overlap another
owner's or hold an ID the host uses; written_ranges tells, without an edit, whether one
would change nothing. Lines are read by _subid_read (shadow's reading), or in bulk by
_subid_fast when the whole text is in the form this collection writes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import collections
import functools
import itertools
import operator
import re

from ansible_collections.fleetid.subid.plugins.module_utils._subid_fast import columns_of, fast_fields
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import (
    ULONG,
    Entry,
    needs_model,
    parse_line,
    parse_record,
    shadow_records,
    split_lines,
    unreadable_message,
)
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import RangeError, check_owner_name, make_range
from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError


class SubidError(FleetidError):
    """A refused change; the message names the file, line and range at fault."""


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
            names[check_owner_name(item.get("name"), "%s[%d] owner" % (what, i), uid_ok=True)] = []
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
    def changed(self):
        return self.new != self.old

    @property
    def others(self):
        if self._others is None:
            self._others = [] if self.remove else other_entries(self.old, self.alias)
        return self._others

    def _fields(self):
        """fast_fields of the old text, read once."""
        if "fields" not in self._reading:
            self._reading["fields"] = fast_fields(self.old)
        return self._reading["fields"]

    @property
    def columns(self):
        """fast_columns of the old text, read once (the numbers only when asked for)."""
        if "columns" not in self._reading:
            fields = self._fields()
            self._reading["columns"] = None if fields is None else columns_of(*fields)
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
    CR), and so does the file: shadow 4.19 and later refuse a whole file whose last line
    has none, so a missing final newline is added. Every other line is kept byte for byte.

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
    if needs_model(text):
        records, unreadable = shadow_records(text)
        if unreadable is not None:
            raise _refused(path, [unreadable_message(path, unreadable)])
        new, listed, removed = _edit_records(text, records, wanted, alias, remove)
    else:
        # A subgid file kept in step with the subuid file: the same text, the same owners.
        if previous is not None and previous.spans is not None and previous.alias.keys() == alias.keys() \
                and previous.old == text:
            spans = previous.spans
        else:
            spans = _alias_lines(text, alias)
        new, listed, removed = _edit_spliced(text, wanted, alias, remove, spans)
    if needs_model(text) or needs_model(new):
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
    if missing:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        for name in missing:
            for rng in wanted[name]:
                listed.append((name, rng, len(out) + 1))
                out.append("%s:%d:%d\n" % (name, rng.start, rng.count))
    return _with_final_newline("".join(out)), listed, removed


def _with_final_newline(new):
    """``new`` ending in a newline: shadow 4.19 and later read no line of a file whose
    last line has none (getsubids, useradd and newuidmap fail for every owner)."""
    return new + "\n" if new and not new.endswith("\n") else new


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
    prev, delta = 0, 0  # delta: lines added minus lines dropped so far
    for start, end, number in _alias_lines(text, alias) if spans is None else spans:
        raw = text[start:end]
        entry = parse_line(raw[:-1] if raw.endswith("\n") else raw, number)
        if entry is None:  # no range: not the owner's line, kept with what follows
            continue
        name = alias[entry.owner]
        if start > prev:
            pieces.append(text[prev:start])
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
    if prev < len(text):
        pieces.append(text[prev:])
    missing = [] if remove else [name for name in wanted if name not in placed]
    if missing:
        if pieces and not pieces[-1].endswith("\n"):
            pieces[-1] += "\n"
        lines = text.count("\n") + (1 if text and not text.endswith("\n") else 0) + delta
        for name in missing:
            for rng in wanted[name]:
                lines += 1
                listed.append((name, rng, lines))
                pieces.append("%s:%d:%d\n" % (name, rng.start, rng.count))
    return _with_final_newline("".join(pieces)), listed, removed


def written_ranges(text, owners, aliases_of):
    """For each of ``owners`` that has lines in ``text``: the ``[start, count]`` of its
    lines, in file order, when they are exactly what edit_text writes for those ranges
    (``<owner>:<start>:<count>\\n`` each, one line after the other), or None when edit_text
    would rewrite them whatever the ranges (another owner field such as the UID, other
    number forms, lines apart). Owners without lines are left out.
    None instead of the dict when shadow's lines are not the physical lines (see
    needs_model): nothing is known then.

    edit_text(text, wanted, aliases_of) leaves ``text`` as it is exactly when every owner
    in ``wanted`` maps here to its wanted ranges in order: _edit_spliced writes an owner's
    ranges where its first line was and drops its other lines, and keeps every other line
    byte for byte. So a caller that knows the ranges can tell a write would change nothing
    without the write."""
    if needs_model(text) or (text and not text.endswith("\n")):
        return None  # edit_text adds the missing final newline: it rewrites the file whatever the ranges
    alias = _aliases(owners, aliases_of)
    found = collections.OrderedDict()
    for start, end, number in _alias_lines(text, alias):
        raw = text[start:end]
        entry = parse_line(raw[:-1] if raw.endswith("\n") else raw, number)
        if entry is not None:  # a line without a range is kept as it is (see _edit_spliced)
            found.setdefault(alias[entry.owner], []).append((number, raw, entry))
    held = {}
    for owner, lines in found.items():
        as_written = all(raw.rstrip("\n") == "%s:%d:%d" % (owner, entry.start, entry.count)
                         for number, raw, entry in lines)
        together = all(later[0] == earlier[0] + 1 for earlier, later in zip(lines, lines[1:]))
        held[owner] = [[entry.start, entry.count] for number, raw, entry in lines] if as_written and together else None
    return held


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


def line_changes(edit):
    """``(added, removed)`` lines (without newline) of an edit, lines kept as they were
    left out. Only the listed owners' lines can change."""
    written = ["%s:%d:%d" % (name, rng.start, rng.count) for name, rng, line in edit.listed]
    old, new = set(edit.removed), set(written)
    return [line for line in written if line not in old], [line for line in edit.removed if line not in new]


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
