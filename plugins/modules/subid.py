#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: subid
short_description: Set owners' ranges in /etc/subuid and /etc/subgid, safely
version_added: 0.1.0
description:
  - Gives the listed owners exactly the given subordinate UID and GID ranges. An owner may
    have several lines. Every other line stays byte for byte, including comments, blank
    lines and lines that shadow cannot parse.
  - An owner written as a numeric UID (C(1001:...)) is the same owner as the name that
    resolves to that UID. The owner's lines are rewritten where the first of them was,
    using the name as given.
  - Refuses, writes nothing, and names the file, line and range at fault when a listed range
    overlaps another owner's range, contains 0 or an ID below O(floor), or contains the UID
    (in subuid) or GID (in subgid) of a user or group the host knows (C(getent passwd) and
    C(getent group), so directory-service accounts that the host enumerates count too).
  - Refuses owner names that could break the file format. A name with C(:) or a newline
    could otherwise inject a line such as C(root:0:65536).
  - Lines are read the way shadow reads them. Only C(\n) ends a line, and numbers may be
    octal (C(0100000)) or hex (C(0x186a0)). A line that shadow ignores or reads in an unusual
    way, such as a line ending in CR, still counts as taken when overlaps are checked.
    The lines this module writes are plain C(owner:start:count) and end in C(\n), because
    shadow does not read a line that ends in CR.
  - Both files are checked before either is written. The writes follow shadow-utils'
    protocol from C(lib/commonio.c). The module first takes the account-database lock,
    which is glibc's C(lckpwdf) on C(/etc/.pwd.lock). It then creates C(<file>.lock)
    as a hard link to a file that holds its PID. A stale lock whose process is gone is
    removed. Both locks are held from the read to the rename, so a concurrent C(useradd),
    C(usermod) or C(userdel) cannot interleave.
  - For files outside C(/etc), for example in a chroot, an image or a test folder, the
    account-database lock is an fcntl lock on C(.pwd.lock) in the file's own folder. That
    is the lock C(useradd --root) takes inside that root. The same fcntl lock on
    C(/etc/.pwd.lock) is used when libc has no C(lckpwdf), as with musl.
  - The new file is a temporary file in the same folder. It is flushed to disk and renamed
    over the old one, and then the folder is flushed. Owner, mode and SELinux context are
    kept. A new file is created as 0644 root:root.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  subuid:
    description:
      - Entries for C(/etc/subuid), each C({name, start, count}), as returned by
        M(fleetid.subid.allocate).
      - With O(state=absent), only C(name) is needed.
    type: list
    elements: dict
    default: []
  subgid:
    description: Entries for C(/etc/subgid), like O(subuid).
    type: list
    elements: dict
    default: []
  state:
    description:
      - V(present) gives the listed owners exactly these ranges.
      - V(absent) removes every line of the listed owners, in name or numeric form.
    type: str
    choices: [present, absent]
    default: present
  subuid_path:
    description: Path of the subuid file. Tests and chroots point elsewhere.
    type: path
    default: /etc/subuid
  subgid_path:
    description: Path of the subgid file.
    type: path
    default: /etc/subgid
  floor:
    description: Lowest ID a range may contain. It must be at least 1, because ID 0 is root.
    type: int
    default: 1000
  check_host_ids:
    description:
      - Refuse ranges that contain an ID of a host user (subuid) or group (subgid).
      - Turn off only for files that are not this host's, such as a chroot's.
    type: bool
    default: true
  backup:
    description: Keep a timestamped copy of each file before changing it.
    type: bool
    default: false
  lock_timeout:
    description:
      - Seconds to wait for a live holder of C(<file>.lock), and of C(.pwd.lock) outside C(/etc).
      - For C(/etc/.pwd.lock), glibc's C(lckpwdf) waits up to 15 s on its own.
    type: float
    default: 15
attributes:
  check_mode:
    support: full
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    support: full
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    support: full
    platforms: posix
    description: Target OS/families that can be operated against.
