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
  - First reads the user's lines in the subuid and subgid files exactly as shadow reads them. They
    must give the user the expected ranges, which are the ledger's; a NUL byte on the line before
    can take them away although the user's own line is unchanged.
  - Checks that C(podman unshare cat /proc/self/uid_map) and C(gid_map) show the user's own ID
    mapped to 0 and exactly the expected subordinate ranges.
  - With O(proof=container) (the default), it also runs a container as the user with C(podman run),
    and inside it changes a file's owner to the highest ID of the user's map (or O(images[].check_id)).
    This proves that the whole range is usable, and that the image unpacks into the user's storage.
  - The image is O(images[].image) for the users an entry of O(images) names, else O(image).
    Without either, it is an image built on the host from the host's own C(sh), C(touch),
    C(chown) and C(stat) and the libraries they load, which each user imports with C(podman import).
    No registry is needed.
  - With O(proof=maps), only the files and the ID maps are checked and no container runs;
    RV(users[].proven_by) says so.
  - Returns a report for each user. It fails when any user fails, and names the user and the reason.
    A failure caused by an image that needs more IDs than the user has says so, with the fix.
  - Each passed proof leaves a record on the host, C(O(state_dir)/USER.json), root-owned and not
    writable by the user. It holds digests of what was proven, and the Podman version. They cover the user's
    UID and GID, the expected ranges, the user's lines and the ranges shadow reads from them, the
    image and the ID checked, the options, and the Podman configuration files the user's run reads
    (the user's in C(~/.config/containers) and the system's). A later run whose digests and
    C(podman --version) match that record starts no Podman for the user, which costs a read of
    those files. It reports RV(users[].proof=before) with the time of the proof. Everything else,
    a new user, a changed file, image or configuration, a new Podman version, a failed or missing
    record, or O(force=true), gets the full proof again, RV(users[].proof=now), and
    RV(users[].reason) names what changed. A failed proof removes the user's record.
  - A record does not cover what lies outside those files, for example a full disk, a kernel
    setting or SELinux label changed since, or a runtime (crun, runc) upgraded without a new Podman
    version. Use O(force=true) to prove again after such changes.
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
  proof:
    description:
      - V(container) runs a container as each user (see O(image)). V(maps) checks only the files and
        the ID maps Podman builds, and runs no container.
    type: str
    choices: [container, maps]
    default: container
  image:
    description:
      - Local image to run as each user that no entry of O(images) names.
      - Without it, the image is built on the host from the host's C(sh), C(touch), C(chown) and
        C(stat) (see the description), as C(localhost/fleetid-subid-proof:DIGEST).
    type: str
  image_archive:
    description:
      - Path on the host of an archive from C(podman save). Each user loads it with C(podman load)
        when O(image) is not in that user's storage yet. No registry is needed.
      - The archive must be readable by every user checked.
    type: path
  images:
    description:
      - Images for some users, for example a high-UID image for the owners who need it. The first entry
        that names a user, in O(images[].users) or through one of O(images[].groups), is that user's.
    type: list
    elements: dict
    default: []
    suboptions:
      image:
        description: Local image to run, as O(image).
        type: str
        required: true
      image_archive:
        description: Archive of O(images[].image) on the host, as O(image_archive).
        type: path
      users:
        description: Users who run this image.
        type: list
        elements: str
        default: []
      groups:
        description: Groups whose members (in the member list or by primary group, through NSS) run this image.
        type: list
        elements: str
        default: []
      check_id:
        description:
          - The ID inside the container that the proof gives a file, for example the highest owner ID in
            the image. It must be within the user's map. The default is the highest ID of the map.
        type: int
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
    support: full
    details: >-
      Users with a matching record are reported as RV(users[].proof=before). For the others, the files and
      the ID maps are checked and no image is loaded or run: RV(users[].proof=pending) says a real run would
      prove them, and RV(users[].proven_by) how. Where the real run would first install Podman, copy the image
      archive, write the user's ranges or create the home, the user is reported as pending with that reason.
      No record is written.
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
- name: Prove rootless Podman with a container built from the host's own tools
  fleetid.subid.rootless_check:
    users: [alice, bob]
    subuid: "{{ alloc.subuid }}"
    subgid: "{{ alloc.subgid }}"
  register: rootless

