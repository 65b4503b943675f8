#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: storage_shift
short_description: Shift an owner's rootless container storage to new subordinate ID ranges
version_added: 0.1.0
description:
  - Inside a rootless container, ID k is the k-th ID of the owner's subordinate ranges, counted through the
    owner's lines in O(subuid_path) in file order. Writing other ranges for an owner who has container storage
    leaves its files owned by the old IDs, so they show as nobody (65534) in every container.
  - With O(state=shifted), run before the new lines are written, every file of the owner's storage owned by
    the k-th old ID (UID and GID apart) gets the k-th ID of O(shifts[].subuid) and O(shifts[].subgid). The
    old ranges are what the owner's lines grant now, read as shadow reads them. The set-ID bits and file
    capabilities that chown clears are put back. A file in the container sees the same owner after the move.
  - Refuses, and changes nothing, while any process of the owner runs in a user namespace or any namespace maps
    an ID of the old or the new ranges (stop the containers with C(podman stop --all), then
    C(podman system migrate)), when the storage root is not owned by the owner or is reached through a link
    swapped meanwhile, when another file system is mounted inside it (a container still mounted, or the
    subvolumes of the btrfs storage driver), and when a file is owned by an old ID past the end of the new
    ranges.
  - The storage is each place M(fleetid.subid.rootless_migrate) looks (C(graphroot) of the user's
    C(storage.conf), C(rootless_storage_path), C(~/.local/share/containers/storage)) that exists.
  - Resumable. Before the first file changes, a manifest under C(/var/lib/fleetid-subid/shifts) lists every
    file to change with its old and new owner. A run stopped in the middle is finished by the next, which
    changes only the files still at their old owner, even where the old and new ranges overlap.
    O(state=finished), run once the owner's lines hold the new ranges, removes the manifest.
    M(fleetid.subid.owners_info) reports manifests left behind, and M(fleetid.subid.allocate) finishes them.
  - Files outside the storage (a host folder bind-mounted into a container) and POSIX ACL entries that name
    container users are not shifted.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  shifts:
    description: The owners to shift, each with the ranges its lines will hold.
    type: list
    elements: dict
    required: true
    suboptions:
      owner:
        description: The owner, a local or directory account with a home.
        type: str
        required: true
      subuid:
        description: The owner's new subordinate UID ranges, C([start, count]) in the order they are written.
        type: list
        elements: list
        required: true
      subgid:
        description: The owner's new subordinate GID ranges.
        type: list
        elements: list
        required: true
  state:
    description:
      - V(shifted) shifts the storage (or finishes an interrupted shift).
      - V(finished) removes the manifests of the owners whose lines now hold the new ranges; it fails for an
        owner whose lines do not.
    type: str
    choices: [shifted, finished]
    default: shifted
extends_documentation_fragment:
  - fleetid.subid.subid_paths
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Walks the storage and reports the files that would change, writing nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Run it as root. The role C(fleetid.subid.subids) runs it for the owners listed in C(subid_move).
seealso:
  - module: fleetid.subid.rootless_migrate
  - module: fleetid.subid.allocate
"""

EXAMPLES = r"""
- name: Shift alice's storage from useradd's range to the ledger's
  fleetid.subid.storage_shift:
    shifts:
      - owner: alice
        subuid: [[1000000, 65536]]
        subgid: [[1000000, 65536]]

- name: Write the new lines
  fleetid.subid.subid:
    subuid: [{name: alice, start: 1000000, count: 65536}]
    subgid: [{name: alice, start: 1000000, count: 65536}]

- name: Close the shift
  fleetid.subid.storage_shift:
    shifts: [{owner: alice, subuid: [[1000000, 65536]], subgid: [[1000000, 65536]]}]
    state: finished
"""

RETURN = r"""
shifted:
  description: Each owner shifted (in check mode, that would be), with its ranges and the files changed.
  returned: always
  type: list
  elements: dict
  contains:
    owner: {description: The owner., type: str}
    subuid: {description: "C(from) and C(to): the old and the new UID ranges.", type: dict}
    subgid: {description: "C(from) and C(to): the old and the new GID ranges.", type: dict}
    storage: {description: The storage roots walked., type: list, elements: str}
    files: {description: "Files given a new owner by this run (in check mode: that would be).", type: int}
    already: {description: Files found at their new owner (a resumed shift)., type: int}
    gone: {description: Files of the manifest removed meanwhile., type: int}
    resumed: {description: Whether this run finished a shift an earlier run began., type: bool}
  sample:
    - owner: alice
      subuid: {from: [[165536, 65536]], to: [[1000000, 65536]]}
      subgid: {from: [[165536, 65536]], to: [[1000000, 65536]]}
      storage: [/home/alice/.local/share/containers/storage]
      files: 1893
      already: 0
      gone: 0
      resumed: false
