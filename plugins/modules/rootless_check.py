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
  - Checks each user in turn, as root with C(runuser).
  - Checks that C(podman unshare cat /proc/self/uid_map) and C(gid_map) show the user's own ID
    mapped to 0 and exactly the expected subordinate ranges, which are the ledger's.
  - With O(image), it also loads the image into the user's storage from O(image_archive)
    when missing. It runs the image with C(podman run) as the user, and inside the container
    changes a file's owner to the highest ID of the user's map. This proves the whole range
    is usable.
  - Returns a report for each user. It fails when any user fails, and names the user and the reason.
    A failure caused by an image that needs more IDs than the user has says so, with the fix.
  - Each passed proof leaves a record on the host, C(O(state_dir)/USER.json), root-owned and not
    writable by the user. It holds the digest of what was proven and the Podman version. The digest covers the user's
    UID and GID, the expected ranges, the user's lines in the subuid and subgid files, the
    image, and the options. A later run whose digest and C(podman --version) match that
    record starts no Podman for the user. It reports RV(users[].proof=before) with the time of the
    proof. Everything else, a new user, a changed map, a new Podman version, a failed or
    missing record, or O(force=true), gets the full proof again, RV(users[].proof=now).
    A failed proof removes the user's record.
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
  state_dir:
    description:
      - Folder for the proof records, created root-owned with mode 0755. Records in a folder or
        file that another user could write are not trusted. The proof runs again.
    type: path
    default: /var/lib/fleetid-subid/rootless-proofs
  force:
    description: Prove every user again, whatever the records say.
    type: bool
    default: false
  create_homes:
    description:
      - Create the home of a user checked when it does not exist yet, with C(mkhomedir_helper),
        the program C(pam_mkhomedir) runs at a directory user's first login. The home gets the
        user's ownership, the contents of C(/etc/skel) and the mode that O(home_umask) leaves.
      - Only the homes of users this run proves, who have ranges in O(subuid) and O(subgid), and only
        under one of O(home_roots), so that a directory entry cannot make this module create a folder anywhere else.
      - Without it, a user whose home is missing fails the check, which says so.
    type: bool
    default: false
  home_roots:
    description:
      - The folders under which O(create_homes) may create a home, absolute and not V(/). A missing
        home elsewhere (V(/), V(/var/lib/...), a path through V(..)) is not created; the check reports it.
    type: list
    elements: path
    default: [/home]
  home_umask:
    description: The umask C(mkhomedir_helper) applies to a home it creates; V(0077) gives mode 0700.
    type: str
    default: "0077"
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
    details: >-
      In check mode, users with a matching record are reported as RV(users[].proof=before). For the others,
      only the ID maps are checked (RV(users[].proof=pending)), and no image is loaded or run. No record is written.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
extends_documentation_fragment:
  - fleetid.subid.subid_paths
  - ansible.builtin.action_common_attributes
  - fleetid.subid.rootless
seealso:
  - module: fleetid.subid.allocate
  - module: fleetid.subid.subid
  - module: fleetid.subid.rootless_migrate
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
    home_created:
      description: Whether this run created the user's missing home (in check mode, whether a real run would).
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
    proof:
      description:
        - V(now) when the proof ran in this run and passed.
        - V(before) when an earlier proof passed with the same digest and Podman version, so nothing ran now.
        - V(failed) when the proof ran and failed.
        - V(pending) in check mode when a real run would prove the user again.
      type: str
      choices: [now, before, failed, pending]
    reason:
      description: Why the proof ran, for example V(no record), V(map or image changed), V(Podman version changed), V(forced). Empty for V(before).
      type: str
    proven_at:
      description: When the proof that passed ran, in UTC ISO 8601 format. V(null) when none passed.
      type: str
    podman_version:
      description: The Podman version proven, from C(podman --version).
      type: str
    digest:
      description: SHA-256 of what the proof covers, as stored in the record.
      type: str
  sample:
    - name: alice
      ok: false
      proof: failed
      reason: no record
      proven_at: null
      podman_version: podman version 4.3.1
      digest: 0f3c...
      uid_map: [[0, 2001, 1], [1, 100000, 65536]]
      gid_map: [[0, 2001, 1], [1, 100000, 65536]]
      image_loaded: false
      home_created: false
      ran: false
      highest_id: 65536
      problems:
        - "not enough subordinate IDs: the image has files owned by IDs above the 65536 that alice can map; ..."