notes:
  - The files are written even when C(/etc/nsswitch.conf) names a C(subid:) source other than files.
    M(fleetid.subid.subid_info) reports that source.
  - After an owner's ranges change, rootless Podman needs C(podman system migrate) as that owner.
    Role P(fleetid.subid.subids#role) does this through a handler.
seealso:
  - module: fleetid.subid.allocate
  - module: fleetid.subid.subid_info
"""

EXAMPLES = r"""
- name: Give alice and bob their ranges
  fleetid.subid.subid:
    subuid:
      - {name: alice, start: 100000, count: 65536}
      - {name: bob, start: 165536, count: 4194304}
    subgid:
      - {name: alice, start: 100000, count: 65536}
      - {name: bob, start: 165536, count: 4194304}

- name: Apply what the allocator handed out, keeping backups
  fleetid.subid.subid:
    subuid: "{{ alloc.subuid }}"
    subgid: "{{ alloc.subgid }}"
    backup: true

- name: Remove a departed user's lines
  fleetid.subid.subid:
    subuid: [{name: carol}]
    subgid: [{name: carol}]
    state: absent
"""

RETURN = r"""
subuid:
  description:
    - The ranges the listed owners have in the subuid file after this run, or would have
      in check mode, in file order.
    - Empty with O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Owner, as given.
      type: str
    start:
      description: First ID of the range.
      type: int
    count:
      description: Number of IDs.
      type: int
  sample: [{name: alice, start: 100000, count: 65536}]
subgid:
  description: The same as RV(subuid), for the subgid file.
  returned: always
  type: list
  elements: dict
  sample: [{name: alice, start: 100000, count: 65536}]
changed_owners:
  description: Owners whose lines changed, or would change in check mode, in either file.
  returned: always
  type: list
  elements: str
  sample: [alice]
files:
  description: What changed in each file that had entries listed.
  returned: always
  type: dict
  contains:
    subuid:
      description:
        - For the subuid file, C(path), C(changed), C(added) lines and C(removed) lines.
        - Also C(backup_file) when a backup was made.
      type: dict
      returned: when O(subuid) is not empty
    subgid:
      description: For the subgid file, the same as RV(files.subuid).
      type: dict
      returned: when O(subgid) is not empty
  sample:
    subuid: {path: /etc/subuid, changed: true, added: ["alice:100000:65536"], removed: []}
    subgid: {path: /etc/subgid, changed: false, added: [], removed: []}
backup_files:
  description: Backup copies made by this run, when O(backup=true). The list is empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: [/etc/subuid.12345.2026-11-24@10:00:00~]
backup_file:
  description: The first of RV(backup_files), following the convention of single-file modules.
  returned: when a backup was made
  type: str
  sample: /etc/subuid.12345.2026-11-24@10:00:00~
diff:
  description: In diff mode, one entry for each file that had entries listed, with the whole old and new text.
  returned: diff mode
  type: list
  elements: dict
  contains:
    before_header:
      description: Path of the file.
      type: str
    after_header:
      description: Path of the file.
      type: str
    before:
      description: Old text.
      type: str
    after:
      description: New text.
      type: str
  sample:
    - {before_header: /etc/subuid, after_header: /etc/subuid, before: "", after: "alice:100000:65536\n"}
"""

import contextlib
import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils._durable import fsync_dir, write_durably
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import LockError, subid_locks
from ansible_collections.fleetid.subid.plugins.module_utils.subid_file import (
    SubidError,
    check_edit,
    desired_entries,
    edit_text,
    line_changes,
    owners_to_remove,
)

KINDS = {"subuid": ("passwd", "UID"), "subgid": ("group", "GID")}


def account(owner):
    """The pwd entry of an owner field (a name or a numeric UID), or None."""
    try:
        return pwd.getpwuid(int(owner)) if owner.isdigit() else pwd.getpwnam(owner)
    except (KeyError, OverflowError):
        return None


def aliases_of(owner):
    """Every owner field that means this account: its name and its numeric UID. A name
    without an account is matched only by itself."""
    entry = account(owner)
    return {owner} if entry is None else {owner, entry.pw_name, str(entry.pw_uid)}


def host_ids(module, database):
    """``(sorted IDs, {ID: name})`` from ``getent passwd`` or ``getent group``, so that
    directory-service accounts the host enumerates count too."""
    getent = module.get_bin_path("getent")
    if getent is None:
        entries = pwd.getpwall() if database == "passwd" else grp.getgrall()
        names = {}
        for e in entries:
            names.setdefault(e[2], e[0])
        return sorted(names), names
    rc, out, err = module.run_command([getent, database], environ_update={"LC_ALL": "C"})
    if rc not in (0, 2):  # 2: nothing to enumerate
        raise SubidError("getent %s failed (rc=%d): %s" % (database, rc, err.strip()))
    names = {}
    for line in out.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return sorted(names), names


def read_text(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return ""


def plan(module, kind, path, items):
    """The Edit of one file; raises SubidError on any refusal. Reads the file: call it
    with the locks held when the result will be written."""
    params = module.params
    remove = params["state"] == "absent"
    if remove:
        wanted = owners_to_remove(items, kind, path)
    else:
        wanted = desired_entries(items, params["floor"], kind, path)
    edit = edit_text(path, read_text(path), wanted, aliases_of, remove=remove)
    if not remove and edit.new != edit.old:
        database, word = KINDS[kind]
        ids, names, own = [], {}, {}
        if params["check_host_ids"]:
            ids, names = host_ids(module, database)
            for name in wanted:
                entry = account(name)
                if entry is not None:
                    own[name] = entry.pw_uid if kind == "subuid" else entry.pw_gid
        check_edit(edit, ids, word, own_ids=own, id_names=names)
    return edit


def install(module, edit):
    """Replace the file with ``edit.new``: a flushed temp file in the same folder with the
    old file's owner and mode, renamed over it by atomic_move (which keeps the SELinux
    context), then the folder flushed. A new file is 0644 root:root, as shadow makes it."""
    creating = not os.path.exists(edit.path)
    tmp = write_durably(edit.path, edit.new.encode("utf-8", "surrogateescape"))
    module.atomic_move(tmp, edit.path, unsafe_writes=False)
    if creating:
        os.chmod(edit.path, 0o644)
        if os.geteuid() == 0:
            os.chown(edit.path, 0, 0)
    fsync_dir(edit.path)


def apply(module):
    """The module's work: returns the result dict, or raises SubidError/LockError/OSError
    having written nothing (a refusal is found before either file is written)."""
    params = module.params
    targets = [(kind, params[kind + "_path"], params[kind]) for kind in ("subuid", "subgid") if params[kind]]
    result = {"changed": False, "changed_owners": [], "files": {}, "backup_files": [],
              "subuid": [], "subgid": []}
    diffs = []
    if params["floor"] < 1:
        raise SubidError("floor must be at least 1: ID 0 is root")
    if not targets:
        return result, diffs
    # Check mode only reads (the files are always replaced by rename, so a read is never
    # torn) and takes no lock, which would create lock files. Otherwise the locks are held
    # from the read through the write, so useradd cannot change a file in between.
    if module.check_mode:
        locks = contextlib.nullcontext()
    else:
        locks = subid_locks([path for kind, path, items in targets], params["lock_timeout"])
    with locks:
        # Plan both files before writing either: a refusal writes nothing at all.
        plans = [(kind, plan(module, kind, path, items)) for kind, path, items in targets]
        changed_owners = set()
        for kind, edit in plans:
            changed = edit.old != edit.new
            added, removed = line_changes(edit)
            result["files"][kind] = {"path": edit.path, "changed": changed, "added": added, "removed": removed}
            result[kind] = [{"name": name, "start": rng.start, "count": rng.count} for name, rng, line in edit.listed]
            diffs.append({"before_header": edit.path, "after_header": edit.path,
                          "before": edit.old, "after": edit.new})
            if changed:
                fields = {line.split(":", 1)[0] for line in added + removed}
                changed_owners.update(item["name"] for item in params[kind]
                                      if aliases_of(item["name"]) & fields)
        result["changed_owners"] = sorted(changed_owners)
        result["changed"] = any(f["changed"] for f in result["files"].values())
        if result["changed"] and not module.check_mode:
            for kind, edit in plans:
                if edit.old == edit.new:
                    continue
                if params["backup"] and os.path.exists(edit.path):
                    backup = module.backup_local(edit.path)
                    result["files"][kind]["backup_file"] = backup
                    result["backup_files"].append(backup)
                install(module, edit)
    if result["backup_files"]:
        result["backup_file"] = result["backup_files"][0]
    return result, diffs


ARGUMENT_SPEC = {
    "subuid": {"type": "list", "elements": "dict", "default": []},
    "subgid": {"type": "list", "elements": "dict", "default": []},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "subuid_path": {"type": "path", "default": "/etc/subuid"},
    "subgid_path": {"type": "path", "default": "/etc/subgid"},
    "floor": {"type": "int", "default": 1000},
    "check_host_ids": {"type": "bool", "default": True},
    "backup": {"type": "bool", "default": False},
    "lock_timeout": {"type": "float", "default": 15.0},
}


def build_module():
    return AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)


def main():
    module = build_module()
    try:
        result, diffs = apply(module)
    except (SubidError, LockError) as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "subid files", exc.strerror or exc))
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
