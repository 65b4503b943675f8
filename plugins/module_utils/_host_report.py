# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What subid_info reports about a host: findings in the subid files, login.defs values,
the helpers' file capabilities, the user-namespace settings and systemd's ID windows.

Pure logic over what the module read; the files are parsed by _subid_read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import os

from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import (
    DECIMAL_NOTE,
    c_strtoul,
    unreadable_message,
)
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import DEFAULT_FLOOR, IdRange

# The switches of shadow 4.19 and later: numeric owners, and ranges computed from the UID
# (useradd then ignores the lines already in the files).
LOGIN_DEFS_SWITCHES = ("SUB_UID_STORE_BY_UID", "SUB_GID_STORE_BY_UID", "SUB_UID_DETERMINISTIC",
                       "SUB_GID_DETERMINISTIC", "UNSAFE_SUB_UID_DETERMINISTIC_WRAP",
                       "UNSAFE_SUB_GID_DETERMINISTIC_WRAP")
LOGIN_DEFS_KEYS = ("SUB_UID_MIN", "SUB_UID_MAX", "SUB_UID_COUNT", "SUB_GID_MIN", "SUB_GID_MAX",
                   "SUB_GID_COUNT", "UID_MIN", "UID_MAX", "GID_MIN", "GID_MAX") + LOGIN_DEFS_SWITCHES


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


def _switch_on(values, key):
    # getdef.c's getdef_bool: "yes", in any case, is true; anything else is false.
    return str(values.get(key, "")).lower() == "yes"


def login_defs_findings(values, path="/etc/login.defs"):
    """Findings about the allocation switches in parsed login.defs ``values``."""
    found = []
    for kind_name, ids in (("subuid", "UID"), ("subgid", "GID")):
        if not _switch_on(values, "SUB_%s_DETERMINISTIC" % ids):
            continue
        wraps = _switch_on(values, "UNSAFE_SUB_%s_DETERMINISTIC_WRAP" % ids)
        found.append({
            "severity": "critical" if wraps else "warning", "kind": "login_defs_deterministic", "file": path,
            "line": None,
            "message": "%s sets SUB_%s_DETERMINISTIC yes: useradd and usermod compute each new user's %s range "
                       "from the UID and ignore the lines already there, so a new range can overlap one of "
                       "them%s" % (path, ids, kind_name,
                                   ", and UNSAFE_SUB_%s_DETERMINISTIC_WRAP yes lets ranges wrap around onto "
                                   "each other" % ids if wraps else "")})
    return found


CAP_SETGID = 6
CAP_SETUID = 7
VFS_CAP_REVISION_MASK = 0xFF000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
VFS_CAP_REVISION_1 = 0x01000000
VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_REVISION_3 = 0x03000000


def decode_file_caps(raw):
    """A ``security.capability`` xattr as ``{revision, effective, permitted, inheritable,
    rootid}`` (capability numbers in sets), or None when ``raw`` is no vfs_cap_data.

    struct vfs_cap_data (linux/capability.h), little-endian u32s: magic_etc (revision
    in the top byte, bit 0 = effective), then {permitted, inheritable} for the low 32
    capabilities, for revisions 2 and 3 a second pair for the high 32, and for revision
    3 the namespace root UID."""
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
# (Podman and CRI-O --userns=auto) looks up the `containers` entry only in the files,
# unless it reads it through libsubid of shadow 4.20, which resolves the name first.
ACCOUNTLESS_OWNERS = frozenset({"containers"})
# From 4.20, shadow matches lines by the owner's resolved UID and skips a name that does
# not resolve (getsubids, newuidmap and libsubid see no range for it), and it skips a line
# whose start + count passes 2^32 instead of reading it as every ID from start up.
RESOLVES_OWNERS = (4, 20)
# The kubelet reads its ranges with `getsubids kubelet` and accepts exactly one, the same
# in both files; every shadow counts the lines of the name and of its numeric UID.
KUBELET = "kubelet"


def range_dangers(subid_file, entry, floor):
    """What makes a line dangerous whoever owns it, as (kind, message): a range over root
    or below the floor. (Past 2^32-1 depends on shadow's release: see findings.)"""
    rng = entry.range
    if rng is None:
        return []
    if rng.start == 0:
        return [("maps_root", "%s contains ID 0: its owner can become the host's root" % subid_file.where(entry))]
    if rng.start < floor:
        return [("below_floor", "%s reaches below %d, into system accounts" % (subid_file.where(entry), floor))]
    return []


def unsafe_lines(files, floor, managed):
    """The lines of owners not in ``managed`` (owner fields) that map root, reach below the
    floor or past ID 2^32-1: [{file, line, name (the owner field), kind, message}]."""
    found = []
    for subid_file in files:
        if subid_file.unreadable is not None:
            continue
        for entry in subid_file.entries:
            if entry.owner in managed or entry.ignored:
                continue
            dangers = range_dangers(subid_file, entry, floor)
            if entry.beyond_id_space:
                dangers.append(("beyond_id_space", "%s reaches past ID 2^32-1: older shadow releases let its "
                                "owner map every ID from its start" % subid_file.where(entry)))
            found += [{"file": subid_file.path, "line": entry.line, "name": entry.owner, "kind": kind,
                       "message": message} for kind, message in dangers]
    return found


