#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: userns_info
short_description: Find the processes whose user namespaces map given subordinate ID ranges
version_added: 0.1.0
description:
  - Reads C(/proc/PID/uid_map) and C(gid_map) of every process in a user namespace other than PID 1's
    (a rootless Podman pause process or container, an unprivileged LXC container, a sandbox) in one pass.
  - Removing a user's lines from C(/etc/subuid) does not take the IDs away from a namespace already made.
    A leaver's running container keeps mapping the range until it stops. Once the range is given to someone
    else, that container can read the newcomer's files. The reclaim playbook runs this module and refuses
    while any process maps an ID of a block it would return to the pool.
  - Returns every such namespace, and those that map an ID of O(ranges).
author:
  - fleetid.subid maintainers (@fleetid)
options:
  ranges:
    description: The ranges to look for, each C({start, count}) and optionally the C(owner) they belong to.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    details: It only reads.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
notes:
  - Run it as root to see every user's processes.
seealso:
  - module: fleetid.subid.rootless_migrate
"""

EXAMPLES = r"""
- name: Find the processes that still map dave's released block
  fleetid.subid.userns_info:
    ranges: [{owner: dave, start: 231072, count: 65536}]
  register: userns

- name: Refuse while any does
  ansible.builtin.assert:
    that: userns.mapping | length == 0
    fail_msg: "{{ userns.mapping | map(attribute='message') | join('; ') }}"
"""

RETURN = r"""
namespaces:
  description: Every user namespace other than PID 1's that has processes.
  returned: always
  type: list
  elements: dict
  contains:
    pids:
      description: Its processes.
      type: list
      elements: int
    user:
      description: The name (or the UID when it has none) of the account that owns its first process.
      type: str
    comm:
      description: The command name of its first process.
      type: str
    uid_map:
      description: Its UID map as C([inside, outside, count]) rows.
      type: list
      elements: list
    gid_map:
      description: Its GID map.
      type: list
      elements: list
mapping:
  description: The namespaces that map an ID of O(ranges), each with what it maps and a message that says so.
  returned: always
  type: list
  elements: dict
  contains:
    pids:
      description: Its processes.
      type: list
      elements: int
    user:
      description: The account that owns its first process.
      type: str
    comm:
      description: The command name of its first process.
      type: str
    owner:
      description: The owner of the range it maps, as given in O(ranges).
      type: str
    range:
      description: The range of O(ranges) it maps, as C(start-last).
      type: str
    kind:
      description: V(uid) or V(gid).
      type: str
    message:
      description: One line that names all of the above.
      type: str
  sample:
    - pids: [4242, 4250]
      user: dave
      comm: catatonit
      owner: dave
      range: 231072-296607
      kind: uid
      message: "processes 4242, 4250 (catatonit of dave) map UIDs 231072-296607 of dave's block"
"""

import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils.rootless import user_namespaces


def user_of(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def main():
    module = AnsibleModule(
        argument_spec={"ranges": {"type": "list", "elements": "dict", "default": []}},
        supports_check_mode=True,
    )
    wanted = []
    for number, item in enumerate(module.params["ranges"]):
        try:
            start, count = int(item["start"]), int(item["count"])
        except (KeyError, TypeError, ValueError):
            module.fail_json(msg="ranges[%d] must have a numeric start and count, got %r" % (number, item))
        if start < 0 or count < 1:
            module.fail_json(msg="ranges[%d] must have start >= 0 and count >= 1, got %r" % (number, item))
        wanted.append((start, start + count, str(item.get("owner") or "")))
    namespaces, mapping = [], []
    for ns in user_namespaces():
        entry = {"pids": ns["pids"], "user": user_of(ns["uid"]), "comm": ns["comm"],
                 "uid_map": [list(row) for row in ns["uid_map"]], "gid_map": [list(row) for row in ns["gid_map"]]}
        namespaces.append(entry)
        for kind in ("uid", "gid"):
            for inside, outside, count in ns[kind + "_map"]:
                for start, end, owner in wanted:
                    if outside < end and start < outside + count:
                        shown = ", ".join(str(pid) for pid in ns["pids"][:5]) + (
                            " and %d more" % (len(ns["pids"]) - 5) if len(ns["pids"]) > 5 else "")
                        mapping.append(dict(
                            pids=ns["pids"], user=entry["user"], comm=ns["comm"], owner=owner,
                            range="%d-%d" % (start, end - 1), kind=kind,
                            message="process%s %s (%s of %s) map%s %sIDs %d-%d%s" % (
                                "es" if len(ns["pids"]) > 1 else "", shown, ns["comm"], entry["user"],
                                "" if len(ns["pids"]) > 1 else "s", kind[0].upper(), max(start, outside),
                                min(end, outside + count) - 1, " of %s's block" % owner if owner else "")))
    module.exit_json(changed=False, namespaces=namespaces, mapping=mapping)


if __name__ == "__main__":
    main()
