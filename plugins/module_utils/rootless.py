# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a rootless Podman check means: ID maps compared with the ledger, and Podman's
error text turned into a reason an administrator can act on; what marks a user's
Podman state, and the digest of a proof."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import errno
import hashlib
import json
import os
import stat

from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SubidFile

# Podman/containers-storage wording for "the image has owners beyond the user's map",
# old and new (containers/storage PR #747 changed it).
_TOO_FEW_IDS = (
    "there might not be enough ids available in the namespace",
    "potentially insufficient uids or gids available in user namespace",
    "insufficient uids or gids",
)
_NO_SUBIDS = ("no subuid ranges found", "no subgid ranges found", "cannot find mappings for user")
_HELPER_BROKEN = ("newuidmap: write to uid_map failed", "newgidmap: write to gid_map failed",
                  "should have setuid or have filecaps")


def parse_id_map(text):
    """``/proc/PID/uid_map`` text as a list of (inside, outside, count)."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            raise ValueError("not an ID map line: %r" % line)
        rows.append(tuple(int(f) for f in fields))
    return rows


def map_problems(rows, own_id, expected, kind="uid"):
    """Why the map Podman uses differs from ``expected`` (a list of (start, count)).

    Podman maps the user's own ID to 0 and the subordinate ranges after it, 1..N.
    Returns a list of messages; empty when the map is exactly as expected.
    """
    problems = []
    if not rows or rows[0] != (0, own_id, 1):
        problems.append("%s 0 should map to the user's own %s %d, the map is %s" % (kind, kind, own_id, rows))
    got = sorted((outside, count) for inside, outside, count in rows if inside != 0)
    want = sorted((start, count) for start, count in expected)
    if got != want:
        problems.append(
            "sub%s ranges in use are %s but the ledger says %s; if /etc/sub%s is right, run "
            "`podman system migrate` as the user" % (kind, _ranges_text(got), _ranges_text(want), kind))
    return problems


def highest_inside_id(rows):
    """The highest ID a process inside the namespace can use."""
    return max(inside + count - 1 for inside, outside, count in rows) if rows else 0


def explain_podman_error(text, user, total):
    """A reason an administrator can act on, from Podman's error output."""
    lower = text.lower()
    if any(marker in lower for marker in _TOO_FEW_IDS):
        return ("not enough subordinate IDs: the image has files owned by IDs above the %d that %s "
                "can map; give %s a larger count in subid_owners (e.g. 4194304 for owners up to "
                "4,000,000)" % (total, user, user))
    if any(marker in lower for marker in _NO_SUBIDS):
        return "%s has no subordinate ID ranges Podman can find (/etc/subuid, /etc/subgid)" % user
    if any(marker in lower for marker in _HELPER_BROKEN):
        return ("newuidmap/newgidmap cannot write the ID map: the helpers need the setuid bit or "
                "file capabilities (role fleetid.subid.uidmap checks this)")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # Podman 3.0 and 5.x end with a bare ": exit status 1"; the reason is on its Error: line.
    errors = [line for line in lines if line.startswith("Error:")]
    return errors[-1] if errors else lines[-1] if lines else "podman failed without a message"


def _ranges_text(pairs):
    return ", ".join("%d+%d" % pair for pair in pairs) or "none"


def podman_argv(user, podman, options, args):
    """Podman as ``user`` from root: runuser sets HOME and USER; root's runtime dir and
    session bus must not leak in (Podman would use root's and fail)."""
    return (["runuser", "-u", user, "--", "env", "-u", "XDG_RUNTIME_DIR", "-u", "DBUS_SESSION_BUS_ADDRESS", podman]
            + list(options) + list(args))


