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
  - Both files are checked before either is written. Each write holds shadow-utils' locks,
    which are glibc's C(lckpwdf()) and C(<file>.lock), so a concurrent C(useradd) or
    C(usermod) cannot interleave. The new file is a temporary file in the same folder that is
    flushed to disk and renamed over the old one. Owner, mode and SELinux context are kept.
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
    description: Seconds to wait for C(<file>.lock). glibc waits up to 15 s for C(/etc/.pwd.lock) on its own.
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
    Role M(fleetid.subid.subids) does this through a handler.
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
changed_owners:
  description: Owners whose lines changed, or would change in check mode, in either file.
  returned: always
  type: list
  elements: str
  sample: [alice]
files:
  description: What changed in each file.
  returned: always
  type: dict
  contains:
    subuid:
      description: For the subuid file, C(path), C(changed), C(added) and C(removed) lines.
      type: dict
    subgid:
      description: For the subgid file, like RV(files.subuid).
      type: dict
  sample:
    subuid: {path: /etc/subuid, changed: true, added: ["alice:100000:65536"], removed: []}
    subgid: {path: /etc/subgid, changed: false, added: [], removed: []}
backup_files:
  description: Backup copies made by this run, when O(backup=true).
  returned: changed and backup requested
  type: list
  elements: str
  sample: [/etc/subuid.12345.2026-11-24@10:00:00~]
"""

import contextlib
import grp
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import (
    LockError,
    file_lock,
    fsync_dir,
    pwd_lock,
    write_durably,
)
from ansible_collections.fleetid.subid.plugins.module_utils.subid_file import (
    SubidError,
    check_edit,
    desired_entries,
    edit_text,
    owners_to_remove,
)


def aliases_of(owner):
    """Every owner field that means this account: its name and its numeric UID."""
    aliases = {owner}
    try:
        entry = pwd.getpwuid(int(owner)) if owner.isdigit() else pwd.getpwnam(owner)
        aliases.update((entry.pw_name, str(entry.pw_uid)))
    except KeyError:
        pass
    return aliases


def host_ids(module, database):
    """Sorted IDs from ``getent passwd`` or ``getent group`` (the third field)."""
    getent = module.get_bin_path("getent")
    if getent is None:
        entries = pwd.getpwall() if database == "passwd" else grp.getgrall()
        return sorted({e[2] for e in entries})
    rc, out, err = module.run_command([getent, database], environ_update={"LC_ALL": "C"})
    if rc not in (0, 2):  # 2: nothing to enumerate
        module.fail_json(msg="getent %s failed: %s" % (database, err.strip()))
    ids = set()
    for line in out.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            ids.add(int(fields[2]))
    return sorted(ids)


def read_text(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return ""


def plan_file(module, kind, path, items):
    """The Edit of one file; raises SubidError on any refusal."""
    params = module.params
    remove = params["state"] == "absent"
    if remove:
        wanted = owners_to_remove(items, kind)
    else:
        wanted = desired_entries(items, params["floor"], kind)
    edit = edit_text(path, read_text(path), wanted, aliases_of, remove=remove)
    if not remove and edit.new != edit.old:
        ids = host_ids(module, "passwd" if kind == "subuid" else "group") if params["check_host_ids"] else []
        check_edit(edit, ids, "UID" if kind == "subuid" else "GID")
    return edit


def line_changes(old, new):
    before, after = old.splitlines(), new.splitlines()
    old_set, new_set = set(before), set(after)
    return [line for line in after if line not in old_set], [line for line in before if line not in new_set]


def main():
    module = AnsibleModule(
        argument_spec={
            "subuid": {"type": "list", "elements": "dict", "default": []},
            "subgid": {"type": "list", "elements": "dict", "default": []},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "subuid_path": {"type": "path", "default": "/etc/subuid"},
            "subgid_path": {"type": "path", "default": "/etc/subgid"},
            "floor": {"type": "int", "default": 1000},
            "check_host_ids": {"type": "bool", "default": True},
            "backup": {"type": "bool", "default": False},
            "lock_timeout": {"type": "float", "default": 15.0},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["floor"] < 1:
        module.fail_json(msg="floor must be at least 1: ID 0 is root")
    targets = [("subuid", params["subuid_path"], params["subuid"]),
               ("subgid", params["subgid_path"], params["subgid"])]
    targets = [t for t in targets if t[2]]

    result = {"changed": False, "changed_owners": [], "files": {}, "backup_files": []}
    diffs = []
    try:
        with contextlib.ExitStack() as locks:
            if not module.check_mode:  # a check only reads, and the files are replaced by rename
                locks.enter_context(pwd_lock())
                for kind, path, items in targets:
                    locks.enter_context(file_lock(path, params["lock_timeout"]))
            # Plan both files before writing either: a refusal writes nothing at all.
            plans = [(kind, plan_file(module, kind, path, items)) for kind, path, items in targets]
            changed_owners = set()
            for kind, edit in plans:
                added, removed = line_changes(edit.old, edit.new)
                result["files"][kind] = {"path": edit.path, "changed": edit.old != edit.new, "added": added,
                                         "removed": removed}
                if edit.old != edit.new:
                    fields = {line.split(":", 1)[0] for line in added + removed}
                    changed_owners.update(item["name"] for item in module.params[kind]
                                          if aliases_of(item["name"]) & fields)
                    diffs.append({"before_header": edit.path, "after_header": edit.path,
                                  "before": edit.old, "after": edit.new})
            result["changed_owners"] = sorted(changed_owners)
            result["changed"] = bool(diffs)
            if diffs and not module.check_mode:
                for kind, edit in plans:
                    if edit.old == edit.new:
                        continue
                    if params["backup"] and os.path.exists(edit.path):
                        result["backup_files"].append(module.backup_local(edit.path))
                    tmp = write_durably(edit.path, edit.new.encode("utf-8", "surrogateescape"))
                    module.atomic_move(tmp, edit.path, unsafe_writes=False)
                    fsync_dir(edit.path)
    except (SubidError, LockError) as exc:
        module.fail_json(msg=str(exc), **result)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "subid files", exc.strerror or exc), **result)
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
