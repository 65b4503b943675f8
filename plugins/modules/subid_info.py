#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: subid_info
short_description: Report what a host's subordinate ID set-up really is, with findings
version_added: 0.1.0
description:
  - Reads C(/etc/subuid) and C(/etc/subgid), the SUB_* keys of C(/etc/login.defs), the
    newuidmap and newgidmap helpers, the user-namespace sysctls, the nsswitch C(subid:)
    source and the Podman version. Changes nothing.
  - Returns RV(findings), each C({severity, kind, file, line, message}), for what is
    dangerous or broken. Examples are overlaps between owners, ranges that contain 0 or IDs
    below O(floor), ranges that contain an ID a host account uses, entries for owners without
    an account, malformed lines, missing or unprivileged helpers, and disabled user namespaces.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  subuid_path:
    description: Path of the subuid file.
    type: path
    default: /etc/subuid
  subgid_path:
    description: Path of the subgid file.
    type: path
    default: /etc/subgid
  login_defs_path:
    description: Path of login.defs.
    type: path
    default: /etc/login.defs
  proc_sys_path:
    description: Where the sysctls are read from. Tests point elsewhere.
    type: path
    default: /proc/sys
  nsswitch_path:
    description: Path of nsswitch.conf.
    type: path
    default: /etc/nsswitch.conf
  floor:
    description: Ranges that reach below this ID are reported as critical.
    type: int
    default: 1000
attributes:
  check_mode:
    support: full
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    support: full
    platforms: posix
    description: Target OS/families that can be operated against.
seealso:
  - module: fleetid.subid.subid
"""

EXAMPLES = r"""
- name: Inspect the host
  fleetid.subid.subid_info:
  register: info

- name: Fail on anything critical
  ansible.builtin.assert:
    that: info.findings | selectattr('severity', 'eq', 'critical') | list | length == 0
    fail_msg: "{{ info.findings | selectattr('severity', 'eq', 'critical') | map(attribute='message') | list }}"
"""

RETURN = r"""
subuid:
  description: Well-formed entries of the subuid file, in file order.
  returned: always
  type: list
  elements: dict
  sample: [{owner: alice, start: 100000, count: 65536, line: 1}]
subgid:
  description: Well-formed entries of the subgid file.
  returned: always
  type: list
  elements: dict
  sample: [{owner: alice, start: 100000, count: 65536, line: 1}]
login_defs:
  description: SUB_UID_MIN/MAX/COUNT, SUB_GID_MIN/MAX/COUNT, UID_MIN/MAX and GID_MIN/MAX values found in login.defs.
  returned: always
  type: dict
  sample: {SUB_UID_MIN: 100000, SUB_UID_MAX: 600100000, SUB_UID_COUNT: 65536}
helpers:
  description: newuidmap and newgidmap.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Helper name.
      type: str
    path:
      description: Where it was found, or V(null).
      type: str
    exists:
      description: Whether it was found.
      type: bool
    setuid:
      description: Whether the file is setuid root.
      type: bool
    capability:
      description: The file capability it needs, C(cap_setuid) or C(cap_setgid).
      type: str
    capability_ok:
      description: Whether the file carries that capability (C(security.capability) xattr).
      type: bool
  sample: [{name: newuidmap, path: /usr/bin/newuidmap, exists: true, setuid: true, capability: cap_setuid, capability_ok: false}]
sysctls:
  description: User-namespace sysctls that exist on this kernel, by name.
  returned: always
  type: dict
  sample: {user.max_user_namespaces: 63704, kernel.unprivileged_userns_clone: 1}
nsswitch_subid:
  description: The C(subid:) source of nsswitch.conf, or V(null) when the files are used.
  returned: always
  type: str
  sample: sss
podman_version:
  description: C(podman --version) output, or V(null) when Podman is not installed.
  returned: always
  type: str
  sample: podman version 4.3.1
findings:
  description:
    - Problems found, most severe first.
    - The V(kind) values are overlap, maps_root, below_floor, host_id_collision,
      owner_id_in_range, unknown_owner, malformed_line, helper_missing,
      helper_not_privileged, userns_disabled and nsswitch_subid.
  returned: always
  type: list
  elements: dict
  contains:
    severity:
      description: V(critical) or V(warning).
      type: str
    kind:
      description: A stable identifier of the problem.
      type: str
    file:
      description: The file at fault, when there is one.
      type: str
    line:
      description: The line at fault, when there is one.
      type: int
    message:
      description: What is wrong, naming the line and range.
      type: str
  sample:
    - severity: critical
      kind: overlap
      file: /etc/subuid
      line: 2
      message: "/etc/subuid line 2 (bob:150000:65536) overlaps /etc/subuid line 1 (alice:100000:65536): ..."