- name: The same, with a high-UID image for the members of group data
  fleetid.subid.rootless_check:
    users: [alice, bob, carol]
    subuid: "{{ alloc.subuid }}"
    subgid: "{{ alloc.subgid }}"
    images:
      - image: localhost/highuid:latest
        image_archive: /var/tmp/highuid.tar
        groups: [data]
        check_id: 4000000
"""

RETURN = r"""
summary:
  description:
    - What was proven and how, one sentence for each kind of result, naming the users. In check mode, what
      a real run would prove and what it does first.
  returned: always
  type: str
  sample: >-
    Proven now with a container that owned a file at the ID shown: alice (ID 65536), carol (ID 4000000).
    Proven before with a container, nothing changed since: dave.
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
      description: Whether every check passed (in check mode, passed so far).
      type: bool
    proof:
      description:
        - V(now) when the proof ran in this run and passed.
        - V(before) when an earlier proof passed with the same digests and Podman version, so nothing ran now.
        - V(failed) when the proof ran and failed.
        - V(pending) in check mode when a real run would prove the user.
      type: str
      choices: [now, before, failed, pending]
    proven_by:
      description:
        - What the proof is, or would be. V(container) when a container ran as the user and gave a file
          the ID RV(users[].check_id). V(maps) when only the files and the ID maps were checked.
      type: str
      choices: [container, maps]
    image:
      description: The image run as the user, V(null) for V(maps).
      type: str
    check_id:
      description: The ID inside the container that the proof gave a file, V(null) for V(maps).
      type: int
    reason:
      description:
        - Why the proof ran, for example V(no record), V(the ranges changed), V(the image changed),
          V(the Podman configuration changed), V(Podman version changed), V(forced). Empty for V(before).
        - In check mode, also what a real run does first, for example V(Podman is not installed yet).
      type: str
    uid_map:
      description: The UID map Podman uses, as C([inside, outside, count]) rows.
      type: list
      elements: list
    gid_map:
      description: The GID map Podman uses.
      type: list
      elements: list
    image_loaded:
      description: Whether the image was loaded or imported into the user's storage by this run.
      type: bool
    home_created:
      description: Whether this run created the user's missing home (in check mode, whether a real run would).
      type: bool
    ran:
      description: Whether C(podman run) of the image succeeded. V(null) when not attempted.
      type: bool
    highest_id:
      description: The highest UID inside the user's namespace.
      type: int
    problems:
      description: What is wrong, one message each. Empty when RV(users[].ok) is true.
      type: list
      elements: str
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
      proven_by: container
      image: localhost/highuid:latest
      check_id: 65536
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
import grp
import hashlib
import os
import pwd
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleetid.subid.plugins.module_utils import _proof_image
from ansible_collections.fleetid.subid.plugins.module_utils._proof_records import (
    RECORD_VERSION,
    ProofRecordError,
    ProofRecords,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SUBID_PATHS_SPEC
from ansible_collections.fleetid.subid.plugins.module_utils.rootless import (
    PODMAN_SPEC,
    config_digest,
    explain_podman_error,
    highest_inside_id,
    map_problems,
    parse_id_map,
    podman_argv,
    proof_digest,
    shadow_ranges,
)

MAP_SEPARATOR = "--fleetid-gid-map--"
# What each part of a proof's digest covers, as the reason to prove again names it.
PART_CHANGED = (("ranges", "the ranges changed"), ("image", "the image changed"),
                ("options", "the Podman options changed"), ("config", "the Podman configuration changed"))


class UserCheck:
    """One user's proof. ``plan``: {"image", "archive", "built", "check_id"}, image None for maps."""

    def __init__(self, module, podman, name, plan):
        self.module = module
        self.podman = podman
        self.name = name
        self.plan = plan
        self.report = {"name": name, "ok": False, "proof": "failed",
                       "proven_by": "container" if plan["image"] else "maps", "image": plan["image"],
                       "check_id": None, "reason": "", "uid_map": [], "gid_map": [], "image_loaded": False,
                       "home_created": False, "ran": None, "highest_id": 0, "problems": [],
                       "proven_at": None, "podman_version": None, "digest": None}

    def podman_cmd(self, *args, **kwargs):
        argv = podman_argv(self.name, self.podman, self.module.params["podman_options"], args)
        return self.module.run_command(argv, cwd="/", environ_update={"LC_ALL": "C"}, **kwargs)

    def problem(self, message):
        self.report["problems"].append(message)

    def run(self, account, expected_uid, expected_gid, run_image=True):
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
        if self.plan["image"]:
            check_id = self.plan["check_id"]
            if check_id is None:
                check_uid, check_gid = highest_uid, highest_gid
            elif check_id > min(highest_uid, highest_gid):
                self.problem("check_id %d is beyond %s's map, whose highest ID is %d"
                             % (check_id, self.name, min(highest_uid, highest_gid)))
                return self.report
            else:
                check_uid = check_gid = check_id
            self.report["check_id"] = check_uid
            if run_image and not self.report["problems"]:
                self.run_image(check_uid, check_gid)
        self.report["ok"] = not self.report["problems"]
        return self.report

    def _mapped_total(self):
        return sum(count for inside, outside, count in self.report["uid_map"] if inside != 0)

    def load_image(self):
        """Put the plan's image into the user's storage when it is not there; False on failure."""
        image, total = self.plan["image"], self._mapped_total()
        rc, out, err = self.podman_cmd("image", "exists", image)
        if rc == 0:
            return True
        if self.plan["built"]:
            rc, out, err = self.podman_cmd("import", "--quiet", "-", image, data=self.plan["built"], binary_data=True)
            what = "podman import of the proof image built from the host's tools"
        elif self.plan["archive"]:
            rc, out, err = self.podman_cmd("load", "--quiet", "--input", self.plan["archive"])
            what = "podman load of %s" % self.plan["archive"]
        else:
            return True  # podman run names what is missing
        if rc != 0:
            self.problem("%s failed: %s" % (what, explain_podman_error(err + out, self.name, total)))
            return False
        self.report["image_loaded"] = True
        if self.plan["built"]:
            self.drop_older_proof_images(image)
        return True

    def drop_older_proof_images(self, current):
        """The proof images of earlier host tools: the user's storage keeps only the current one."""
        rc, out, err = self.podman_cmd("images", "--noheading", "--format", "{{.Repository}}:{{.Tag}}",
                                       _proof_image.IMAGE_NAME)
        for name in out.split() if rc == 0 else []:
            if name != current and name.startswith(_proof_image.IMAGE_NAME + ":"):
                self.podman_cmd("rmi", name)

    def run_image(self, check_uid, check_gid):
        if not self.load_image():
            self.report["ran"] = False
            return
        image = self.plan["image"]
        # Inside, the user's own ID is 0 and the subordinate IDs follow: owning a file by the
        # highest of them proves the whole range is mapped.
        script = "touch /tmp/fleetid-check && chown %d:%d /tmp/fleetid-check && stat -c %%u:%%g /tmp/fleetid-check" % (
            check_uid, check_gid)
        rc, out, err = self.podman_cmd("run", "--rm", *(self.module.params["run_options"] + [image, "sh", "-c", script]))
        self.report["ran"] = rc == 0
        if rc != 0:
            # Podman 3.0 can exit non-zero after the command ran, saying nothing: give the status.
            reason = explain_podman_error(err + out, self.name, self._mapped_total()) if err.strip() else (
                "podman exited with status %d and no error message, after the command printed %r"
                % (rc, out.strip()[-200:]))
            self.problem("podman run %s failed: %s" % (image, reason))
        elif out.strip() != "%d:%d" % (check_uid, check_gid):
            self.problem("chown to the IDs %d:%d inside the container gave %r" % (check_uid, check_gid, out.strip()))


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
    return sorted((int(e["start"]), int(e["count"])) for e in entries if e.get("name") == name)


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def in_group(account, group):
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return False
    return account.pw_gid == entry.gr_gid or account.pw_name in entry.gr_mem


def image_entry(params, name, account):
    """The entry of ``images`` that is this user's, or the defaults."""
    for entry in params["images"]:
        if name in entry["users"] or (account and any(in_group(account, g) for g in entry["groups"])):
            return entry
    return {"image": params["image"], "image_archive": params["image_archive"], "check_id": None}


def shadow_problem(kind, path, name, granted, expected):
    return ("%s as shadow reads it gives %s %s, the ledger says %s: newuidmap would refuse the ledger's map. "
            "Fix the file (fleetid.subid.subid_info names a line shadow joins to the next, e.g. by a NUL byte)"
            % (path, name, ", ".join("%d+%d" % r for r in granted) or "no %s range" % kind,
               ", ".join("%d+%d" % r for r in expected)))


def summary(reports, check_mode):
    """One sentence per kind of result, naming the users: what ran, what was only checked."""
    def names(proof, proven_by, with_id=False):
        return ", ".join("%s (ID %d)" % (r["name"], r["check_id"]) if with_id and r["check_id"] else r["name"]
                         for r in reports if r["proof"] == proof and r["proven_by"] == proven_by)
    sentences = []
    if check_mode:
        for proven_by, how in (("container", "with a container for"), ("maps", "by the ID maps only, no container, for")):
            if names("pending", proven_by):
                sentences.append("A real run would prove rootless Podman %s: %s." % (how, names("pending", proven_by)))
        first = ["%s: %s" % (r["name"], r["reason"].split("; ", 1)[1]) for r in reports
                 if r["proof"] == "pending" and "; " in r["reason"]]
        if first:
            sentences.append("It does this first: %s." % "; ".join(first))
    else:
        if names("now", "container"):
            sentences.append("Proven now with a container that owned a file at the ID shown: %s."
                             % names("now", "container", True))
        if names("now", "maps"):
            sentences.append("Proven now by the ID maps only, no container ran: %s." % names("now", "maps"))
    for proven_by, how in (("container", "with a container"), ("maps", "by the ID maps only")):
        if names("before", proven_by):
            sentences.append("Proven before %s, nothing changed since: %s." % (how, names("before", proven_by)))
    failed = [r["name"] for r in reports if r["proof"] == "failed"]
    if failed:
        sentences.append("Failed: %s." % ", ".join(failed))
    return " ".join(sentences) or "No users to prove."


def main():
    module = AnsibleModule(
        argument_spec=dict({
            "users": {"type": "list", "elements": "str", "required": True},
            "subuid": {"type": "list", "elements": "dict", "required": True},
            "subgid": {"type": "list", "elements": "dict", "required": True},
            "proof": {"type": "str", "choices": ["container", "maps"], "default": "container"},
            "image": {"type": "str"},
            "image_archive": {"type": "path"},
            "images": {"type": "list", "elements": "dict", "default": [], "options": {
                "image": {"type": "str", "required": True},
                "image_archive": {"type": "path"},
                "users": {"type": "list", "elements": "str", "default": []},
                "groups": {"type": "list", "elements": "str", "default": []},
                "check_id": {"type": "int"},
            }},
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
    bad = [name for name in params["users"] if not name or "/" in name or name.startswith(".")]
    if bad:
        module.fail_json(msg="not user names: %s" % ", ".join(repr(name) for name in bad))
    bad_roots = [root for root in params["home_roots"] if not root.startswith("/") or os.path.normpath(root) == "/"]
    if bad_roots:
        module.fail_json(msg="home_roots must be absolute folders other than /, got %s"
                             % ", ".join(repr(root) for root in bad_roots))
    if not re.match(r"\A0?[0-7]{3}\Z", params["home_umask"]):
        module.fail_json(msg="home_umask must be an octal umask such as 0077, got %r" % params["home_umask"])
    bad_ids = [e["check_id"] for e in params["images"] if e["check_id"] is not None and e["check_id"] < 1]
    if bad_ids:
        module.fail_json(msg="images[].check_id must be an ID of the user's subordinate range (1 or more), got %s"
                             % ", ".join(str(i) for i in bad_ids))
    module.get_bin_path("runuser", required=True)
    podman = module.get_bin_path("podman")
    version = None
    if podman:
        rc, out, err = module.run_command([podman, "--version"], environ_update={"LC_ALL": "C"})
        if rc != 0:
            module.fail_json(msg="%s --version failed: %s" % (podman, (err or out).strip()))
        version = out.strip()
    elif not module.check_mode:
        module.fail_json(msg="podman is not installed on this host (role fleetid.subid.rootless_podman installs it)")

    accounts = {}
    for name in params["users"]:
        try:
            accounts[name] = pwd.getpwnam(name)
        except KeyError:
            pass
    keys = set(accounts) | {str(a.pw_uid) for a in accounts.values()}
    read = {kind: shadow_ranges(params[kind + "_path"], keys) for kind in ("subuid", "subgid")}

    # Each user's image, and what identifies it: an archive's digest, the built image's.
    archives, pending_archives, built = {}, set(), None
    plans = {}
    for name in params["users"]:
        entry = image_entry(params, name, accounts.get(name))
        plan = {"image": None, "archive": None, "built": None, "check_id": entry.get("check_id"), "id": None}
        if params["proof"] == "container":
            archive = entry.get("image_archive")
            if entry.get("image"):
                plan.update(image=entry["image"], archive=archive)
                if archive and archive not in archives:
                    if os.path.isfile(archive):
                        archives[archive] = file_digest(archive)
                    elif module.check_mode:  # a real run copies it first
                        archives[archive] = None
                        pending_archives.add(archive)
                    else:
                        module.fail_json(msg="image_archive %s does not exist on the host" % archive)
                plan["id"] = archives.get(archive)
            else:
                if built is None:
                    try:
                        built = _proof_image.build(module.run_command, module.get_bin_path("ldd"))
                    except (_proof_image.ProofImageError, OSError) as exc:
                        module.fail_json(msg="cannot build the proof image from the host's tools: %s" % exc)
                plan.update(image="%s:%s" % (_proof_image.IMAGE_NAME, built[1][:12]), built=built[0], id=built[1])
        plans[name] = plan

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
            plan = plans[name]
            check = UserCheck(module, podman, name, plan)
            reports.append(check.report)
            account = accounts.get(name)
            if account is None:
                check.problem("%s has no local account" % name)
                continue
            if name in homeless:
                if name not in to_create:
                    why = creatable.get(name) or ("create it (or set create_homes, which the rootless_podman "
                                                  "role's rootless_podman_create_homes does)")
                    check.problem("%s's home %s does not exist: %s" % (name, account.pw_dir, why))
                    continue
                check.report["home_created"] = True
                if module.check_mode:  # no home to run Podman in yet: a real run creates it, then proves
                    check.report.update(ok=True, proof="pending", reason="home to be created")
                    continue
            expected = {kind: expected_ranges(params[kind], name) for kind in ("subuid", "subgid")}
            if not expected["subuid"] or not expected["subgid"]:
                check.problem("%s has no ranges in the ledger for this host" % name)
                continue
            own = (name, str(account.pw_uid))
            granted = {kind: sorted(r for key in own for r in read[kind][0].get(key, [])) for kind in read}
            parts = {
                "ranges": proof_digest({"uid": account.pw_uid, "gid": account.pw_gid, "expected": expected,
                                        "granted": granted, "lines": {kind: [line for key in own for line in
                                                                             read[kind][1].get(key, [])]
                                                                      for kind in read}}),
                "image": proof_digest({"proven_by": check.report["proven_by"], "image": plan["image"],
                                       "id": plan["id"], "check_id": plan["check_id"]}),
                "options": proof_digest({"podman_options": params["podman_options"],
                                         "run_options": params["run_options"]}),
                "config": config_digest(account.pw_dir),
            }
            digest = proof_digest(parts)
            check.report.update(digest=digest, podman_version=version)
            record = records.read(name)
            if record is None:
                reason = "no record"
            elif record.get("digest") != digest:
                old = record.get("parts") or {}
                reason = ", ".join(text for part, text in PART_CHANGED if old.get(part) != parts[part]) \
                    if old else "map or image changed"
            elif record.get("podman_version") != version:
                reason = "Podman version changed"
            elif record.get("result") != "ok":
                reason = "the last proof failed"
            else:
                reason = "forced" if params["force"] else ""
            if not reason:
                check.report.update(ok=True, proof="before", proven_at=record.get("proven_at"),
                                    check_id=record.get("check_id"))
                continue
            check.report["reason"] = reason
            # The host's lines must give the ledger's ranges as shadow reads them; newuidmap reads no other.
            wrong = [kind for kind in ("subuid", "subgid") if granted[kind] != expected[kind]]
            # Lines already exactly as fleetid.subid.subid writes them are not rewritten: what
            # keeps shadow from reading them (a NUL byte before) stays, and fails the real run too.
            to_write = [kind for kind in wrong if sorted(read[kind][1].get(name, [])) != sorted(
                "%s:%d:%d" % (name, start, count) for start, count in expected[kind])]
            if module.check_mode and (podman is None or to_write or plan["archive"] in pending_archives):
                # What the real run does first decides: say so instead of failing what it fixes.
                first = ("Podman is not installed yet" if podman is None else
                         "the image archive is not copied yet" if plan["archive"] in pending_archives else
                         "the host's lines do not give the ledger's ranges yet: a real run of fleetid.subid.subids "
                         "writes them first")
                check.report.update(ok=True, proof="pending", reason="%s; %s" % (reason, first))
                changed = True
                continue
            if wrong:
                for kind in wrong:
                    check.problem(shadow_problem(kind, params[kind + "_path"], name, granted[kind], expected[kind]))
                if not module.check_mode:
                    changed = records.remove(name) or changed
                continue
            check.run(account, expected["subuid"], expected["subgid"], run_image=not module.check_mode)
            changed = changed or check.report["image_loaded"]
            if module.check_mode:
                check.report["proof"] = "pending" if check.report["ok"] else "failed"
                changed = changed or check.report["ok"]
            elif check.report["ok"]:
                check.report.update(proof="now", proven_at=datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"))
                records.write(name, {"version": RECORD_VERSION, "user": name, "digest": digest, "parts": parts,
                                     "podman_version": version, "result": "ok",
                                     "proven_at": check.report["proven_at"], "proven_by": check.report["proven_by"],
                                     "image": plan["image"], "check_id": check.report["check_id"],
                                     "uid_map": check.report["uid_map"], "gid_map": check.report["gid_map"]})
                changed = True
            else:
                # A failed proof must never leave an older "passed" behind.
                changed = records.remove(name) or changed

    failed = [r for r in reports if not r["ok"]]
    if failed:
        module.fail_json(
            msg="rootless Podman does not work for %s: %s" % (
                ", ".join(r["name"] for r in failed),
                "; ".join("%s: %s" % (r["name"], " / ".join(r["problems"])) for r in failed)),
            users=reports, changed=changed, summary=summary(reports, module.check_mode))
    module.exit_json(changed=changed, users=reports, summary=summary(reports, module.check_mode))


if __name__ == "__main__":
    main()
