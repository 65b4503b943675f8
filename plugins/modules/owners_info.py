#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: owners_info
short_description: Resolve owners and owner groups through the host's NSS, with the host's state for allocate
version_added: 0.1.0
description:
  - Turns O(groups) into owners. Each member of each group becomes an owner with the group's
    C(count) and C(scope), after the owners in O(owners), which win for a name they list.
    A member of several groups takes the first group listed.
  - Members are resolved with C(getent group NAME) (the group's member list, which is what SSSD,
    nslcd and winbind return for a directory group) and, among the accounts the host already knows
    without enumerating a directory, the accounts whose primary GID is the group's GID. A directory
    user whose primary group is the group but who is not in its member list is B(not) seen when the
    directory does not enumerate (SSSD's default C(enumerate = false)); list such users in O(owners).
  - Resolves every owner by name (C(getent passwd NAME...)), so directory accounts that the host
    cannot enumerate are found too, and returns their IDs in RV(host_state.resolved_ids) for the collision
    checks of M(fleetid.subid.allocate) and M(fleetid.subid.audit).
  - Reads the owner names in O(subuid_path), so a run can tell which owners have lines here but
    are no longer requested (for example a member who left a group).
  - Reports the ranges the owners' lines in O(subuid_path) and O(subgid_path) hold now. Given to
    M(fleetid.subid.allocate), they tell whether writing its result with M(fleetid.subid.subid)
    would change anything, so a converged host needs no write.
  - The last three come together in RV(host_state), the one value
    M(fleetid.subid.allocate) takes from this module
    (O(fleetid.subid.allocate#module:host_state)).
  - Changes nothing. All of this is one module call per host, with three C(getent) processes.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  groups:
    description:
      - Groups whose members are owners. Each item is a group name, or a mapping with C(name)
        and optionally C(count) and C(scope), as for the owners of M(fleetid.subid.allocate).
      - A group that does not resolve on the host adds nobody and is reported as a warning.
    type: list
    elements: raw
    default: []
  owners:
    description:
      - Owners listed by name (C(subid_owners)), each a name or a mapping with C(name). They are
        returned first in RV(owners), unchanged, and override a group's C(count) and C(scope).
    type: list
    elements: raw
    default: []
  floor:
    description: The pool's floor. Lines of other owners that reach below it are reported in RV(host_state.unsafe_lines).
    type: int
    default: 1000
extends_documentation_fragment:
  - fleetid.subid.subid_paths
  - fleetid.subid.attributes.host_info
  - ansible.builtin.action_common_attributes
notes:
  - SSSD caches group members (C(entry_cache_timeout), 5400 seconds by default), so a person added to
    a directory group is seen by the next run after the cache expires, or at once after C(sss_cache -G).
seealso:
  - module: fleetid.subid.allocate
  - module: fleetid.subid.subid_info
"""

EXAMPLES = r"""
- name: Every member of developers is an owner; bob gets more IDs
  fleetid.subid.owners_info:
    groups: [developers, {name: ci, count: 1048576}]
    owners: [{name: bob, count: 4194304}]
  register: resolved

- name: Allocate for them
  fleetid.subid.allocate:
    ledger: "{{ subid_ledger }}"
    pool: "{{ subid_pool }}"
    owners: "{{ resolved.owners }}"
    host_state: "{{ resolved.host_state }}"
"""

RETURN = r"""
owners:
  description: O(owners), then one C({name, count, scope}) per group member they do not name.
  returned: always
  type: list
  elements: raw
  sample: [{name: bob, count: 4194304}, {name: dana}, {name: erik, count: 1048576}]
groups:
  description: Each group of O(groups) as the host resolved it.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Group name.
      type: str
    found:
      description: Whether the group resolves on this host.
      type: bool
    gid:
      description: The group's GID, V(null) when not found.
      type: int
    members:
      description: Its members, from the member list and by primary GID, in that order.
      type: list
      elements: str
  sample: [{name: developers, found: true, gid: 70500, members: [dana, erik]}]
added:
  description: Owner name -> the group that made it an owner, for the members O(owners) does not name.
  returned: always
  type: dict
  sample: {dana: developers, erik: ci}
accounts:
  description: Each owner that resolves, name -> C({uid, gid, home, shell}).
  returned: always
  type: dict
  sample: {dana: {uid: 70001, gid: 70001, home: /home/dana, shell: /bin/bash}}
unresolved:
  description: Owners that do not resolve to an account on this host (service owners such as C(containers) are normal here).
  returned: always
  type: list
  elements: str
host_state:
  description:
    - What M(fleetid.subid.allocate) needs to know of this host, for its
      O(fleetid.subid.allocate#module:host_state) option.
  returned: always
  type: dict
  contains:
    resolved_ids:
      description: Every UID and GID resolved (owners' UIDs and primary GIDs, the groups' GIDs), for collision checks.
      type: list
      elements: dict
      sample: [{kind: uid, id: 70001, name: dana}, {kind: gid, id: 70500, name: group developers}]
    present_owners:
      description: Owner fields of the lines in O(subuid_path), in file order, without duplicates.
      type: list
      elements: str
    current_ranges:
      description:
        - What the subid files hold now for the owners in RV(owners).
        - Under C(subuid) and C(subgid), owner name -> the C([start, count]) of its lines in file order, when
          they are exactly the lines M(fleetid.subid.subid) writes for those ranges; V(null) when that module
          would rewrite them whatever the ranges (a line in UID form, lines apart). Owners without lines are
          left out. A file that shadow does not read line by line (a NUL byte) is V(null) as a whole.
        - C(interrupted_write) is V(true) when M(fleetid.subid.subid) left a journal of an interrupted write,
          which its next run repairs.
      type: dict
      sample: {subuid: {dana: [[1000000, 65536]], erik: null}, subgid: {dana: [[1000000, 65536]]}, interrupted_write: false}
    podman_state:
      description:
        - The owners with lines here who have rootless Podman state (container storage, or processes in a user
          namespace), each with what marks it, as M(fleetid.subid.rootless_migrate) sees it. Their files in the
          storage are owned by IDs of their current ranges, so M(fleetid.subid.allocate) holds them rather than
          move their ranges.
      type: dict
      sample: {dana: ["storage /home/dana/.local/share/containers/storage"]}
    unresolved:
      description: The same as RV(unresolved), for M(fleetid.subid.allocate)'s warnings about owners without an account.
      type: list
      elements: str
    unsafe_lines:
      description:
        - The lines of owners not in RV(owners) that let their owner become the host's root (a range with ID 0),
          reach below O(floor) into system accounts, or reach past ID 2^32-1. The C(fleetid.subid.subids) role
          fails such a host, or removes those owners' lines with C(subids_unsafe_lines=remove).
      type: list
      elements: dict
      sample:
        - file: /etc/subuid
          line: 3
          name: root
          kind: maps_root
          message: "/etc/subuid line 3 (root:0:65536) contains ID 0: its owner can become the host's root"
    pending_shifts:
      description:
        - Storage shifts of M(fleetid.subid.storage_shift) begun and not yet closed on this host (a run stopped
          between the shift and the write of the new lines), owner -> the ranges it shifts from and to.
          M(fleetid.subid.allocate) finishes such a shift when the ledger still holds its target, and holds the
          owner otherwise.
      type: dict
      sample:
        dana:
          owner: dana
          uid: 1001
          begun: "2026-12-07T21:40:00Z"
          subuid: {from: [[165536, 65536]], to: [[1000000, 65536]]}
          subgid: {from: [[165536, 65536]], to: [[1000000, 65536]]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils._accounts import aliases_of
from ansible_collections.fleetid.subid.plugins.module_utils._getent import GetentError, getent
from ansible_collections.fleetid.subid.plugins.module_utils._host_report import unsafe_lines
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import DEFAULT_FLOOR
from ansible_collections.fleetid.subid.plugins.module_utils._storage_shift import ShiftError, pending_shifts
from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import written_ranges
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SUBID_PATHS_SPEC, SubidFile
from ansible_collections.fleetid.subid.plugins.module_utils._subid_transaction import SubidTransaction
from ansible_collections.fleetid.subid.plugins.module_utils.rootless import (
    docker_remap_root,
    namespaced_owners,
    podman_state,
)
from ansible_collections.fleetid.subid.plugins.module_utils.directory import (
    DirectoryError,
    group_members,
    merge_owners,
    normalize_groups,
    owner_name,
    parse_groups,
    parse_passwd,
    resolved_ids,
)
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import UnsafePathError, read_regular


def resolve_accounts(module, names, known):
    """name -> account of each of ``names`` that resolves: from ``known`` (what the host
    lists without keys), else by key, so that a directory that does not enumerate is
    asked for the names alone."""
    accounts = {name: known[name] for name in names if name in known}
    missing = [name for name in names if name not in accounts]
    if missing:
        by_key = parse_passwd(getent(module, "passwd", missing, required=True))
        for name in missing:
            if name in by_key:
                accounts[name] = by_key[name]
            elif name.isdigit():  # a numeric owner field: getent printed the account of that UID
                entry = next((e for e in by_key.values() if e["uid"] == int(name)), None)
                if entry is not None:
                    accounts[name] = entry
    return accounts


def read_texts(module):
    texts = {}
    for kind in ("subuid", "subgid"):
        path = module.params[kind + "_path"]
        try:
            data = read_regular(path)
        except (OSError, UnsafePathError) as exc:
            module.fail_json(msg="%s cannot be read: %s" % (path, exc))
        texts[kind] = "" if data is None else data.decode("utf-8", "surrogateescape")
    return texts


def host_state(module, names, accounts, resolved_groups):
    """The RV(host_state) allocate takes: resolved IDs, the owners with lines here, and
    the ranges the owners' lines hold now."""
    texts = read_texts(module)
    present = []
    files = [SubidFile(module.params[kind + "_path"], texts[kind]) for kind in ("subuid", "subgid")]
    for entry in files[0].entries:
        if not entry.ignored and entry.owner not in present:
            present.append(entry.owner)
    cache = {}  # owner field -> pwd entry, looked up once for both files
    current = {kind: written_ranges(texts[kind], names, lambda owner: aliases_of(owner, cache))
               for kind in ("subuid", "subgid")}
    current["interrupted_write"] = SubidTransaction(module.params["subuid_path"],
                                                    module.params["subgid_path"]).interrupted()
    # Podman state of the owners with lines here: what a move of their ranges would strand.
    # (A file shadow does not read line by line is None as a whole: no owner's lines are known.)
    with_lines = [name for name in names if name in accounts and name in (current["subuid"] or {})]
    in_namespace = namespaced_owners() if with_lines else set()
    state = {}
    for name in with_lines:
        evidence = podman_state(name, accounts[name]["uid"], accounts[name]["home"], in_namespace)
        if evidence:
            state[name] = evidence
    # Docker's remapped data is owned by the IDs of dockremap's first range, in a folder named after them.
    if "dockremap" in names and (current["subuid"] or {}).get("dockremap"):
        docker = docker_remap_root(current["subuid"]["dockremap"], (current["subgid"] or {}).get("dockremap"))
        if docker:
            state.setdefault("dockremap", []).append("Docker data %s" % docker)
    try:
        pending = pending_shifts()
    except ShiftError as exc:
        module.fail_json(msg=str(exc))
    managed = set().union(*[aliases_of(name, cache) for name in names]) if names else set()
    return {"resolved_ids": resolved_ids(accounts, resolved_groups), "present_owners": present,
            "current_ranges": current, "podman_state": state, "pending_shifts": pending,
            "unsafe_lines": unsafe_lines(files, module.params["floor"], managed)}


def main():
    module = AnsibleModule(
        argument_spec=dict(SUBID_PATHS_SPEC, **{
            "groups": {"type": "list", "elements": "raw", "default": []},
            "owners": {"type": "list", "elements": "raw", "default": []},
            "floor": {"type": "int", "default": DEFAULT_FLOOR},
        }),
        supports_check_mode=True,
    )
    try:
        groups = normalize_groups(module.params["groups"])
    except DirectoryError as exc:
        module.fail_json(msg=str(exc))
    owners = module.params["owners"]
    for item in owners:
        if not isinstance(owner_name(item) if isinstance(item, (str, dict)) else None, str):
            module.fail_json(msg="each owner must be a name or a mapping with 'name', got %r" % (item,))

    try:
        resolved_groups = parse_groups(getent(module, "group", [g["name"] for g in groups], required=True)) \
            if groups else {}
        # What the host lists without keys: its local accounts and any source that enumerates.
        # Used for members by primary GID only; a directory is never enumerated here.
        known = parse_passwd(getent(module, "passwd", required=True)) if groups else {}
        merged, added = merge_owners(owners, groups, resolved_groups, known)
        names = []
        for item in merged:
            name = owner_name(item)
            if name not in names:
                names.append(name)
        accounts = resolve_accounts(module, names, known)
    except GetentError as exc:
        module.fail_json(msg=str(exc))

    for g in groups:
        if g["name"] not in resolved_groups:
            module.warn("owner group %s does not resolve on this host (getent group %s): it adds no owners here"
                        % (g["name"], g["name"]))

    module.exit_json(
        changed=False,
        owners=merged,
        groups=[{"name": g["name"], "found": g["name"] in resolved_groups,
                 "gid": resolved_groups[g["name"]]["gid"] if g["name"] in resolved_groups else None,
                 "members": group_members(resolved_groups[g["name"]], known)
                 if g["name"] in resolved_groups else []}
                for g in groups],
        added=dict(added),
        accounts=accounts,
        unresolved=[name for name in names if name not in accounts],
        host_state=dict(host_state(module, names, accounts, resolved_groups),
                        unresolved=[name for name in names if name not in accounts]),
    )


if __name__ == "__main__":
    main()
