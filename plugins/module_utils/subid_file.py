# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""/etc/subuid and /etc/subgid as text: lossless parsing, edits, checks and findings.

Pure logic. A file is kept as its raw lines (line endings included), so every line we
do not change is written back byte for byte: comments, blank lines and lines shadow
would not parse stay exactly where they were.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import collections
import re

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import (
    ID_LIMIT,
    IdRange,
    RangeError,
    check_owner_name,
    make_range,
)

# owner:start:count, as shadow's subordinate_parse reads it (no empty fields, numbers only).
_ENTRY = re.compile(r"\A([^:#\s][^:\s]*):(\d+):(\d+)\Z")


class SubidError(ValueError):
    """A refused change; the message names the file, line and range at fault."""


class Entry(collections.namedtuple("Entry", "owner start count line")):
    """One well-formed line: ``line`` is its 1-based number in the file."""

    __slots__ = ()

    @property
    def range(self):
        return IdRange(self.start, self.count)


class SubidFile:
    """The lines of one subuid/subgid file and the entries among them."""

    def __init__(self, path, text):
        self.path = path
        self.text = text
        self.lines = text.splitlines(True)
        self.entries = []
        self.malformed = []  # (line number, text) of non-comment, non-blank lines shadow can't use
        for number, raw in enumerate(self.lines, 1):
            entry = parse_entry(raw, number)
            if entry is not None:
                self.entries.append(entry)
                continue
            body = raw.rstrip("\r\n")
            if body.strip() and not body.lstrip().startswith("#"):
                self.malformed.append((number, body))

    def where(self, entry):
        return "%s line %d (%s:%d:%d)" % (self.path, entry.line, entry.owner, entry.start, entry.count)


def desired_entries(items, floor, what):
    """Checked ``{owner: [IdRange, ...]}`` from module input ``[{name, start, count}]``."""
    wanted = collections.OrderedDict()
    for i, item in enumerate(items):
        label = "%s[%d]" % (what, i)
        name = item.get("name")
        try:
            check_owner_name(name, "%s owner" % label)
        except RangeError as exc:
            raise SubidError(str(exc))
        try:
            rng = make_range(item.get("start"), item.get("count"), "%s (%s)" % (label, name))
        except RangeError as exc:
            raise SubidError(str(exc))
        if rng.start < floor:
            raise SubidError("%s: %s:%d:%d reaches below %d: %s" % (
                label, name, rng.start, rng.count, floor,
                "ID 0 is root" if rng.start == 0 else "IDs below the floor belong to system accounts"))
        wanted.setdefault(name, []).append(rng)
    return wanted


Edit = collections.namedtuple("Edit", "path old new others listed")
"""An edit of one file: ``others`` are the well-formed entries of owners not being
changed (with their line numbers), ``listed`` the (owner, IdRange) pairs the listed
owners will have."""


def parse_entry(raw, number):
    """An Entry from one raw line, or None when shadow would not use it."""
    m = _ENTRY.match(raw.rstrip("\r\n"))
    if m:
        start, count = int(m.group(2)), int(m.group(3))
        if count >= 1 and start + count <= ID_LIMIT:
            return Entry(m.group(1), start, count, number)
    return None


def edit_text(path, text, wanted, aliases_of, remove=False):
    """Edit: the owners in ``wanted`` get exactly those ranges (with ``remove``, no lines).

    ``aliases_of(name)`` returns every owner field meaning that account (its name, its
    numeric UID); only the listed owners are resolved, never the whole file, which may
    hold 100,000 owners. Their lines are rewritten where the first of them was; owners
    without lines are appended. Every other line is kept byte for byte.
    """
    alias = {}
    for name in wanted:
        for field in aliases_of(name):
            alias.setdefault(field, name)
    placed = set()
    out, others = [], []
    for number, raw in enumerate(text.splitlines(True), 1):
        name = alias.get(raw.split(":", 1)[0])
        entry = parse_entry(raw, number) if name is not None or not remove else None
        if name is None or entry is None:
            out.append(raw)  # not a listed owner's entry (a malformed line is never ours)
            if entry is not None:
                others.append(entry)
            continue
        if remove or name in placed:
            continue
        placed.add(name)
        ending = raw[len(raw.rstrip("\r\n")):] or "\n"
        out.extend("%s:%d:%d%s" % (name, r.start, r.count, ending) for r in wanted[name])
    if not remove:
        missing = [name for name in wanted if name not in placed]
        if missing and out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        for name in missing:
            out.extend("%s:%d:%d\n" % (name, r.start, r.count) for r in wanted[name])
    listed = [] if remove else [(name, rng) for name, ranges in wanted.items() for rng in ranges]
    return Edit(path, text, "".join(out), others, listed)


