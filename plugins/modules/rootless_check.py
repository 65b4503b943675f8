#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rootless_check
short_description: Prove that rootless Podman works for each user with the ledger's ID ranges
version_added: 0.1.0
description:
  - Runs as root on the host and checks each user in turn with C(runuser), so no become to an
    unprivileged user is needed.
  - Checks that C(podman unshare cat /proc/self/uid_map) and C(gid_map) show the user's own ID
    mapped to 0 and exactly the expected subordinate ranges, which are the ledger's.
  - With O(image), it also loads the image into the user's storage from O(image_archive)
    when missing. It runs the image with C(podman run) as the user, and inside the container
    changes a file's owner to the highest ID of the user's map. This proves the whole range
    is usable.
  - Returns a report for each user. It fails when any user fails, and names the user and the reason.
    A failure caused by an image that needs more IDs than the user has says so, with the fix.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  users:
    description: Users to check. Each must have a local account.
    type: list
    elements: str
    required: true
  subuid:
    description: Expected subordinate UID ranges, as returned by M(fleetid.subid.allocate).
    type: list
    elements: dict
    required: true
  subgid:
    description: Expected subordinate GID ranges, as returned by M(fleetid.subid.allocate).
    type: list
    elements: dict
    required: true
  image:
    description: Local image to run as each user. Without it, only the ID maps are checked.
    type: str
  image_archive:
    description:
      - Path on the host of an archive from C(podman save). Each user loads it with C(podman load)
        when O(image) is not in that user's storage yet. No registry is needed.
      - The archive must be readable by every user checked.
    type: path
  podman_options:
    description: Global Podman options placed before the subcommand, for example C([--cgroup-manager, cgroupfs]).
    type: list
    elements: str
    default: []
  run_options:
    description:
      - Options for C(podman run). The default runs without a network, because the check
        needs none and does not depend on slirp4netns or pasta.
    type: list
    elements: str
    default: [--network, none]
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return changed status prediction without modifying target.
    details: In check mode only the ID maps are checked. Images are neither loaded nor run.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    support: full
    platforms: posix
    description: Target OS/families that can be operated against.
notes:
  - Requires C(runuser) (util-linux) and Podman on the host.
seealso:
  - module: fleetid.subid.allocate
  - module: fleetid.subid.subid
"""

EXAMPLES = r"""
- name: Prove rootless Podman works for every owner with a local account
  fleetid.subid.rootless_check:
    users: [alice, bob]
    subuid: "{{ alloc.subuid }}"
    subgid: "{{ alloc.subgid }}"
    image: localhost/fleetid-busybox:latest
    image_archive: /var/tmp/fleetid-busybox.tar
  register: rootless
"""

RETURN = r"""
users:
  description: One report per user, in the order of O(users).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: User name.
      type: str
    ok:
      description: Whether every check passed.
      type: bool
    uid_map:
      description: The UID map Podman uses, as C([inside, outside, count]) rows.
      type: list
      elements: list
    gid_map:
      description: The GID map Podman uses.
      type: list
      elements: list
    image_loaded:
      description: Whether O(image) was loaded into the user's storage by this run.
      type: bool
    ran:
      description: Whether C(podman run) of O(image) succeeded. V(null) when not attempted.
      type: bool
    highest_id:
      description: The highest UID inside the container, the one the chown check used.
      type: int
    problems:
      description: What is wrong, one message each. Empty when RV(users[].ok) is true.
      type: list
      elements: str
  sample:
    - name: alice
      ok: false
      uid_map: [[0, 2001, 1], [1, 100000, 65536]]
      gid_map: [[0, 2001, 1], [1, 100000, 65536]]
      image_loaded: false
      ran: false
      highest_id: 65536
      problems:
        - "not enough subordinate IDs: the image has files owned by IDs above the 65536 that alice can map; ..."
