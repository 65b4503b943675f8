# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shift an owner's rootless container storage from its old subordinate ranges to new ones.

Inside a rootless container, ID k > 0 is the k-th ID of the owner's ranges, counted through
its /etc/subuid lines in file order (ID 0 is the owner's own UID, which does not move). Files
in the storage are owned on the host by those subordinate IDs, so moving the ranges without
the files shows every file as nobody (65534) in the container. The shift gives each file
owned by the k-th old ID the k-th new ID, UID and GID apart, so every container sees the
same owners after the move.

A shift is resumable: a manifest (one file per owner in the journal folder, written
durably before the first file changes) lists each file to change with its old and its new
owner. A run finds each file at the one or the other and changes only those still at the
old owner, so a shift killed in the middle is finished by the next run, even where the old
and the new ranges overlap and an ID alone could not tell. The manifest is removed only
once the owner's lines hold the new ranges.

Root walks a tree its user controls: the storage root is opened component by component
without following links and must be owned by the owner; the walk (os.fwalk) never follows
links, never leaves the root's file system, and changes files through their folder's
descriptor, so no link planted meanwhile leads it elsewhere.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import stat

from ansible_collections.fleetid.subid.plugins.module_utils._durable import fsync_dir, replace_file

JOURNAL_DIR = "/var/lib/fleetid-subid/shifts"
_CAPS = "security.capability"


class ShiftError(Exception):
    """A shift that cannot be done as asked; the message names the owner and the cause."""


class IdShift:
    """The map from an owner's old ranges to its new ones, by position in the map."""

    def __init__(self, old, new):
        self.old = [(int(s), int(c)) for s, c in old]
        self.new = [(int(s), int(c)) for s, c in new]
        self.segments = []  # (old_start, old_end, delta): old ID + delta is its new ID
        index, offset = 0, 0  # where in self.new the next old ID lands
        for start, count in self.old:
            while count and index < len(self.new):
                new_start, new_count = self.new[index]
                take = min(count, new_count - offset)
                self.segments.append((start, start + take, new_start + offset - start))
                start, count, offset = start + take, count - take, offset + take
                if offset == new_count:
                    index, offset = index + 1, 0

    def in_old(self, value):
        return any(start <= value < start + count for start, count in self.old)

    def __call__(self, value):
        """The new ID of ``value``; ``value`` itself when it is not an old ID; None when it
        is an old ID past the end of the new map."""
        for start, end, delta in self.segments:
            if start <= value < end:
                return value + delta
        return None if self.in_old(value) else value


def open_root(path, owner_uid):
    """A descriptor of the storage root ``path``, its links resolved first and then each
    component opened without following links (a link swapped in meanwhile fails); the
    root must be owned by the owner."""
    real = os.path.realpath(path)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in [p for p in real.split("/") if p]:
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise ShiftError("%s: cannot open %s without following a link: %s" % (path, part, exc.strerror))
            os.close(fd)
            fd = child
        owner = os.fstat(fd).st_uid
        if owner != owner_uid:
            raise ShiftError("%s (%s) is owned by UID %d, not by the owner's UID %d: not that owner's storage, "
                             "nothing shifted" % (path, real, owner, owner_uid))
        return fd
    except BaseException:
        os.close(fd)
        raise


def _walk(root_fd):
    """(relative path, name, folder descriptor, lstat) of the root and everything under it
    on the root's file system; folders on other file systems are reported and not entered."""
    root_st = os.fstat(root_fd)
    yield ".", None, root_fd, root_st
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
        keep = []
        for name in dirnames + filenames:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode) and name in dirnames:
                if st.st_dev != root_st.st_dev:
                    raise ShiftError("%s is another file system mounted inside the storage (a container still "
                                     "mounted?): unmount it first" % os.path.normpath(os.path.join(dirpath, name)))
                keep.append(name)
            yield os.path.normpath(os.path.join(dirpath, name)), name, dir_fd, st
        dirnames[:] = keep