"""

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils.subid_file import (
    CAP_SETGID,
    CAP_SETUID,
    SubidFile,
    decode_file_caps,
    findings,
    parse_login_defs,
)

HELPERS = (("newuidmap", "cap_setuid", CAP_SETUID), ("newgidmap", "cap_setgid", CAP_SETGID))
SYSCTLS = ("user.max_user_namespaces", "kernel.unprivileged_userns_clone",
           "kernel.apparmor_restrict_unprivileged_userns")


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None


def helper_report(module, name, cap_name, cap_bit):
    path = module.get_bin_path(name, opt_dirs=["/usr/bin", "/usr/sbin", "/bin", "/sbin"])
    report = {"name": name, "path": path, "exists": path is not None, "setuid": False,
              "capability": cap_name, "capability_ok": False}
    if path:
        st = os.stat(path)
        report["setuid"] = bool(st.st_mode & stat.S_ISUID) and st.st_uid == 0
        try:
            report["capability_ok"] = cap_bit in decode_file_caps(os.getxattr(path, "security.capability"))
        except (OSError, AttributeError):
            report["capability_ok"] = False
    return report


def account_of(owner):
    """(UID, primary GID) of an owner field, a name or a numeric UID; None without an account."""
    try:
        entry = pwd.getpwuid(int(owner)) if owner.isdigit() else pwd.getpwnam(owner)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return None


def host_ids(module, database):
    getent = module.get_bin_path("getent")
    if getent:
        rc, out, err = module.run_command([getent, database], environ_update={"LC_ALL": "C"})
        if rc in (0, 2):
            return sorted({int(f[2]) for f in (line.split(":") for line in out.splitlines())
                           if len(f) > 2 and f[2].isdigit()})
    entries = pwd.getpwall() if database == "passwd" else grp.getgrall()
    return sorted({e[2] for e in entries})


def nsswitch_source(text):
    for line in (text or "").splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] == "subid:" and len(fields) > 1:
            return fields[1]
    return None


def main():
    module = AnsibleModule(
        argument_spec={
            "subuid_path": {"type": "path", "default": "/etc/subuid"},
            "subgid_path": {"type": "path", "default": "/etc/subgid"},
            "login_defs_path": {"type": "path", "default": "/etc/login.defs"},
            "proc_sys_path": {"type": "path", "default": "/proc/sys"},
            "nsswitch_path": {"type": "path", "default": "/etc/nsswitch.conf"},
            "floor": {"type": "int", "default": 1000},
        },
        supports_check_mode=True,
    )
    params = module.params
    files = {}
    for kind in ("subuid", "subgid"):
        text = read(params[kind + "_path"])
        files[kind] = SubidFile(params[kind + "_path"], text) if text is not None else None

    found = findings(files, account_of, host_ids(module, "passwd"), host_ids(module, "group"), params["floor"])

    helpers = [helper_report(module, *helper) for helper in HELPERS]
    for helper in helpers:
        if not helper["exists"]:
            found.append({"severity": "critical", "kind": "helper_missing", "file": None, "line": None,
                          "message": "%s is not installed: rootless containers get only the user's own ID"
                          % helper["name"]})
        elif not (helper["setuid"] or helper["capability_ok"]):
            found.append({"severity": "critical", "kind": "helper_not_privileged", "file": helper["path"],
                          "line": None, "message": "%s has neither the setuid bit nor %s: writing ID maps "
                          "fails with 'Operation not permitted'" % (helper["path"], helper["capability"])})

    sysctls = {}
    for name in SYSCTLS:
        text = read(os.path.join(params["proc_sys_path"], *name.split(".")))
        if text is not None and text.strip().lstrip("-").isdigit():
            sysctls[name] = int(text)
    if sysctls.get("user.max_user_namespaces") == 0 or sysctls.get("kernel.unprivileged_userns_clone") == 0:
        found.append({"severity": "critical", "kind": "userns_disabled", "file": None, "line": None,
                      "message": "unprivileged user namespaces are disabled (%s)" % ", ".join(
                          "%s=%d" % item for item in sorted(sysctls.items()) if item[1] == 0)})
    if sysctls.get("kernel.apparmor_restrict_unprivileged_userns") == 1:
        found.append({"severity": "warning", "kind": "userns_disabled", "file": None, "line": None,
                      "message": "AppArmor restricts unprivileged user namespaces: only programs with "
                      "a 'userns,' profile (the distribution's podman has one) can create them"})

    source = nsswitch_source(read(params["nsswitch_path"]))
    if source and source != "files":
        found.append({"severity": "warning", "kind": "nsswitch_subid", "file": params["nsswitch_path"],
                      "line": None, "message": "subid: %s in nsswitch.conf: tools built with libsubid read "
                      "ranges from %s, not from these files" % (source, source)})

    podman = module.get_bin_path("podman")
    podman_version = None
    if podman:
        rc, out, err = module.run_command([podman, "--version"], environ_update={"LC_ALL": "C"})
        podman_version = out.strip() if rc == 0 else None

    found.sort(key=lambda f: (f["severity"] != "critical", f["file"] or "", f["line"] or 0))
    login_defs_text = read(params["login_defs_path"])
    module.exit_json(
        changed=False,
        subuid=[e._asdict() for e in files["subuid"].entries] if files["subuid"] else [],
        subgid=[e._asdict() for e in files["subgid"].entries] if files["subgid"] else [],
        login_defs=parse_login_defs(login_defs_text or ""),
        helpers=helpers,
        sysctls=sysctls,
        nsswitch_subid=source,
        podman_version=podman_version,
        findings=found,
    )


if __name__ == "__main__":
    main()