# What marks a user's rootless Podman state, the things `podman system migrate` acts on:
# the user's containers (in their storage) and the pause process that holds the user
# namespace built from /etc/subuid and /etc/subgid. A user with neither has never run
# Podman here, or was reset, and has nothing to migrate.
#  - storage (graphroot): $XDG_DATA_HOME/containers/storage, by default
#    ~/.local/share/containers/storage; or the graphroot of ~/.config/containers/storage.conf;
#    or rootless_storage_path of the system storage.conf ($HOME, $UID, $USER expanded).
#  - a live process of the user in another user namespace than PID 1's: the pause
#    process or a running container. It also catches storage in places root cannot know
#    of (an XDG_DATA_HOME set only in the user's session) while anything runs.
# Runtime folders (/run/user/UID/containers, /tmp/podman-run-UID, /tmp/containers-user-UID)
# do not count: they outlive the pause process and even the account, and UIDs are
# reused, so they say nothing the two marks above do not.
SYSTEM_STORAGE_CONFS = ("/etc/containers/storage.conf", "/usr/share/containers/storage.conf")


def _toml_string(text, key):
    """The last ``key = "value"`` of a storage.conf (a plain line scan: the keys we read
    are simple strings, and a full TOML parser is not on every host)."""
    value = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(key):
            name, sep, rest = line.partition("=")
            rest = rest.strip()
            if sep and name.strip() == key and len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "\"'":
                value = rest[1:-1]
    return value


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return ""


def storage_paths(name, uid, home, system_confs=SYSTEM_STORAGE_CONFS):
    """Where this user's rootless container storage can live, most specific first."""
    paths = []
    user_root = _toml_string(_read(os.path.join(home, ".config", "containers", "storage.conf")), "graphroot")
    if user_root:
        paths.append(os.path.join(home, user_root[2:]) if user_root.startswith("~/") else user_root)
    for conf in system_confs:
        text = _read(conf)
        if text:
            rootless = _toml_string(text, "rootless_storage_path")
            if rootless:
                paths.append(rootless.replace("$HOME", home).replace("$UID", str(uid)).replace("$USER", name))
            break  # the first system storage.conf found is the one Podman reads
    paths.append(os.path.join(home, ".local", "share", "containers", "storage"))
    return paths


def _initial_namespace(proc):
    """The user namespace the others are told from: PID 1's, or where a sandbox hides
    PID 1's links, our own (root's, in the host's namespace)."""
    for pid in ("1", "self"):
        try:
            return os.readlink(os.path.join(proc, pid, "ns", "user"))
        except OSError:
            continue
    return None


def namespaced_owners(proc="/proc"):
    """UIDs that own a process in another user namespace than PID 1's (a pause process
    or a container), from one pass over /proc."""
    init_ns = _initial_namespace(proc)
    if init_ns is None:
        return set()
    owners = set()
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            ns = os.readlink(os.path.join(proc, entry, "ns", "user"))
            uid = os.stat(os.path.join(proc, entry)).st_uid
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if ns != init_ns:
            owners.add(uid)
    return owners


def user_namespaces(proc="/proc"):
    """Every user namespace other than PID 1's with processes in it, from one pass over
    /proc: [{"ns", "pids", "uid", "comm", "uid_map", "gid_map"}], the maps as
    (inside, outside, count) rows read from its first process. A process that ends
    meanwhile is skipped."""
    init_ns = _initial_namespace(proc)
    if init_ns is None:
        return []
    found = collections.OrderedDict()
    for entry in sorted((e for e in os.listdir(proc) if e.isdigit()), key=int):
        where = os.path.join(proc, entry)
        try:
            ns = os.readlink(os.path.join(where, "ns", "user"))
            if ns == init_ns:
                continue
            if ns in found:
                found[ns]["pids"].append(int(entry))
                continue
            uid = os.stat(where).st_uid
            with open(os.path.join(where, "uid_map")) as handle:
                uid_map = parse_id_map(handle.read())
            with open(os.path.join(where, "gid_map")) as handle:
                gid_map = parse_id_map(handle.read())
            with open(os.path.join(where, "comm")) as handle:
                comm = handle.read().strip()
        except (OSError, ValueError):  # gone meanwhile
            continue
        found[ns] = {"ns": ns, "pids": [int(entry)], "uid": uid, "comm": comm, "uid_map": uid_map, "gid_map": gid_map}
    return list(found.values())


