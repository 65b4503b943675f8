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
  sssd_conf_path:
    description: Path of SSSD's configuration, read to tell whether its domains enumerate.
    type: path
    default: /etc/sssd/sssd.conf
  floor:
    description: Ranges that reach below this ID are reported as critical.
    type: int
    default: 1000
  gather_subset:
    description:
      - What to inspect. V(all) is everything this page describes.
      - V(helpers) is the newuidmap and newgidmap helpers alone, RV(helpers) and the findings about
        them. It skips reading the files, listing the accounts and running C(podman --version), so it
        costs about as little as a module run can. The role P(fleetid.subid.uidmap#role) uses it on
        every run.
      - Return values outside the subset are empty.
    type: list
    elements: str
    choices: [all, helpers]
    default: [all]
extends_documentation_fragment:
  - fleetid.subid.subid_paths
  - fleetid.subid.attributes.host_info
  - ansible.builtin.action_common_attributes
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
  description:
    - Entries of the subuid file, in file order. These are the lines that hold a range.
    - Lines that hold no range are in RV(findings) as V(malformed_line).
  returned: always
  type: list
  elements: dict
  contains:
    owner:
      description: Owner field, a name or a numeric UID.
      type: str
    start:
      description: First ID.
      type: int
    count:
      description: Number of IDs.
      type: int
    line:
      description: Line number, starting at 1.
      type: int
    last_line:
      description: When shadow joins lines at a NUL byte, the number of the last line it joined, otherwise V(null).
      type: int
    ignored:
      description: Whether shadow skips this line, which ends in CR or starts with C(+) or C(-) (a NIS entry).
      type: bool
    note:
      description:
        - V(null) for a plain C(owner:start:count) line.
        - Otherwise, how shadow reads the line. Examples are octal or hex numbers, extra
          fields, a NUL byte, and a CR line ending, which makes shadow ignore the line.
      type: str
  sample: [{owner: alice, start: 100000, count: 65536, line: 1, note: null}]
subgid:
  description: Well-formed entries of the subgid file.
  returned: always
  type: list
  elements: dict
  sample: [{owner: alice, start: 100000, count: 65536, line: 1}]
login_defs:
  description:
    - SUB_UID_MIN/MAX/COUNT, SUB_GID_MIN/MAX/COUNT, UID_MIN/MAX and GID_MIN/MAX values found in login.defs.
    - Also the switches of shadow 4.19 and later, as the strings found, when set
      (SUB_UID_STORE_BY_UID, SUB_GID_STORE_BY_UID, SUB_UID_DETERMINISTIC, SUB_GID_DETERMINISTIC,
      UNSAFE_SUB_UID_DETERMINISTIC_WRAP and UNSAFE_SUB_GID_DETERMINISTIC_WRAP).
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
      description: Where it was found (in E(PATH), then C(/usr/bin), C(/usr/sbin), C(/bin), C(/sbin)), or V(null).
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
      description:
        - Whether the file carries that capability in its permitted set with the effective flag.
        - Read from the C(security.capability) extended attribute.
      type: bool
    file_caps:
      description:
        - The decoded C(security.capability) attribute, or V(null) when the file has none.
        - C(permitted) lists capability numbers. C(cap_setgid) is 6 and C(cap_setuid) is 7.
      type: dict
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
id_sources:
  description:
    - The sources of the passwd and group databases (nsswitch.conf), the SSSD domains with whether
      each enumerates, and whether enumerating the databases lists every account (V(complete)).
    - When V(complete) is false, the host-ID check (V(host_id_collision)) sees the local accounts and
      only those directory accounts and groups it resolves by name, such as the owners; V(reasons) says why.
  returned: always
  type: dict
  sample: {passwd: [files, sss], group: [files, sss], sssd_domains: {example: false}, complete: false,
           reasons: ["/etc/nsswitch.conf: passwd: sss, and SSSD domain example has enumerate = false (/etc/sssd/sssd.conf)"]}
systemd_id_allocators:
  description:
    - Paths of systemd-nspawn and systemd-nsresourced on the host. These programs hand out
      ID blocks of their own without reading the subid files.
    - Searched in E(PATH), the usual system folders and C(/usr/lib/systemd).
  returned: always
  type: list
  elements: str
  sample: [/usr/bin/systemd-nspawn]
files:
  description: The subuid and subgid files this module read (O(subuid_path) and O(subgid_path)).
  returned: always
  type: dict
  sample: {subuid: /etc/subuid, subgid: /etc/subgid}
shadow_version:
  description:
    - The version of the package that ships shadow's tools (C(passwd) on Debian and Ubuntu, C(shadow-utils)
      on Fedora and RHEL, C(shadow) on SUSE, Arch and Alpine), as the package manager reports it; V(null)
      when none of them knows it.
  returned: always
  type: str
  sample: "1:4.13+dfsg1-1+deb12u1"
