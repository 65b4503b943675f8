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
            body = raw.rstrip("\r\n")
            m = _ENTRY.match(body)
            if m:
                start, count = int(m.group(2)), int(m.group(3))
                if count >= 1 and start + count <= ID_LIMIT:
                    self.entries.append(Entry(m.group(1), start, count, number))
                    continue
            if body.strip() and not body.lstrip().startswith("#"):
                self.malformed.append((number, body))

    def where(self, entry):
        return "%s line %d (%s:%d:%d)" % (self.path, entry.line, entry.owner, entry.start, entry.count)


class OwnerIdentity:
    """Decides whether two owner fields name the same account: a name and the numeric
    UID it resolves to are one owner. ``uid_of(name)`` returns the UID or None."""

    def __init__(self, uid_of):
        self._uid_of = uid_of
        self._cache = {}

    def __call__(self, owner):
        if owner not in self._cache:
            if owner.isdigit():
                self._cache[owner] = ("uid", int(owner))
            else:
                uid = self._uid_of(owner)
                self._cache[owner] = ("uid", uid) if uid is not None else ("name", owner)
        return self._cache[owner]


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


def render_edit(subid_file, wanted, identity, remove=False):
    """New text: the owners in ``wanted`` get exactly those ranges (or, with ``remove``,
    no lines at all). Their lines are rewritten where the first of them was; owners
    without lines are appended. Every other line is kept byte for byte."""
    by_identity = {identity(name): name for name in wanted}
    placed = set()
    out = []
    entry_at = {e.line: e for e in subid_file.entries}
    for number, raw in enumerate(subid_file.lines, 1):
        entry = entry_at.get(number)
        key = identity(entry.owner) if entry else None
        if key is None or key not in by_identity:
            out.append(raw)
            continue
        if remove or key in placed:
            continue
        placed.add(key)
        ending = raw[len(raw.rstrip("\r\n")):] or "\n"
        name = by_identity[key]
        out.extend("%s:%d:%d%s" % (name, r.start, r.count, ending) for r in wanted[name])
    if not remove:
        missing = [name for name in wanted if identity(name) not in placed]
        if missing and out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        for name in missing:
            out.extend("%s:%d:%d\n" % (name, r.start, r.count) for r in wanted[name])
    return "".join(out)


def check_new_text(path, new_text, wanted, identity, host_ids, kind):
    """Refuse the edited file if a listed owner's range overlaps another owner's range, or
    contains an ID the host uses (``host_ids``: sorted list of UIDs or GIDs).

    Overlaps between two owners that are not being changed are left to subid_info: this
    module only answers for the lines it writes.
    """
    edited = SubidFile(path, new_text)
    listed = {identity(name) for name in wanted}
    mine = [e for e in edited.entries if identity(e.owner) in listed]
    problems = []
    for entry in mine:
        rng = entry.range
        i = bisect.bisect_left(host_ids, rng.start)
        if i < len(host_ids) and host_ids[i] < rng.end:
            problems.append("%s contains %s %d, which the host uses (an account's own ID must never "
                            "be a subordinate ID)" % (edited.where(entry), kind, host_ids[i]))
    ordered = sorted(edited.entries, key=lambda e: (e.start, e.count))
    active = []
    for entry in ordered:
        active = [other for other in active if other.start + other.count > entry.start]
        for other in active:
            if identity(other.owner) in listed or identity(entry.owner) in listed:
                same = identity(other.owner) == identity(entry.owner)
                problems.append("%s overlaps %s%s" % (
                    edited.where(entry), edited.where(other), " (the same owner twice)" if same else ""))
        active.append(entry)
    if problems:
        raise SubidError("refused, nothing was written: " + "; ".join(problems))


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
        identity = OwnerIdentity(lambda name: (uid_of(name) or (None, None))[0])
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
            account = uid_of(entry.owner)
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
                if identity(other.owner) != identity(entry.owner):
                    add("critical", "overlap", subid_file.path, entry.line,
                        "%s overlaps %s: each owner can reach the other's files"
                        % (subid_file.where(entry), subid_file.where(other)))
            active.append(entry)
    return found


def owners_to_remove(items, what):
    """Checked ``{owner: []}`` for state absent: only names are needed."""
    names = collections.OrderedDict()
    for i, item in enumerate(items):
        try:
            names[check_owner_name(item.get("name"), "%s[%d] owner" % (what, i))] = []
        except RangeError as exc:
            raise SubidError(str(exc))
    return names
