#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: rootless_migrate
short_description: Run podman system migrate as the users whose ID ranges changed and who have Podman state
version_added: 0.1.0
description:
  - After a user's subordinate ranges change, Podman keeps using the old user namespace
    (its pause process) until C(podman system migrate) restarts it. This module runs that
    for each listed user who has rootless Podman state, in one call per host.
  - A user has Podman state when they have container storage or a live pause process or
    container. Container storage is the C(containers/storage) folder under C($XDG_DATA_HOME),
    by default C(~/.local/share/containers/storage), or the C(graphroot) of
    C(~/.config/containers/storage.conf), or C(rootless_storage_path) of the system C(storage.conf).
    A live pause process or container is any process of the user in another user namespace
    than PID 1's.
  - A user with neither has never run Podman on this host, or was reset. There is nothing to
    migrate, so the user is skipped and Podman is not started. Runtime folders such as
    C(/tmp/podman-run-UID) do not count. They outlive the pause process and even the account,
    and UIDs are reused.
  - Migration stops the user's running containers.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  users:
    description: Users whose ranges changed, for example RV(fleetid.subid.subid#module:changed_owners).
    type: list
    elements: str
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - fleetid.subid.rootless
attributes:
  check_mode:
    support: full
    details: In check mode the result names the users who would be migrated; Podman does not run.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - A user whose C(XDG_DATA_HOME) points elsewhere only in their own session is seen by
    their running pause process or containers, or by a C(graphroot) in their storage.conf.
seealso:
  - module: fleetid.subid.subid
  - module: fleetid.subid.rootless_check
"""

EXAMPLES = r"""
- name: Write the ranges
  fleetid.subid.subid:
    subuid: "{{ alloc.subuid }}"
    subgid: "{{ alloc.subgid }}"
  register: applied

- name: Migrate the owners whose ranges changed and who have Podman state
  fleetid.subid.rootless_migrate:
    users: "{{ applied.changed_owners }}"
  when: applied.changed_owners | length > 0
"""

RETURN = r"""
migrated:
  description: Users for whom C(podman system migrate) ran (in check mode, would run).
  returned: always
  type: list
  elements: str
  sample: [alice]
without_state:
  description: Users skipped because they have no Podman state on this host.
  returned: always
  type: list
  elements: str
  sample: [bob, carol]
without_account:
  description: Users skipped because they have no local account (service owners such as C(containers) may be one).
  returned: always
  type: list
  elements: str
  sample: [kubelet]
evidence:
  description: For each user with Podman state, what marks it.
  returned: always
  type: dict
  sample: {alice: ["storage /home/alice/.local/share/containers/storage"]}
podman:
  description: The Podman binary used. V(null) when Podman is not installed, then no user is migrated.
  returned: always
  type: str
  sample: /usr/bin/podman
"""

import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils.rootless import (
    PODMAN_SPEC,
    namespaced_owners,
    podman_argv,
    podman_state,
)


def main():
    module = AnsibleModule(
        argument_spec=dict({"users": {"type": "list", "elements": "str", "required": True}}, **PODMAN_SPEC),
        supports_check_mode=True,
    )
    result = {"changed": False, "migrated": [], "without_state": [], "without_account": [], "evidence": {},
              "podman": module.get_bin_path("podman")}
    in_namespace = namespaced_owners()
    with_state = []
    for name in dict.fromkeys(module.params["users"]):
        try:
            account = pwd.getpwnam(name)
        except KeyError:
            result["without_account"].append(name)
            continue
        evidence = podman_state(name, account.pw_uid, account.pw_dir, in_namespace)
        if evidence:
            result["evidence"][name] = evidence
            with_state.append(name)
        else:
            result["without_state"].append(name)
    if with_state and not result["podman"]:
        module.warn("Podman is not installed, so no user is migrated; these users have Podman state: %s"
                    % ", ".join(with_state))
        module.exit_json(**result)
    if with_state:
        module.get_bin_path("runuser", required=True)
    failures = []
    for name in with_state:
        if not module.check_mode:
            rc, out, err = module.run_command(
                podman_argv(name, result["podman"], module.params["podman_options"], ["system", "migrate"]),
                cwd="/", environ_update={"LC_ALL": "C"})
            if rc != 0:
                failures.append("%s: %s" % (name, (err or out).strip() or "exit code %d" % rc))
                continue
        result["migrated"].append(name)
    result["changed"] = bool(result["migrated"])
    if failures:
        module.fail_json(msg="podman system migrate failed for %s" % "; ".join(failures), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