finished:
  description: Owners whose manifest O(state=finished) removed.
  returned: always
  type: list
  elements: str
msg:
  description: One sentence per owner saying what was shifted.
  returned: always
  type: str
"""

import datetime
import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils._storage_shift import (
    JOURNAL_DIR,
    IdShift,
    ShiftError,
    apply,
    open_root,
    read_manifest,
    remove_manifest,
    scan,
    write_manifest,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SUBID_PATHS_SPEC, SubidFile
from ansible_collections.fleetid.subid.plugins.module_utils.rootless import (
    docker_remap_root,
    storage_paths,
    user_namespaces,
)
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import UnsafePathError, read_regular

SPEC = dict(SUBID_PATHS_SPEC, **{
    "shifts": {"type": "list", "elements": "dict", "required": True, "options": {
        "owner": {"type": "str", "required": True},
        "subuid": {"type": "list", "elements": "list", "required": True},
        "subgid": {"type": "list", "elements": "list", "required": True},
    }},
    "state": {"type": "str", "choices": ["shifted", "finished"], "default": "shifted"},
})


def _pairs(ranges):
    return [[int(start), int(count)] for start, count in ranges]


def granted(path, keys):
    """The ranges the lines of ``keys`` (an owner's name and UID) grant in ``path``, in file
    order, as shadow reads them."""
    data = read_regular(path)
    text = "" if data is None else data.decode("utf-8", "surrogateescape")
    subid_file = SubidFile(path, text)
    if subid_file.unreadable is not None:
        raise ShiftError("%s cannot be read as shadow reads it: %s" % (path, subid_file.unreadable))
    return [[e.range.start, e.range.count] for e in subid_file.entries
            if e.owner in keys and not e.ignored and e.range is not None]


def _text(ranges):
    return ", ".join("%d-%d" % (start, start + count - 1) for start, count in ranges) or "none"


def refuse_while_running(name, uid, ranges):
    """Refuse while a process of the owner runs in a user namespace, or any namespace maps
    an ID of ``ranges``: it could write files during the shift, or keep the old map."""
    spans = [(start, start + count) for start, count in ranges]
    busy = []
    for ns in user_namespaces():
        maps_range = any(outside < end and start < outside + count
                         for _inside, outside, count in ns["uid_map"] + ns["gid_map"] for start, end in spans)
        if ns["uid"] == uid or maps_range:
            busy.append("%s (PID %s)" % (ns["comm"], ", ".join(str(p) for p in ns["pids"][:5])))
    if busy:
        raise ShiftError("%s: not shifted, processes still run in user namespaces of %s or mapping its ranges: %s. "
                         "Stop them first (as %s: podman stop --all; podman system migrate)"
                         % (name, name, "; ".join(busy), name))


def _roots(name, account):
    seen, roots = set(), []
    for path in storage_paths(name, account.pw_uid, account.pw_dir):
        if os.path.isdir(path) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            roots.append(path)
    return roots


def plan(module, request, account):
    """The manifest for ``request``: an interrupted one to finish, or a new one from a walk."""
    name = request["owner"]
    keys = {name, str(account.pw_uid)}
    target = {"subuid": _pairs(request["subuid"]), "subgid": _pairs(request["subgid"])}
    manifest = read_manifest(JOURNAL_DIR, account.pw_uid)
    if manifest is not None:
        if [manifest[kind]["to"] for kind in ("subuid", "subgid")] != [target["subuid"], target["subgid"]]:
            raise ShiftError(
                "%s: a shift begun %s to UIDs %s, GIDs %s is not finished, and now UIDs %s, GIDs %s are asked "
                "for. Finish that one first (ask for its ranges again), or restore the files and remove %s"
                % (name, manifest["begun"], _text(manifest["subuid"]["to"]), _text(manifest["subgid"]["to"]),
                   _text(target["subuid"]), _text(target["subgid"]),
                   os.path.join(JOURNAL_DIR, "uid-%d.json" % account.pw_uid)))
        return manifest, True
    old = {kind: granted(module.params[kind + "_path"], keys) for kind in ("subuid", "subgid")}
    docker = docker_remap_root(old["subuid"], old["subgid"]) if name == "dockremap" else None
    if docker and old["subuid"] != target["subuid"]:
        raise ShiftError("dockremap: not moved, Docker's remapped data in %s is owned by the IDs of the current "
                         "range and is not shifted by this module (dockerd would start with empty storage in a new "
                         "folder). Keep the range (adopt it), or stop dockerd and remove that folder first" % docker)
    shifts = {kind: IdShift(old[kind], target[kind]) for kind in old}
    roots = {}
    for root in _roots(name, account):
        fd = open_root(root, account.pw_uid)
        try:
            entries, lost = scan(fd, shifts["subuid"], shifts["subgid"])
        finally:
            os.close(fd)
        if lost:
            raise ShiftError("%s: not shifted, %d file%s in %s %s owned by IDs past the end of the new ranges "
                             "(UIDs %s, GIDs %s), for example %s" % (
                                 name, len(lost), "" if len(lost) == 1 else "s", root,
                                 "is" if len(lost) == 1 else "are", _text(target["subuid"]),
                                 _text(target["subgid"]), ", ".join(lost[:3])))
        roots[root] = entries
    return {"version": 1, "owner": name, "uid": account.pw_uid,
            "begun": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subuid": {"from": old["subuid"], "to": target["subuid"]},
            "subgid": {"from": old["subgid"], "to": target["subgid"]}, "roots": roots}, False


def shift(module, request, account):
    manifest, resumed = plan(module, request, account)
    name = request["owner"]
    refuse_while_running(name, account.pw_uid, [r for kind in ("subuid", "subgid")
                                                for part in ("from", "to") for r in manifest[kind][part]])
    report = {"owner": name, "subuid": {k: manifest["subuid"][k] for k in ("from", "to")},
              "subgid": {k: manifest["subgid"][k] for k in ("from", "to")}, "storage": sorted(manifest["roots"]),
              "files": 0, "already": 0, "gone": 0, "resumed": resumed}
    total = sum(len(entries) for entries in manifest["roots"].values())
    if module.check_mode or total == 0:
        report["files"] = total  # a resumed shift has done some of them: at most this many
        return report
    if not resumed:
        write_manifest(JOURNAL_DIR, manifest)
    conflicts = []
    for root, entries in sorted(manifest["roots"].items()):
        fd = open_root(root, account.pw_uid)
        try:
            changed, already, gone, clashes = apply(fd, entries)
        finally:
            os.close(fd)
        report["files"] += changed
        report["already"] += already
        report["gone"] += gone
        conflicts += ["%s/%s" % (root, c) for c in clashes]
    os.sync()  # the files' new owners on disk before the lines that need them
    if conflicts:
        raise ShiftError("%s: %d file%s changed owner during the shift and %s left as %s: %s. The manifest %s "
                         "stays; fix them, then run again" % (
                             name, len(conflicts), "" if len(conflicts) == 1 else "s",
                             "was" if len(conflicts) == 1 else "were", "it is" if len(conflicts) == 1 else "they are",
                             "; ".join(conflicts[:3]), os.path.join(JOURNAL_DIR, "uid-%d.json" % account.pw_uid)))
    return report


def finish(module, request, account):
    name = request["owner"]
    keys = {name, str(account.pw_uid)}
    for kind in ("subuid", "subgid"):
        have = granted(module.params[kind + "_path"], keys)
        if have != _pairs(request[kind]):
            raise ShiftError("%s: the shift is not closed: %s grants %s, not the new %s"
                             % (name, module.params[kind + "_path"], _text(have), _text(_pairs(request[kind]))))
    return module.check_mode or remove_manifest(JOURNAL_DIR, account.pw_uid)


def main():
    module = AnsibleModule(argument_spec=SPEC, supports_check_mode=True)
    result = {"changed": False, "shifted": [], "finished": []}
    sentences = []
    for request in module.params["shifts"]:
        name = request["owner"]
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            module.fail_json(msg="%s has no account on this host: its storage cannot be found" % name, **result)
        try:
            if module.params["state"] == "finished":
                if finish(module, request, account):
                    result["finished"].append(name)
                continue
            report = shift(module, request, account)
        except (ShiftError, UnsafePathError, OSError) as exc:
            module.fail_json(msg=str(exc), **result)
        result["shifted"].append(report)
        sentences.append("%s: %d file%s %s from UIDs %s, GIDs %s to UIDs %s, GIDs %s in %s%s" % (
            name, report["files"], "" if report["files"] == 1 else "s",
            "would be given new owners" if module.check_mode else "given new owners",
            _text(report["subuid"]["from"]), _text(report["subgid"]["from"]), _text(report["subuid"]["to"]),
            _text(report["subgid"]["to"]), ", ".join(report["storage"]) or "no storage",
            " (finishing the shift begun before; %d already done)" % report["already"] if report["resumed"] else ""))
    result["changed"] = any(r["files"] for r in result["shifted"]) or bool(result["finished"])
    msg = "; ".join(sentences) or (
        "closed the shifts of %s" % ", ".join(result["finished"]) if result["finished"] else "no shift was open")
    module.exit_json(msg=msg, **result)


if __name__ == "__main__":
    main()