def check_edit(edit, host_ids, kind):
    """Refuse an edit whose listed ranges overlap each other or another owner's range, or
    contain an ID the host uses (``host_ids``: sorted UIDs or GIDs).

    Overlaps between two owners that are not being changed are left to subid_info: this
    module answers for the lines it writes.
    """
    problems = []
    listed = sorted(edit.listed, key=lambda pair: pair[1])
    for (name1, rng1), (name2, rng2) in zip(listed, listed[1:]):
        if rng2.start < rng1.end:
            problems.append("%s:%d:%d overlaps %s:%d:%d%s" % (
                name2, rng2.start, rng2.count, name1, rng1.start, rng1.count,
                " (the same owner twice)" if name1 == name2 else ""))
    for name, rng in listed:
        i = bisect.bisect_left(host_ids, rng.start)
        if i < len(host_ids) and host_ids[i] < rng.end:
            problems.append("%s:%d:%d contains %s %d, which the host uses (an account's own ID must "
                            "never be a subordinate ID)" % (name, rng.start, rng.count, kind, host_ids[i]))
    if not problems:  # listed ranges are disjoint: sorted by start, they are sorted by end too
        starts = [rng.start for name, rng in listed]
        ends = [rng.end for name, rng in listed]
        for entry in edit.others:
            j = bisect.bisect_right(ends, entry.start)
            if j < len(starts) and starts[j] < entry.start + entry.count:
                name, rng = listed[j]
                problems.append("%s:%d:%d overlaps %s line %d (%s:%d:%d)" % (
                    name, rng.start, rng.count, edit.path, entry.line, entry.owner, entry.start, entry.count))
    if problems:
        raise SubidError("%s: refused, nothing was written: %s" % (edit.path, "; ".join(problems)))


def parse_login_defs(text):
    """SUB_UID_*/SUB_GID_*/UID_*/GID_* values from login.defs text (last one wins)."""
    values = {}
    wanted = ("SUB_UID_MIN", "SUB_UID_MAX", "SUB_UID_COUNT", "SUB_GID_MIN", "SUB_GID_MAX",
              "SUB_GID_COUNT", "UID_MIN", "UID_MAX", "GID_MIN", "GID_MAX")
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] in wanted:
            values[fields[0]] = int(fields[1]) if fields[1].isdigit() else fields[1]
    return values


CAP_SETGID = 6
CAP_SETUID = 7


def decode_file_caps(raw):
    """Permitted capability numbers in a ``security.capability`` xattr (vfs_cap_data)."""
    if not raw or len(raw) < 12:
        return set()
    words = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw) - len(raw) % 4, 4)]
    revision = words[0] & 0xFF000000
    permitted = words[1]
    if revision in (0x02000000, 0x03000000) and len(words) >= 5:
        permitted |= words[3] << 32
    return {bit for bit in range(64) if permitted >> bit & 1}


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
        for number, body in subid_file.malformed:
            add("warning", "malformed_line", subid_file.path, number,
                "%s line %d is not owner:start:count and is ignored: %r" % (subid_file.path, number, body))
        for entry in subid_file.entries:
            rng = entry.range
            where = subid_file.where(entry)
            if rng.start == 0:
                add("critical", "maps_root", subid_file.path, entry.line,
                    "%s contains ID 0: its owner can become the host's root" % where)
            elif rng.start < floor:
                add("critical", "below_floor", subid_file.path, entry.line,
                    "%s reaches below %d, into system accounts" % (where, floor))
            if entry.owner not in accounts:
                accounts[entry.owner] = uid_of(entry.owner)
            account = accounts[entry.owner]
            if account is None:
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
        ordered = sorted(subid_file.entries, key=lambda e: (e.start, e.count))
        active = []
        for entry in ordered:
            active = [other for other in active if other.start + other.count > entry.start]
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


def owners_to_remove(items, what):
    """Checked ``{owner: []}`` for state absent: only names are needed."""
    names = collections.OrderedDict()
    for i, item in enumerate(items):
        try:
            names[check_owner_name(item.get("name"), "%s[%d] owner" % (what, i))] = []
        except RangeError as exc:
            raise SubidError(str(exc))
    return names