"""

import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils.rootless import (
    explain_podman_error,
    highest_inside_id,
    map_problems,
    parse_id_map,
)

MAP_SEPARATOR = "--fleetid-gid-map--"


class UserCheck:
    def __init__(self, module, podman, name):
        self.module = module
        self.podman = podman
        self.name = name
        self.report = {"name": name, "ok": False, "uid_map": [], "gid_map": [], "image_loaded": False,
                       "ran": None, "highest_id": 0, "problems": []}

    def podman_cmd(self, *args):
        """Podman as the user: runuser sets HOME/USER; root's runtime dir must not leak in."""
        params = self.module.params
        argv = ["runuser", "-u", self.name, "--", "env", "-u", "XDG_RUNTIME_DIR",
                "-u", "DBUS_SESSION_BUS_ADDRESS", self.podman] + params["podman_options"] + list(args)
        rc, out, err = self.module.run_command(argv, cwd="/", environ_update={"LC_ALL": "C"})
        return rc, out, err

    def problem(self, message):
        self.report["problems"].append(message)

    def run(self, expected_uid, expected_gid):
        try:
            account = pwd.getpwnam(self.name)
        except KeyError:
            self.problem("%s has no local account" % self.name)
            return self.report
        if not expected_uid or not expected_gid:
            self.problem("%s has no ranges in the ledger for this host" % self.name)
            return self.report

        rc, out, err = self.podman_cmd(
            "unshare", "sh", "-c", "cat /proc/self/uid_map; echo %s; cat /proc/self/gid_map" % MAP_SEPARATOR)
        if rc != 0:
            self.problem("podman unshare failed: %s" % explain_podman_error(err or out, self.name, 0))
            return self.report
        uid_text, dummy, gid_text = out.partition(MAP_SEPARATOR)
        uid_rows, gid_rows = parse_id_map(uid_text), parse_id_map(gid_text)
        self.report["uid_map"] = [list(row) for row in uid_rows]
        self.report["gid_map"] = [list(row) for row in gid_rows]
        self.report["problems"].extend(map_problems(uid_rows, account.pw_uid, expected_uid, "uid"))
        self.report["problems"].extend(map_problems(gid_rows, account.pw_gid, expected_gid, "gid"))
        highest_uid, highest_gid = highest_inside_id(uid_rows), highest_inside_id(gid_rows)
        self.report["highest_id"] = highest_uid

        image = self.module.params["image"]
        if image and not self.module.check_mode:
            self.run_image(image, highest_uid, highest_gid)
        self.report["ok"] = not self.report["problems"]
        return self.report

    def run_image(self, image, highest_uid, highest_gid):
        total = sum(count for inside, outside, count in self.report["uid_map"] if inside != 0)
        archive = self.module.params["image_archive"]
        rc, out, err = self.podman_cmd("image", "exists", image)
        if rc != 0 and archive:
            rc, out, err = self.podman_cmd("load", "--quiet", "--input", archive)
            if rc != 0:
                self.problem("podman load of %s failed: %s" % (archive, explain_podman_error(err + out, self.name, total)))
                self.report["ran"] = False
                return
            self.report["image_loaded"] = True
        # Inside, the user's own ID is 0 and the subordinate IDs follow: owning a file by the
        # highest of them proves the whole range is mapped.
        script = "touch /tmp/fleetid-check && chown %d:%d /tmp/fleetid-check && stat -c %%u:%%g /tmp/fleetid-check" % (
            highest_uid, highest_gid)
        rc, out, err = self.podman_cmd("run", "--rm", *(self.module.params["run_options"] + [image, "sh", "-c", script]))
        self.report["ran"] = rc == 0
        if rc != 0:
            self.problem("podman run %s failed: %s" % (image, explain_podman_error(err + out, self.name, total)))
        elif out.strip() != "%d:%d" % (highest_uid, highest_gid):
            self.problem("chown to the highest mapped IDs %d:%d inside the container gave %r"
                         % (highest_uid, highest_gid, out.strip()))


def expected_ranges(entries, name):
    return [(int(e["start"]), int(e["count"])) for e in entries if e.get("name") == name]


def main():
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "str", "required": True},
            "subuid": {"type": "list", "elements": "dict", "required": True},
            "subgid": {"type": "list", "elements": "dict", "required": True},
            "image": {"type": "str"},
            "image_archive": {"type": "path"},
            "podman_options": {"type": "list", "elements": "str", "default": []},
            "run_options": {"type": "list", "elements": "str", "default": ["--network", "none"]},
        },
        supports_check_mode=True,
    )
    podman = module.get_bin_path("podman", required=True)
    module.get_bin_path("runuser", required=True)
    archive = module.params["image_archive"]
    if archive and not os.path.isfile(archive):
        module.fail_json(msg="image_archive %s does not exist on the host" % archive)

    reports = []
    for name in module.params["users"]:
        check = UserCheck(module, podman, name)
        reports.append(check.run(expected_ranges(module.params["subuid"], name),
                                 expected_ranges(module.params["subgid"], name)))

    changed = any(r["image_loaded"] for r in reports)
    failed = [r for r in reports if not r["ok"]]
    if failed:
        module.fail_json(
            msg="rootless Podman does not work for %s: %s" % (
                ", ".join(r["name"] for r in failed),
                "; ".join("%s: %s" % (r["name"], " / ".join(r["problems"])) for r in failed)),
            users=reports, changed=changed)
    module.exit_json(changed=changed, users=reports)


if __name__ == "__main__":
    main()