def podman_state(name, uid, home, in_namespace, system_confs=SYSTEM_STORAGE_CONFS):
    """Evidence that ``name`` has rootless Podman state to migrate: a list of reasons,
    empty when there is none. ``in_namespace``: the UIDs from namespaced_owners()."""
    evidence = ["storage %s" % path for path in storage_paths(name, uid, home, system_confs)
                if os.path.isdir(path)]
    if uid in in_namespace:
        evidence.append("processes in a user namespace (pause process or containers)")
    return evidence


def docker_remap_root(subuid, subgid, docker_root="/var/lib/docker"):
    """Where dockerd --userns-remap keeps its data for the first ranges of ``dockremap``
    (``[start, count]`` lists): /var/lib/docker/UID.GID, or None when there is none."""
    if not subuid or not subgid:
        return None
    path = os.path.join(docker_root, "%d.%d" % (subuid[0][0], subgid[0][0]))
    return path if os.path.isdir(path) else None


def proof_digest(facts):
    """SHA-256 of what a rootless proof proved: the user, the maps, the image and options."""
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shadow_ranges(path, keys):
    """What shadow grants each of ``keys`` (names and numeric UIDs) in the subuid/subgid
    file ``path``, read exactly as shadow reads it (a NUL byte on the line before joins
    that line to it, so its owner gets nothing): {key: [(start, count), ...]}, and the
    raw lines behind them. A missing file grants nothing; an unreadable one raises OSError."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return {}, {}
    subid_file = SubidFile(path, text)
    granted, raw = {}, {}
    if subid_file.unreadable is not None:  # shadow refuses the whole file
        return granted, raw
    for entry in subid_file.entries:
        if entry.owner in keys and not entry.ignored and entry.range is not None:
            granted.setdefault(entry.owner, []).append((entry.range.start, entry.range.count))
    for number, line in enumerate(subid_file.lines, 1):
        key = line.split(":", 1)[0]
        if key in keys:
            raw.setdefault(key, []).append(line.rstrip("\n"))
    return granted, raw


# The Podman configuration a rootless run reads, besides the user's own under
# ~/.config/containers: a change here or there can break a user's Podman.
_SYSTEM_CONFIG = ("/etc/containers", "/usr/share/containers")
_CONFIG_FILES = ("containers.conf", "storage.conf", "registries.conf", "policy.json", "mounts.conf")
_CONFIG_LIMIT = 1 << 20


def config_digest(home, system_dirs=_SYSTEM_CONFIG):
    """SHA-256 of the Podman configuration files a user's run reads (the user's and the
    system's, and the drop-in folders). Read as root from a folder the user controls, so
    nothing is followed: a symbolic link counts as its target's name, anything but a
    regular file as its type, and a file over 1 MiB by its size and time."""
    digest = hashlib.sha256()
    for folder in [os.path.join(home, ".config", "containers")] + list(system_dirs):
        names = list(_CONFIG_FILES)
        for dropins in ("containers.conf.d", "registries.conf.d"):
            try:
                names += sorted(os.path.join(dropins, n) for n in os.listdir(os.path.join(folder, dropins)))
            except OSError:
                pass
        for name in names:
            digest.update(("\0%s\0%s\0" % (folder, name)).encode("utf-8", "surrogateescape"))
            digest.update(_config_fingerprint(os.path.join(folder, name)))
    return digest.hexdigest()


def _config_fingerprint(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            try:
                return b"link:" + os.fsencode(os.readlink(path))
            except OSError:
                return b"link?"
        return b"absent" if exc.errno in (errno.ENOENT, errno.ENOTDIR) else b"error:%d" % exc.errno
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            return b"type:%o" % stat.S_IFMT(st.st_mode)
        if st.st_size > _CONFIG_LIMIT:
            return b"large:%d:%d" % (st.st_size, st.st_mtime_ns)
        return hashlib.sha256(handle.read(_CONFIG_LIMIT)).digest()


# The argument spec of the options documented by doc fragment fleetid.subid.rootless.
PODMAN_SPEC = {"podman_options": {"type": "list", "elements": "str", "default": []}}
