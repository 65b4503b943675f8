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
  - Lines are read exactly the way shadow 4.13 reads them. Only C(\n) ends a line, and numbers
    are C(strtoul) base 0 in a 64-bit unsigned long, so they may be octal (C(0100000)), hex
    (C(0x186a0)) or signed (C(-0) is 0). The range is C(start) to C(start+count-1) in the same
    arithmetic, so C(bob:0:0) grants bob every ID and C(bob:100000:4294967295) every ID from
    100000. A NUL byte hides the rest of its line and joins it with the next line, as
    shadow's C(fgets) and C(strrchr) do.
  - Every line that shadow reads as a listed owner's line is that owner's line. With
    O(state=present) all of them are replaced by the given ranges, and with O(state=absent)
    all of them are removed, including lines that give the owner root (C(alice:-0:65536)),
    IDs below O(floor) or IDs past 2^32-1.
  - Another owner's line counts with the IDs shadow grants from it when overlaps are checked.
    A line that shadow ignores, such as a line ending in CR, still counts as taken.
  - Refuses a file that shadow cannot read at all (a NUL byte before the newline of its last
    line), and any edit after which shadow would read a line other than as intended
    (lines appended after a NUL byte).
  - The lines this module writes are plain C(owner:start:count) with a named owner and end
    in C(\n). It refuses a numeric owner name for O(state=present), because several tools
    match owners by name only.
  - Refuses a path that is a symbolic link or not a regular file, as shadow does, without
    reading through it. Refuses files in a folder that users other than root (or the user
    running the module) can write, even with the sticky bit, and under folders that such
    users could replace.
  - Both files are checked before either is written. The writes follow shadow-utils'
    protocol from C(lib/commonio.c). The module first takes the account-database lock,
    which is glibc's C(lckpwdf) on C(/etc/.pwd.lock). It then creates C(<file>.lock)
    as a hard link to a file that holds its PID. A stale lock whose process is gone is
    removed. Both locks are held from the read to the rename, so a concurrent C(useradd),
    C(usermod) or C(userdel) cannot interleave.
  - Lock files are created with C(O_EXCL) and C(O_NOFOLLOW). After each lock is taken, and again
    before each file is replaced, the module checks that the lock file is still the one it
    locked. If the lock file was removed or replaced, another program may be writing, so the
    module fails and writes nothing more. C(<file>.<pid>) files left by killed processes are
    removed.
  - For files outside C(/etc), for example in a chroot, an image or a test folder, the
    account-database lock is an fcntl lock on C(.pwd.lock) in the file's own folder. That
    is the lock C(useradd --root) takes inside that root. The same fcntl lock on
    C(/etc/.pwd.lock) is used when libc has no C(lckpwdf), as with musl.
  - The new file is a temporary file C(.<name>.fleetid-new) in the same folder. It is flushed
    to disk and renamed over the old one, and then the folder is flushed. Owner, mode and
    SELinux context are kept. A new file is created as 0644 root:root. A temporary file left
    by a killed run is removed by the next run.
  - When both files change, both temporary files are written first. A journal
    C(.<subuid name>.fleetid-journal) beside the subuid file is then written to disk. It holds
    digests of the new content of both files, and hard links C(.<name>.fleetid-old) keep both
    old files. The subuid file is renamed, then the subgid file, and then the journal and the
    links are removed. If renaming the
    subgid file fails, the subuid file is rolled back before the module fails. If the run is
    killed between the two renames, the next run finds the journal. When the subuid file is
    new and the subgid file is old, the next run rolls the subuid file back, reports this in
    RV(repaired) and as a warning, and then does its own work.
    M(fleetid.subid.subid_info) reports the journal as finding V(interrupted_write).
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
extends_documentation_fragment:
  - fleetid.subid.subid_paths
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
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
repaired:
  description:
    - What this run repaired before its own work, after an earlier run was interrupted between
      writing the subuid and the subgid file. In check mode, what a real run would repair.
    - Also a file whose last line had no newline. Shadow 4.19 and later refuse such a file as a whole
      (C(getsubids), C(useradd) and C(newuidmap) fail for every owner), so every write ends the file
      with one.
    - A repair counts as a change.
  returned: always
  type: list
  elements: str
  sample: ["/etc/subuid was rolled back to its content before an interrupted run, which had replaced it but not /etc/subgid"]
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
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils._accounts import account, aliases_of
from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError
from ansible_collections.fleetid.subid.plugins.module_utils._getent import host_ids
from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import (
    SubidError,
    check_edit,
    desired_entries,
    edit_text,
    line_changes,
    owners_to_remove,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SUBID_PATHS_SPEC
from ansible_collections.fleetid.subid.plugins.module_utils._subid_transaction import SubidTransaction
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import DEFAULT_FLOOR
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import check_folder, read_regular, subid_locks

KINDS = {"subuid": ("passwd", "UID"), "subgid": ("group", "GID")}


def with_owner_ids(ids, names, own):
    """``ids``/``names`` plus the owners' own IDs (name -> UID or GID)."""
    extra = {some_id: name for name, some_id in own.items() if some_id not in names}
    if not extra:
        return ids, names
    merged = dict(extra)
    merged.update(names)
    return sorted(set(ids) | set(extra)), merged


def read_text(path):
    """The file's text; "" when it does not exist. A symbolic link is refused, as shadow does."""
    data = read_regular(path)
    return "" if data is None else data.decode("utf-8", "surrogateescape")


def plan(module, kind, path, items, cache=None, previous=None):
    """The Edit of one file; raises SubidError on any refusal. Reads the file: call it
    with the locks held when the result will be written. ``cache``: see account();
    ``previous``: the Edit of the other file, whose search and reading are reused when the texts match."""
    params = module.params
    remove = params["state"] == "absent"
    if remove:
        wanted = owners_to_remove(items, kind, path)
    else:
        wanted = desired_entries(items, params["floor"], kind, path)
    edit = edit_text(path, read_text(path), wanted, lambda owner: aliases_of(owner, cache), remove=remove,
                     previous=previous)
    if remove or not edit.changed:
        return edit
    database, word = KINDS[kind]
    ids, names, own = [], {}, {}
    if previous is not None:
        edit.share_reading(previous)
    if params["check_host_ids"]:
        ids, names = host_ids(module, database)
        for name in wanted:
            entry = account(name, cache)
            if entry is not None:
                own[name] = entry.pw_uid if kind == "subuid" else entry.pw_gid
        # Owners resolved by name count as host IDs too: a directory that is not
        # enumerated (SSSD's enumerate = false) is missing from getent's listing.
        ids, names = with_owner_ids(ids, names, own)
    check_edit(edit, ids, word, own_ids=own, id_names=names)
    return edit


def report(plans, items_of, cache):
    """The result's ``files``, ``subuid``, ``subgid`` and ``changed_owners``, and the diffs,
    from the planned edits (``items_of[kind]``: the module's input for that file)."""
    result = {"files": {}, "subuid": [], "subgid": []}
    diffs, changed_owners = [], set()
    for kind, edit in plans:
        added, removed = line_changes(edit)
        result["files"][kind] = {"path": edit.path, "changed": edit.changed, "added": added, "removed": removed}
        result[kind] = [{"name": name, "start": rng.start, "count": rng.count} for name, rng, line in edit.listed]
        diffs.append({"before_header": edit.path, "after_header": edit.path, "before": edit.old, "after": edit.new})
        if edit.changed:
            fields = {line.split(":", 1)[0] for line in added + removed}
            changed_owners.update(item["name"] for item in items_of[kind] if aliases_of(item["name"], cache) & fields)
    result["changed_owners"] = sorted(changed_owners)
    return result, diffs


def keep_selinux_context(module):
    """A function that gives a temp file the SELinux context of the file it replaces."""
    def keep(tmp, path):
        if module.selinux_enabled():
            module.set_context_if_different(tmp, module.selinux_context(path), False)
    return keep


def apply(module):
    """The module's work: returns the result dict and the diffs, or raises a FleetidError
    (SubidError, LockError, GetentError) or an OSError having written nothing (a refusal is found before
    either file is written; a failure after the first rename rolls it back)."""
    params = module.params
    targets = [(kind, params[kind + "_path"], params[kind]) for kind in ("subuid", "subgid") if params[kind]]
    result = {"changed": False, "changed_owners": [], "files": {}, "backup_files": [],
              "subuid": [], "subgid": [], "repaired": []}
    if params["floor"] < 1:
        raise SubidError("floor must be at least 1: ID 0 is root")
    if not targets:
        return result, []
    transaction = SubidTransaction(params["subuid_path"], params["subgid_path"], keep_selinux_context(module))
    # After an interrupted run both files may need repair, whichever this run writes.
    paths = [transaction.first, transaction.second] if transaction.interrupted() else [p for k, p, i in targets]
    for path in paths:
        check_folder(path)
    # Check mode only reads (the files are always replaced by rename, so a read is never
    # torn) and takes no lock, which would create lock files. Otherwise the locks are held
    # from the read through the write, so useradd cannot change a file in between.
    locks = contextlib.nullcontext() if module.check_mode else subid_locks(paths, params["lock_timeout"])
    with locks as held:
        result["repaired"] = transaction.recover(paths, module.check_mode, module.warn)
        # Plan both files before writing either: a refusal writes nothing at all.
        cache = {}  # owner field -> pwd entry, for this run (the locks keep useradd out)
        plans = []
        for kind, path, items in targets:
            plans.append((kind, plan(module, kind, path, items, cache, plans[-1][1] if plans else None)))
        planned, diffs = report(plans, params, cache)
        result.update(planned)
        for kind, edit in plans:
            if edit.old and not edit.old.endswith("\n"):
                note = ("%s ended without a newline, for which shadow 4.19 and later refuse the whole file; %s"
                        % (edit.path, "a real run adds it" if module.check_mode else "this run added it"))
                result["repaired"].append(note)
                module.warn(note)
        result["changed"] = any(edit.changed for kind, edit in plans) or bool(result["repaired"])
        edits = [edit for kind, edit in plans if edit.changed]
        if edits and not module.check_mode:
            if params["backup"]:
                for kind, edit in plans:
                    if edit.changed and os.path.exists(edit.path):
                        result["files"][kind]["backup_file"] = module.backup_local(edit.path)
                        result["backup_files"].append(result["files"][kind]["backup_file"])
            transaction.install(edits, held)
    if result["backup_files"]:
        result["backup_file"] = result["backup_files"][0]
    return result, diffs


ARGUMENT_SPEC = dict(SUBID_PATHS_SPEC, **{
    "subuid": {"type": "list", "elements": "dict", "default": []},
    "subgid": {"type": "list", "elements": "dict", "default": []},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    "floor": {"type": "int", "default": DEFAULT_FLOOR},
    "check_host_ids": {"type": "bool", "default": True},
    "backup": {"type": "bool", "default": False},
    "lock_timeout": {"type": "float", "default": 15.0},
})


def build_module():
    return AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)


def main():
    module = build_module()
    try:
        result, diffs = apply(module)
    except FleetidError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.filename or "subid files", exc.strerror or exc))
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