"""

import datetime
import hashlib
import os
import pwd
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils._proof_records import (
    RECORD_VERSION,
    ProofRecordError,
    ProofRecords,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SUBID_PATHS_SPEC
from ansible_collections.fleetid.subid.plugins.module_utils.rootless import (
    PODMAN_SPEC,
    explain_podman_error,
    highest_inside_id,
    map_problems,
    parse_id_map,
    podman_argv,
    proof_digest,
    subid_lines,
)

MAP_SEPARATOR = "--fleetid-gid-map--"


class UserCheck:
    def __init__(self, module, podman, name):
        self.module = module
        self.podman = podman
        self.name = name
        self.report = {"name": name, "ok": False, "uid_map": [], "gid_map": [], "image_loaded": False,
                       "home_created": False, "ran": None, "highest_id": 0, "problems": [], "proof": "failed", "reason": "",
                       "proven_at": None, "podman_version": None, "digest": None}

    def podman_cmd(self, *args):
        argv = podman_argv(self.name, self.podman, self.module.params["podman_options"], args)
        return self.module.run_command(argv, cwd="/", environ_update={"LC_ALL": "C"})

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
            # Podman 3.0 can exit non-zero after the command ran, saying nothing: give the status.
            reason = explain_podman_error(err + out, self.name, total) if err.strip() else (
                "podman exited with status %d and no error message, after the command printed %r"
                % (rc, out.strip()[-200:]))
            self.problem("podman run %s failed: %s" % (image, reason))
        elif out.strip() != "%d:%d" % (highest_uid, highest_gid):
            self.problem("chown to the highest mapped IDs %d:%d inside the container gave %r"
                         % (highest_uid, highest_gid, out.strip()))


def home_refusal(home, roots):
    """Why the missing home ``home`` is not to be created, or None: it must lie strictly
    under one of ``roots`` once ``..`` and repeated slashes are resolved away."""
    path = os.path.normpath(home) if home.startswith("/") else None
    for root in roots:
        root = os.path.normpath(root)
        if path and path.startswith(root + "/"):
            return None
    return "it is not created, because it is not under the home roots (%s)" % ", ".join(roots)


def expected_ranges(entries, name):
    return [(int(e["start"]), int(e["count"])) for e in entries if e.get("name") == name]


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def main():
    module = AnsibleModule(
        argument_spec=dict({
            "users": {"type": "list", "elements": "str", "required": True},
            "subuid": {"type": "list", "elements": "dict", "required": True},
            "subgid": {"type": "list", "elements": "dict", "required": True},
            "image": {"type": "str"},
            "image_archive": {"type": "path"},
            "run_options": {"type": "list", "elements": "str", "default": ["--network", "none"]},
            "state_dir": {"type": "path", "default": "/var/lib/fleetid-subid/rootless-proofs"},
            "force": {"type": "bool", "default": False},
            "create_homes": {"type": "bool", "default": False},
            "home_roots": {"type": "list", "elements": "path", "default": ["/home"]},
            "home_umask": {"type": "str", "default": "0077"},
        }, **dict(SUBID_PATHS_SPEC, **PODMAN_SPEC)),
        supports_check_mode=True,
    )
    params = module.params
    podman = module.get_bin_path("podman", required=True)
    module.get_bin_path("runuser", required=True)
    archive = params["image_archive"]
    if archive and not os.path.isfile(archive):
        module.fail_json(msg="image_archive %s does not exist on the host" % archive)
    bad = [name for name in params["users"] if not name or "/" in name or name.startswith(".")]
    if bad:
        module.fail_json(msg="not user names: %s" % ", ".join(repr(name) for name in bad))
    bad_roots = [root for root in params["home_roots"] if not root.startswith("/") or os.path.normpath(root) == "/"]
    if bad_roots:
        module.fail_json(msg="home_roots must be absolute folders other than /, got %s"
                             % ", ".join(repr(root) for root in bad_roots))
    if not re.match(r"\A0?[0-7]{3}\Z", params["home_umask"]):
        module.fail_json(msg="home_umask must be an octal umask such as 0077, got %r" % params["home_umask"])
    rc, out, err = module.run_command([podman, "--version"], environ_update={"LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg="%s --version failed: %s" % (podman, (err or out).strip()))
    version = out.strip()

    accounts = {}
    for name in params["users"]:
        try:
            accounts[name] = pwd.getpwnam(name)
        except KeyError:
            pass
    keys = set(accounts) | {str(a.pw_uid) for a in accounts.values()}
    lines = {"subuid": subid_lines(params["subuid_path"], keys), "subgid": subid_lines(params["subgid_path"], keys)}
    common = {"image": params["image"], "archive": file_digest(archive) if archive and params["image"] else None,
              "podman_options": params["podman_options"], "run_options": params["run_options"]}

    # Homes first, in one pass: a converged host has them all, and costs one stat each.
    homeless = [name for name, account in accounts.items() if not os.path.isdir(account.pw_dir)]
    # Only for the users proven here (ranges in both maps), only under the home roots.
    creatable = {name: home_refusal(accounts[name].pw_dir, params["home_roots"])
                 if expected_ranges(params["subuid"], name) and expected_ranges(params["subgid"], name)
                 else "%s has no ranges to prove, so no home is created for it" % name
                 for name in homeless} if params["create_homes"] else {}
    to_create = [name for name in homeless if params["create_homes"] and creatable[name] is None]
    if to_create and not module.check_mode:
        helper = module.get_bin_path("mkhomedir_helper", required=True, opt_dirs=["/usr/sbin", "/sbin"])
        for name in to_create:
            rc, out, err = module.run_command([helper, name, params["home_umask"]])
            if rc != 0:
                module.fail_json(msg="mkhomedir_helper could not create the home %s of %s: %s"
                                     % (accounts[name].pw_dir, name, (err or out).strip()))

    records = ProofRecords(params["state_dir"], module.check_mode)
    reports, changed = [], bool(to_create)
    try:
        lock = records.open()
    except ProofRecordError as exc:
        module.fail_json(msg=str(exc))
    with lock:
        for name in params["users"]:
            check = UserCheck(module, podman, name)
            if name in homeless:
                if name not in to_create:
                    why = creatable.get(name) or ("create it (or set create_homes, which the rootless_podman "
                                                  "role's rootless_podman_create_homes does)")
                    check.problem("%s's home %s does not exist: %s" % (name, accounts[name].pw_dir, why))
                    check.report["proof"] = "failed"
                    reports.append(check.report)
                    continue
                check.report["home_created"] = True
                if module.check_mode:  # no home to run Podman in yet: a real run creates it, then proves
                    check.report.update(ok=True, proof="pending", reason="home to be created")
                    reports.append(check.report)
                    continue
            expected_uid = expected_ranges(params["subuid"], name)
            expected_gid = expected_ranges(params["subgid"], name)
            account = accounts.get(name)
            digest = None
            if account:
                own = (name, str(account.pw_uid))
                digest = proof_digest(dict(common, name=name, uid=account.pw_uid, gid=account.pw_gid,
                                           subuid=sorted(expected_uid), subgid=sorted(expected_gid),
                                           subuid_lines=[line for key in own for line in lines["subuid"].get(key, [])],
                                           subgid_lines=[line for key in own for line in lines["subgid"].get(key, [])]))
            record = records.read(name) if account else None
            if record is None:
                reason = "no record"
            elif record.get("digest") != digest:
                reason = "map or image changed"
            elif record.get("podman_version") != version:
                reason = "Podman version changed"
            elif record.get("result") != "ok":
                reason = "the last proof failed"
            else:
                reason = "forced" if params["force"] else ""
            check.report.update(digest=digest, podman_version=version)
            if not reason:
                check.report.update(ok=True, proof="before", proven_at=record.get("proven_at"))
                reports.append(check.report)
                continue
            report = check.run(expected_uid, expected_gid)
            report["reason"] = reason
            changed = changed or report["image_loaded"]
            if module.check_mode:
                report["proof"] = "pending" if report["ok"] else "failed"
                changed = changed or report["ok"]
            elif report["ok"]:
                report.update(proof="now", proven_at=datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"))
                records.write(name, {"version": RECORD_VERSION, "user": name, "digest": digest,
                                     "podman_version": version, "result": "ok", "proven_at": report["proven_at"],
                                     "image": params["image"], "uid_map": report["uid_map"],
                                     "gid_map": report["gid_map"]})
                changed = True
            else:
                report["proof"] = "failed"
                # A failed proof must never leave an older "passed" behind.
                changed = records.remove(name) or changed
            reports.append(report)

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