podman_version:
  description: C(podman --version) output, or V(null) when Podman is not installed.
  returned: always
  type: str
  sample: podman version 4.3.1
findings:
  description:
    - Problems found, most severe first.
    - "The V(kind) values are stable identifiers:"
    - "V(overlap) (critical): two different accounts' ranges share IDs."
    - "V(maps_root) (critical): a range contains ID 0."
    - "V(below_floor) (critical): a range reaches below O(floor)."
    - "V(host_id_collision) (critical): a range contains the UID (subuid) or GID (subgid)
      of an account or group the host knows, including directory-service ones that C(getent) lists."
    - "V(owner_id_in_range) (critical): a range contains its own owner's UID (subuid) or primary GID (subgid)."
    - "V(unknown_owner) (warning): the owner has no account on this host. Where RV(shadow_version) is 4.20 or
      later, shadow skips such a line (getsubids and newuidmap give the owner no range until the account
      resolves), and the message says so. Before 4.20 it is not reported for C(containers), whose entry
      Podman and CRI-O read without an account; from 4.20, Podman built with libsubid (as Debian's is)
      needs a C(containers) account too."
    - "V(kubelet_ranges) (critical): the C(kubelet) owner has more than one range in a file, by name or by
      its numeric UID (getsubids returns them all), or its subuid and subgid ranges differ. The kubelet
      refuses to start in either case."
    - "V(login_defs_deterministic): login.defs sets SUB_UID_DETERMINISTIC or SUB_GID_DETERMINISTIC to yes,
      so useradd computes new ranges from the UID and ignores the lines already in the files (warning);
      critical when the matching UNSAFE_SUB_*_DETERMINISTIC_WRAP is yes too."
    - "V(beyond_id_space) (critical): shadow reads the range as reaching past ID 2^32-1 (its numbers are
      64-bit), so its owner may map every ID from its start up, as with C(bob:100000:4294967295) or C(bob:0:0).
      Where RV(shadow_version) is 4.20 or later, shadow skips a line whose start plus count passes 2^32
      instead, and such a line is a warning: its owner gets no range from it."
    - "V(unreadable) (critical): a NUL byte before the newline of the last line makes shadow refuse the whole
      file, so newuidmap and newgidmap fail for every owner."
    - "V(missing_final_newline): the file's last line has no newline. Shadow 4.19 and later then refuse the
      whole file (C(getsubids), C(useradd) and C(newuidmap) fail for every owner), so it is critical where
      RV(shadow_version) is 4.19 or later and a warning elsewhere (a later shadow upgrade breaks the host).
      M(fleetid.subid.subid) ends the file with a newline at its next write."
    - "V(unsafe_file) (critical): the file is a symbolic link or not a regular file (shadow refuses it), users
      other than root can write it, or its folder is writable by, or belongs to, other users."
    - "V(interrupted_write): a journal of fleetid.subid.subid shows a run that was interrupted. It is critical
      when the subuid file was replaced and the subgid file was not, and a warning otherwise.
      The next run of the module repairs this."
    - "V(malformed_line) (warning): a line holds no range and is no comment, or shadow reads it
      in an unusual way (see the C(note) of the entry), for example a NUL byte, a range that grants no ID,
      or a line that shadow ignores."
    - "V(consumer_compat) (warning): shadow reads the line, but other consumers fail on it or read it
      differently. This covers C(#) comments (Docker Desktop), whitespace (Podman), numbers that are not
      plain decimal such as a leading zero (Go reads base 10, shadow base 0), a range that ends at ID
      4294967295 (2^32-1, the kubelet), and numeric owners. The message names the file, the line and the problem."
    - "V(unfinished_shift) (critical): a storage shift of M(fleetid.subid.storage_shift) was begun and not closed
      (the run stopped in the middle); the next run of the subids role finishes it."
    - "V(helper_missing) (critical): newuidmap or newgidmap is not installed."
    - "V(helper_not_privileged) (critical): the helper is neither setuid root nor has its file capability."
    - "V(userns_disabled): unprivileged user namespaces are off (critical), or AppArmor restricts them (warning)."
    - "V(nsswitch_subid) (warning): nsswitch.conf names a C(subid:) source other than files."
    - "V(directory_not_enumerated) (info): the passwd or group database includes a source that does not
      list all its accounts when enumerated (SSSD with C(enumerate = false), LDAP, winbind), so the
      host-ID check could not see the whole directory. See RV(id_sources)."
    - "V(systemd_window) (warning): a range lies in systemd's container UID range (524288-1879048191)
      or foreign UID range (2147352576-2147418111), and systemd-nspawn or systemd-nsresourced is
      installed. These pick ID blocks there without reading the subid files."
  returned: always
  type: list
  elements: dict
  contains:
    severity:
      description: V(critical), V(warning) or V(info).
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
    owner:
      description: The owner field of that line, for a finding on an entry of the subuid or subgid file;
        V(null) otherwise.
      type: str
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
import re
import os
import stat

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils._storage_shift import JOURNAL_DIR, ShiftError, pending_shifts
from ansible_collections.fleetid.subid.plugins.module_utils._accounts import Accounts
from ansible_collections.fleetid.subid.plugins.module_utils._getent import GetentError, host_ids
from ansible_collections.fleetid.subid.plugins.module_utils._host_report import (
    CAP_SETGID,
    CAP_SETUID,
    SYSTEMD_ID_ALLOCATORS,
    decode_file_caps,
    findings,
    login_defs_findings,
    nsswitch_subid_source,
    parse_login_defs,
    sort_findings,
    system_findings,
    systemd_window_findings,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SUBID_PATHS_SPEC, SubidFile
from ansible_collections.fleetid.subid.plugins.module_utils._subid_transaction import (
    journal_path,
    journal_state,
    read_journal,
)
from ansible_collections.fleetid.subid.plugins.module_utils.directory import id_source_report, not_enumerated_finding
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import DEFAULT_FLOOR
from ansible_collections.fleetid.subid.plugins.module_utils.shadow_lock import (
    UnsafePathError,
    folder_problems,
    read_regular,
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


HELPER_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin")
# systemd's own services live outside PATH.
SYSTEMD_LIBEXEC_DIRS = ("/usr/lib/systemd", "/lib/systemd")


def find_program(name, extra_dirs=HELPER_DIRS):
    """The first executable ``name`` in PATH, then in ``extra_dirs``, or None.

    (get_bin_path would look in its extra folders before PATH.)"""
    folders = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d] + list(extra_dirs)
    for folder in folders:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def systemd_id_allocators():
    """Paths of systemd-nspawn and systemd-nsresourced on this host."""
    paths = (find_program(name, HELPER_DIRS + SYSTEMD_LIBEXEC_DIRS) for name in SYSTEMD_ID_ALLOCATORS)
    return [path for path in paths if path]


def helper_report(module, name, cap_name, cap_bit):
    """Where a helper is and whether it can write ID maps: setuid root, or the file
    capability it needs in its permitted set with the effective flag (read from the
    ``security.capability`` xattr, no getcap needed)."""
    path = find_program(name)
    report = {"name": name, "path": path, "exists": path is not None, "setuid": False,
              "capability": cap_name, "capability_ok": False, "file_caps": None}
    if path:
        st = os.stat(path)
        report["setuid"] = bool(st.st_mode & stat.S_ISUID) and st.st_uid == 0
        try:
            caps = decode_file_caps(os.getxattr(path, "security.capability"))
        except (OSError, AttributeError):  # no xattr (ENODATA), or no xattr support
            caps = None
        if caps is not None:
            report["file_caps"] = {"permitted": sorted(caps["permitted"]), "effective": caps["effective"],
                                   "revision": caps["revision"]}
            report["capability_ok"] = cap_bit in caps["permitted"] and caps["effective"]
    return report


# The package manager's name for the package that ships shadow's tools.
SHADOW_PACKAGES = (("dpkg-query", ["-W", "-f", "${Version}", "passwd"]),
                   ("rpm", ["-q", "--qf", "%{VERSION}\\n", "shadow-utils", "shadow"]),
                   ("apk", ["list", "--installed", "shadow"]),
                   ("pacman", ["-Q", "shadow"]))


def shadow_version(module):
    """(what the package manager says, (major, minor)) of shadow; (None, None) when unknown."""
    for tool, args in SHADOW_PACKAGES:
        path = module.get_bin_path(tool)
        if not path:
            continue
        dummy, out, dummy = module.run_command([path] + args, environ_update={"LC_ALL": "C"})
        for line in out.splitlines():  # rpm exits 1 when one of the two names is not installed
            # 1:4.13+dfsg1-1 (dpkg), 4.15.1 (rpm), shadow-4.16.0-r1 x86_64 (apk), shadow 4.16.0-1 (pacman)
            found = re.search(r"(?:^|[\s:-])(4)\.(\d+)", line)
            if found:
                return line.strip(), (int(found.group(1)), int(found.group(2)))
    return None, None


def group_ids(module):
    """Sorted GIDs from ``getent group`` (or grp where getent is missing or fails)."""
    try:
        return host_ids(module, "group")[0]
    except GetentError:
        return sorted({e.gr_gid for e in grp.getgrall()})


def file_findings(params, texts):
    """Critical findings about the subid files themselves: a symbolic link or other
    non-regular file (texts[kind] is then the UnsafePathError), a file or folder other
    users can write, and a journal left by an interrupted run of fleetid.subid.subid."""
    found = []

    def add(severity, kind, path, message):
        found.append({"severity": severity, "kind": kind, "file": path, "line": None, "message": message})

    for kind in ("subuid", "subgid"):
        path = params[kind + "_path"]
        if isinstance(texts[kind], UnsafePathError):
            add("critical", "unsafe_file", path, "%s: newuidmap and newgidmap cannot read it" % texts[kind])
            continue
        if texts[kind] is None:
            continue
        st = os.lstat(path)
        if st.st_uid != 0 or st.st_mode & 0o022:
            add("critical", "unsafe_file", path, "%s can be written by users other than root (owner UID %d, mode "
                "%04o): whoever can write it can map the host's root into a container" % (
                    path, st.st_uid, st.st_mode & 0o7777))
        for problem in folder_problems(path):
            add("critical", "unsafe_file", path, "%s: %s, so other users could replace it" % (path, problem))
    journal = journal_path(params["subuid_path"])
    try:
        data = read_regular(journal)
    except (OSError, UnsafePathError) as exc:
        add("critical", "interrupted_write", journal, "%s cannot be read: %s" % (journal, exc))
        return found
    if data is not None:
        entry = read_journal(data)
        state = None
        if entry is not None and not any(isinstance(t, UnsafePathError) for t in texts.values()) \
                and (entry["first"]["path"], entry["second"]["path"]) == (params["subuid_path"], params["subgid_path"]):
            try:
                state = journal_state(entry)
            except (OSError, UnsafePathError):
                state = "changed"
        if state == "split":
            add("critical", "interrupted_write", params["subuid_path"], "%s was replaced by a run of "
                "fleetid.subid.subid that was interrupted before it replaced %s (journal %s): the two files "
                "disagree; the next run of the module rolls %s back" % (
                    params["subuid_path"], params["subgid_path"], journal, params["subuid_path"]))
        else:
            add("warning", "interrupted_write", journal, "%s was left by an interrupted run of fleetid.subid.subid "
                "(%s); the next run of the module removes it" % (
                    journal, "the files changed since" if state == "changed" else "the files agree"))
    return found


def shift_findings():
    """A storage shift begun and not closed: the owner's files are half at the old IDs."""
    try:
        pending = pending_shifts()
    except ShiftError as exc:
        return [{"severity": "critical", "kind": "unfinished_shift", "file": JOURNAL_DIR, "line": None,
                 "message": str(exc)}]
    return [{"severity": "critical", "kind": "unfinished_shift", "file": JOURNAL_DIR, "line": None, "owner": owner,
             "message": "the storage shift of %s begun %s from UIDs %s to %s is not finished: some of its container "
                        "files may still be owned by the old IDs. The next run of the subids role (site.yml) "
                        "finishes it" % (owner, shift["begun"], _spans(shift["subuid"]["from"]),
                                         _spans(shift["subuid"]["to"]))}
            for owner, shift in sorted(pending.items())]


def _spans(ranges):
    return ", ".join("%d-%d" % (start, start + count - 1) for start, count in ranges) or "none"


def main():
    module = AnsibleModule(
        argument_spec=dict(SUBID_PATHS_SPEC, **{
            "login_defs_path": {"type": "path", "default": "/etc/login.defs"},
            "proc_sys_path": {"type": "path", "default": "/proc/sys"},
            "nsswitch_path": {"type": "path", "default": "/etc/nsswitch.conf"},
            "sssd_conf_path": {"type": "path", "default": "/etc/sssd/sssd.conf"},
            "floor": {"type": "int", "default": DEFAULT_FLOOR},
            "gather_subset": {"type": "list", "elements": "str", "choices": ["all", "helpers"], "default": ["all"]},
        }),
        supports_check_mode=True,
    )
    params = module.params
    helpers = [helper_report(module, *helper) for helper in HELPERS]
    if "all" not in params["gather_subset"]:
        module.exit_json(changed=False, subuid=[], subgid=[], login_defs={}, helpers=helpers, sysctls={},
                         files={"subuid": params["subuid_path"], "subgid": params["subgid_path"]},
                         nsswitch_subid=None, id_sources={}, systemd_id_allocators=[], podman_version=None,
                         shadow_version=None,
                         findings=sort_findings(system_findings(helpers, {})))
    files, texts = {}, {}
    for kind in ("subuid", "subgid"):
        try:
            data = read_regular(params[kind + "_path"])
            texts[kind] = None if data is None else data.decode("utf-8", "surrogateescape")
        except UnsafePathError as exc:  # never read through a link: report it
            texts[kind] = exc
        except OSError:
            texts[kind] = None
        text = texts[kind]
        files[kind] = SubidFile(params[kind + "_path"], text) if isinstance(text, str) else None

    accounts = Accounts(module)
    shadow_package, shadow_release = shadow_version(module)
    found = findings(files, accounts, accounts.uids, group_ids(module), params["floor"], shadow_release)
    found.extend(file_findings(params, texts))

    sysctls = {}
    for name in SYSCTLS:
        text = read(os.path.join(params["proc_sys_path"], *name.split(".")))
        if text is not None and text.strip().lstrip("-").isdigit():
            sysctls[name] = int(text)
    nsswitch_text = read(params["nsswitch_path"])
    source = nsswitch_subid_source(nsswitch_text)
    id_sources = id_source_report(nsswitch_text, read(params["sssd_conf_path"]), params["nsswitch_path"],
                                  params["sssd_conf_path"])
    not_enumerated = not_enumerated_finding(id_sources)
    if not_enumerated:
        found.append(not_enumerated)
    found.extend(system_findings(helpers, sysctls, source, params["nsswitch_path"]))
    allocators = systemd_id_allocators()
    found.extend(systemd_window_findings(files, allocators))
    found.extend(shift_findings())

    podman = module.get_bin_path("podman")
    podman_version = None
    if podman:
        rc, out, err = module.run_command([podman, "--version"], environ_update={"LC_ALL": "C"})
        podman_version = out.strip() if rc == 0 else None

    login_defs_text = read(params["login_defs_path"])
    login_defs = parse_login_defs(login_defs_text or "")
    found.extend(login_defs_findings(login_defs, params["login_defs_path"]))
    found = sort_findings(found)
    module.exit_json(
        changed=False,
        subuid=[e._asdict() for e in files["subuid"].entries] if files["subuid"] else [],
        subgid=[e._asdict() for e in files["subgid"].entries] if files["subgid"] else [],
        login_defs=login_defs,
        files={"subuid": params["subuid_path"], "subgid": params["subgid_path"]},
        helpers=helpers,
        sysctls=sysctls,
        nsswitch_subid=source,
        id_sources=id_sources,
        systemd_id_allocators=allocators,
        podman_version=podman_version,
        shadow_version=shadow_package,
        findings=found,
    )


if __name__ == "__main__":
    main()