def scan(root_fd, uid_shift, gid_shift):
    """The files under the root owned by an old ID: [[path, uid, gid, new_uid, new_gid]],
    and those owned by an old ID past the new map's end."""
    entries, lost = [], []
    for rel, _name, _dir_fd, st in _walk(root_fd):
        if not (uid_shift.in_old(st.st_uid) or gid_shift.in_old(st.st_gid)):
            continue
        new_uid, new_gid = uid_shift(st.st_uid), gid_shift(st.st_gid)
        if new_uid is None or new_gid is None:
            lost.append(rel)
            continue
        if (new_uid, new_gid) != (st.st_uid, st.st_gid):
            entries.append([rel, st.st_uid, st.st_gid, new_uid, new_gid])
    return entries, lost


def _chown(name, dir_fd, st, uid, gid):
    """Give one file a new owner, keeping what chown takes away: the set-ID bits and file
    capabilities of a regular file or folder (the kernel clears them on chown)."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
        return
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOATIME", 0)
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise ShiftError("%s changed during the shift" % name)
        try:
            caps = os.getxattr(fd, _CAPS)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
            caps = None
        os.fchown(fd, uid, gid)
        os.fchmod(fd, stat.S_IMODE(now.st_mode))
        if caps is not None:
            os.setxattr(fd, _CAPS, caps)
    finally:
        os.close(fd)


def apply(root_fd, entries):
    """Give each listed file its new owner. A file already at its new owner is done; one at
    neither its old nor its new owner changed meanwhile and is reported, not touched.
    Returns (changed, already, gone, conflicts)."""
    todo = {entry[0]: entry for entry in entries}
    changed = already = 0
    conflicts = []
    seen = set()
    for rel, name, dir_fd, st in _walk(root_fd):
        entry = todo.get(rel)
        if entry is None:
            continue
        seen.add(rel)
        _rel, old_uid, old_gid, new_uid, new_gid = entry
        if (st.st_uid, st.st_gid) == (new_uid, new_gid):
            already += 1
            continue
        if st.st_uid not in (old_uid, new_uid) or st.st_gid not in (old_gid, new_gid):
            conflicts.append("%s is owned by %d:%d, neither the old %d:%d nor the new %d:%d" % (
                rel, st.st_uid, st.st_gid, old_uid, old_gid, new_uid, new_gid))
            continue
        if name is None:  # the root itself
            os.fchown(root_fd, new_uid, new_gid)
            os.fchmod(root_fd, stat.S_IMODE(st.st_mode))
        else:
            _chown(name, dir_fd, st, new_uid, new_gid)
        changed += 1
    return changed, already, len(todo) - len(seen), conflicts


def _journal_path(journal_dir, uid):
    return os.path.join(journal_dir, "uid-%d.json" % uid)


def _safe_journal_dir(journal_dir, create):
    """The journal folder, a real folder owned by root and closed to others."""
    try:
        st = os.lstat(journal_dir)
    except FileNotFoundError:
        if not create:
            return None
        os.makedirs(journal_dir, 0o700)
        st = os.lstat(journal_dir)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise ShiftError("%s must be a folder owned by root and writable by root alone" % journal_dir)
    return journal_dir


def read_manifest(journal_dir, uid):
    """The manifest of an interrupted shift of UID ``uid``, or None."""
    if _safe_journal_dir(journal_dir, create=False) is None:
        return None
    try:
        with open(_journal_path(journal_dir, uid), "rb") as handle:
            return json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ShiftError("%s is not a readable shift manifest (%s): inspect it, then remove it"
                         % (_journal_path(journal_dir, uid), exc))


def pending_shifts(journal_dir=JOURNAL_DIR):
    """{owner: manifest header} of every shift begun and not closed on this host."""
    found = {}
    if _safe_journal_dir(journal_dir, create=False) is None:
        return found
    for entry in sorted(os.listdir(journal_dir)):
        if entry.startswith("uid-") and entry.endswith(".json") and entry[4:-5].isdigit():
            manifest = read_manifest(journal_dir, int(entry[4:-5]))
            if manifest is not None:
                found[manifest["owner"]] = {k: manifest[k] for k in ("owner", "uid", "subuid", "subgid", "begun")}
    return found


def write_manifest(journal_dir, manifest):
    _safe_journal_dir(journal_dir, create=True)
    path = _journal_path(journal_dir, manifest["uid"])
    replace_file(path, json.dumps(manifest, sort_keys=True).encode("utf-8"), default_mode=0o600)
    return path


def remove_manifest(journal_dir, uid):
    path = _journal_path(journal_dir, uid)
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path)
    return True