def findings(files, uid_of, host_uids, host_gids, floor=DEFAULT_FLOOR, shadow_release=None):
    """Problems in parsed subuid/subgid files, as {severity, kind, file, line, message}.

    ``files``: {"subuid": SubidFile, "subgid": SubidFile}; ``uid_of(owner)``: the owner's
    (UID, primary GID), for a name or a numeric UID, or None without an account;
    host_uids/host_gids: sorted IDs in use; ``shadow_release``: shadow's (major, minor), or None.
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
        resolves = shadow_release is not None and shadow_release >= RESOLVES_OWNERS
        if subid_file.lines and not subid_file.lines[-1].endswith("\n"):
            refused = shadow_release is not None and shadow_release >= (4, 19)
            add("critical" if refused else "warning", "missing_final_newline", subid_file.path, len(subid_file.lines),
                "%s line %d, the last, has no newline: shadow 4.19 and later refuse the whole file for it%s; "
                "fleetid.subid.subid adds it at its next write" % (
                    subid_file.path, len(subid_file.lines),
                    ", as this host's shadow %d.%d does" % shadow_release if refused else
                    " (this host's shadow is %s)" % ("%d.%d" % shadow_release if shadow_release else "unknown")))
        if subid_file.unreadable is not None:
            add("critical", "unreadable", subid_file.path, subid_file.unreadable,
                unreadable_message(subid_file.path, subid_file.unreadable))
        for number, body in subid_file.malformed:
            add("warning", "malformed_line", subid_file.path, number,
                "%s line %d is not owner:start:count and is ignored: %r" % (subid_file.path, number, body))
        for number, problem in subid_file.compat:
            add("warning", "consumer_compat", subid_file.path, number,
                "%s line %d %s" % (subid_file.path, number, problem))
        for entry in subid_file.entries:
            rng = entry.range
            where = subid_file.where(entry)
            if entry.note and not entry.note.startswith(DECIMAL_NOTE):  # that one is a consumer_compat
                add("warning", "malformed_line", subid_file.path, entry.line, "%s %s" % (where, entry.note))
            if entry.beyond_id_space and resolves and entry.count and entry.start + entry.count > 1 << 32:
                add("warning", "beyond_id_space", subid_file.path, entry.line,
                    "%s reaches past ID 2^32-1: this host's shadow %d.%d skips the line, so %s gets no range "
                    "from it" % ((where,) + shadow_release + (entry.owner,)))
            elif entry.beyond_id_space:
                add("critical", "beyond_id_space", subid_file.path, entry.line,
                    "%s reaches past ID 2^32-1: shadow reads its last ID as %d and lets its owner map every ID "
                    "from %d to %d" % (where, entry.shadow_last, rng.start, rng.last) if rng else
                    "%s reaches past ID 2^32-1" % where)
            if rng is None:
                continue
            for danger, message in range_dangers(subid_file, entry, floor):
                add("critical", danger, subid_file.path, entry.line, message)
            if entry.owner not in accounts:
                accounts[entry.owner] = uid_of(entry.owner)
            account = accounts[entry.owner]
            if account is None and (resolves or entry.owner not in ACCOUNTLESS_OWNERS):
                add("warning", "unknown_owner", subid_file.path, entry.line,
                    "%s: owner %s has no account on this host%s" % (
                        where, entry.owner, _unresolved_effect(entry.owner, shadow_release) if resolves else ""))
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
    found.extend(_kubelet_findings(files, uid_of))
    # Each finding on a line names that line's owner, so a report can say whose range it is.
    owner_at = {(subid_file.path, entry.line): entry.owner
                for subid_file in files.values() if subid_file is not None for entry in subid_file.entries}
    for finding in found:
        finding["owner"] = owner_at.get((finding["file"], finding["line"]))
    return found


def _unresolved_effect(owner, shadow_release):
    if owner in ACCOUNTLESS_OWNERS:
        return (": this host's shadow %d.%d skips a name that does not resolve, so Podman and CRI-O built with "
                "libsubid (as Debian's are) find no range for --userns=auto; create the account "
                "(useradd --system --no-create-home %s)" % (shadow_release + (owner,)))
    return (": this host's shadow %d.%d skips a name that does not resolve, so getsubids and newuidmap give "
            "%s no range until the account resolves" % (shadow_release + (owner,)))


def _kubelet_findings(files, uid_of):
    """The kubelet's own rule: one range, the same in subuid and subgid, found by name or UID."""
    account = uid_of(KUBELET)
    forms = {KUBELET, str(account[0])} if account else {KUBELET}
    found, ranges = [], {}
    for kind_name, subid_file in files.items():
        if subid_file is None:
            continue
        lines = [e for e in subid_file.entries if e.owner in forms and e.range]
        ranges[kind_name] = [e.range for e in lines]
        if len(lines) > 1:
            found.append({
                "severity": "critical", "kind": "kubelet_ranges", "file": subid_file.path, "line": lines[1].line,
                "message": "%s has %d ranges for the kubelet (%s): getsubids returns them all and the kubelet "
                           "refuses to start unless it gets exactly one" % (
                               subid_file.path, len(lines),
                               ", ".join(subid_file.where(e) for e in lines))})
    if all(len(ranges.get(kind_name, ())) == 1 for kind_name in ("subuid", "subgid")) \
            and ranges["subuid"] != ranges["subgid"]:
        found.append({
            "severity": "critical", "kind": "kubelet_ranges", "file": files["subgid"].path, "line": None,
            "message": "the kubelet's subuid range %s and subgid range %s differ: the kubelet requires them equal"
                       % (ranges["subuid"][0], ranges["subgid"][0])})
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
