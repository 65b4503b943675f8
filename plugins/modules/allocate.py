#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/allocate.py, which does the work.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: allocate
short_description: Allocate fleet-wide subordinate UID/GID blocks from a central ledger
version_added: 0.1.0
description:
  - Hands each owner a block of subordinate IDs from a pool and records it in a ledger, either a
    file that lives with the inventory (keep it in git), or a PostgreSQL database shared by
    several controllers. Returns this host's entries for C(/etc/subuid) and C(/etc/subgid),
    ready for M(fleetid.subid.subid).
  - Runs on the controller only; it never connects to the host.
  - Blocks are sticky. Once given, a block is never moved or shrunk. A larger O(owners[].count)
    adds a further block for that owner, which rootless Podman uses together with the first.
  - Owners in scope C(fleet) get the same blocks on every host. Owners in scope C(host) get a
    block of their own on each host, for example C(kubelet) or C(containers).
  - No block ever contains ID 0, an ID below O(pool.floor), a O(pool.reserved) ID, or an ID of
    another block in the ledger, active or quarantined.
  - New blocks start on a multiple of O(pool.block_size), counted from the start of their
    pool range, at the lowest free place. New owners in one call are allocated in sorted
    name order, so one call's result does not depend on the order of O(owners).
  - Safe under forks and under several C(ansible-playbook) processes sharing one ledger. An
    allocation plans without a lock, then takes the ledger's writers' lock (an exclusive lock on
    C(<ledger>.lock) for a file, an advisory lock in PostgreSQL), plans again only if another
    writer changed the ledger meanwhile, and commits atomically. A call whose owners are all
    allocated reads the ledger without taking the lock.
  - A ledger file is YAML, one block per line, sorted by start. It is checked on every read;
    a syntax error, a bad field, overlapping blocks, or a block in a reserved range or below
    the floor is refused with the lines named, and nothing is written.
  - The owner C(kubelet) follows the kubelet's rules for its entry. It gets exactly one
    range, and the start and count are multiples of 65536 (idsPerPod) counted from ID 0. The
    range is never grown, because the kubelet fails to start when its range changes while
    pods exist. Give it idsPerPod x maxPods IDs, for example 7208960 for 110 pods.
  - The owners C(containers) (Podman and CRI-O C(--userns=auto)) and C(dockremap) (Docker
    C(--userns-remap)) need at least 65536 IDs. These engines give each container the
    16-bit ID space, in which C(nobody) is 65534.
  - systemd-nspawn C(-U) and systemd-nsresourced pick ID blocks in 524288-1879048191 (and
    systemd's foreign range 2147352576-2147418111) without reading C(/etc/subuid). On fleets
    that use them, list these windows in O(pool.reserved). M(fleetid.subid.subid_info) warns
    about ranges in them on hosts where these programs are installed.
  - Every block serves as both the subuid and the subgid range of its owner, so RV(subuid)
    and RV(subgid) are equal. The kubelet requires identical ranges, and audits stay simple.
author:
  - fleetid.subid maintainers (@fleetid)
options:
  owners:
    description:
      - The owners this host needs. Each item is a name, or a mapping with the keys below.
      - An owner name is 1 to 32 characters from letters, digits, V(_), V(.) and V(-), with an
        optional final V($). A name cannot add a line to C(/etc/subuid).
    type: list
    elements: raw
    required: true
    suboptions:
      name:
        description: User name, or numeric UID, that owns the block.
        type: str
        required: true
      count:
        description:
          - Total number of IDs this owner needs, for example V(4194304) for images that contain
            files owned by UIDs up to 4,000,000.
          - Defaults to O(pool.block_size).
        type: int
      scope:
        description:
          - V(fleet) gives the same blocks on every host.
          - V(host) gives a block that belongs to this host only. It is recorded as C(host:<inventory_hostname>).
        type: str
        choices: [fleet, host]
        default: fleet
      state:
        description:
          - V(present) allocates as needed. An owner whose blocks are quarantined (released, for example by the
            offboard playbook) is not taken back by V(present). It is skipped with a warning that names its blocks,
            nothing is allocated or written for it, and RV(quarantine_held) lists it. A routine run with a leaver
            still in the inventory thus never undoes the offboarding.
          - V(reactivated) is V(present) that also takes the owner's quarantined blocks back into use, for a
            person who returns. The files on disk in those ranges are still the owner's.
          - V(released) moves the owner's blocks to quarantine. They stay taken, because their IDs may still own files on disk.
          - V(reclaimed) deletes the owner's quarantined blocks, so their IDs return to the pool.
            Do this only after the owner's files are gone. It fails while the owner has active blocks.
        type: str
        choices: [present, reactivated, released, reclaimed]
        default: present
      may_be_absent:
        description:
          - V(true) for a directory account that may have no account on some or all hosts of a play. Such an owner
            gets no warning about it, and O(unknown_owners=refuse) does not refuse it.
        type: bool
        default: false
  hold:
    description:
      - Owners to leave alone in this call. They are not allocated, released or returned. An
        example is the RV(fleetid.subid.adopt#module:held) owners, whose existing entries conflict
        across the fleet and must not be remapped silently.
    type: list
    elements: str
    default: []
  host_state:
    description:
      - What the host reported of itself, as returned by RV(fleetid.subid.owners_info#module:host_state)
        (register that module's result and pass its C(host_state)).
    type: dict
    default: {}
    suboptions:
      resolved_ids:
        description:
          - IDs that the host resolved through NSS. These are the UIDs and primary GIDs of the owners
            (directory users included) and the GIDs of the owner groups.
          - When a range of O(pool.ranges) contains one of them outside O(pool.reserved) and above O(pool.floor),
            the pool is refused before anything is allocated, and nothing is written to the ledger or any host.
            A directory that cannot be enumerated may hold more IDs near a resolved one, so the pool
            must reserve the directory's ID ranges rather than carve around single IDs.
        type: list
        elements: dict
        default: []
        suboptions:
          kind:
            description: V(uid) or V(gid).
            type: str
            required: true
            choices: [uid, gid]
          id:
            description: The ID.
            type: int
            required: true
          name:
            description: Whose ID it is, for the message.
            type: str
            required: true
      present_owners:
        description:
          - Owner fields of the host's current C(/etc/subuid) lines.
          - Those with an active block in the ledger for this host that O(owners) no longer lists
            (a member who left an owner group, an owner dropped from C(subid_owners)) are returned in
            RV(unrequested) and named in a warning, unless O(report_unrequested=false). Nothing is
            released; that stays an explicit step.
        type: list
        elements: str
        default: []
      current_ranges:
        description:
          - What the host's subid files hold now.
          - With it, RV(in_step) says whether the files already hold exactly this call's RV(subuid) and
            RV(subgid), so that writing them with M(fleetid.subid.subid) would change nothing.
        type: dict
      podman_state:
        description:
          - Owner -> what marks its rootless Podman state on the host (container storage, processes in a user
            namespace), for the owners with lines there.
          - An owner here whose lines hold other ranges than the ledger gives it is held on this host unless
            O(move) lists it. Its files in the storage are owned by IDs of its current range, and would show as
            V(nobody) (65534) in every container after a move. It is left out of RV(subuid) and RV(subgid), so
            nothing is written for it, named in a warning with the fix, and listed in RV(storage_held). The
            ledger's block is allocated all the same.
        type: dict
        default: {}
      unresolved:
        description:
          - The owners without an account on the host (RV(fleetid.subid.owners_info#module:host_state.unresolved)).
            Each gets a warning, one that says "a typo?" when it resolves on no host of O(play_unresolved). The
            service owners C(containers) and C(dockremap), read by name, owners marked C(may_be_absent) and owners
            being released or reclaimed (whose account may be gone) get none.
        type: list
        elements: str
        default: []
      unsafe_lines:
        description:
          - Lines of other owners that map root, IDs below the floor or past 2^32-1
            (RV(fleetid.subid.owners_info#module:host_state.unsafe_lines)). Not used here; the C(fleetid.subid.subids) role
            role acts on them before it allocates.
        type: list
        elements: dict
        default: []
      pending_shifts:
        description:
          - Owner -> a storage shift begun and not closed on the host (RV(fleetid.subid.owners_info#module:host_state.pending_shifts)).
            Such an owner is in RV(shifts) whatever O(move) says, so the next run finishes the shift.
        type: dict
        default: {}
  play_unresolved:
    description:
      - For each host of the play, its RV(fleetid.subid.owners_info#module:host_state.unresolved). An owner in every
        one of them resolves nowhere in the play.
    type: list
    elements: list
    default: []
  unknown_owners:
    description:
      - What to do with an owner that resolves on no host of O(play_unresolved) and is not marked C(may_be_absent).
      - V(warn) allocates its block and writes its lines, with a warning on each host.
      - V(refuse) refuses it, as an owner in RV(refused), with nothing allocated or written for it.
    type: str
    choices: [warn, refuse]
    default: warn
  move:
    description:
      - Owners to move to the ledger's ranges on this host even though they have Podman state there (see
        O(host_state.podman_state)). They are listed in RV(shifts), for M(fleetid.subid.storage_shift) to give
        the files of their storage the matching IDs of the new ranges before the lines are written.
    type: list
    elements: str
    default: []
  report_unrequested:
    description:
      - Report the owners of O(host_state.present_owners) that are no longer requested. Turn it off for
        calls that pass a few owners only (onboarding, offboarding), where every other owner would read
        as no longer requested.
    type: bool
    default: true
extends_documentation_fragment:
  - fleetid.subid.attributes.controller
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - fleetid.subid.pool
  - fleetid.subid.ledger
  - fleetid.subid.ledger.lock
attributes:
  check_mode:
    support: full
    details: Reports what would be allocated, released or reclaimed, and writes nothing.
  diff_mode:
    support: full
    details: Shows the ledger lines that change. Untouched lines are not shown, because a ledger can hold tens of thousands of blocks.
notes:
  - After an owner's ranges change on a host, rootless Podman needs C(podman system migrate) as
    that owner before it uses the new map.
  - In check mode each host's prediction is made against the ledger as it is, for that host
    alone. Blocks predicted for new owners on different hosts of one run may therefore share
    IDs, where a real run allocates them one after another. The result then carries a warning
    saying so. Owners that already have blocks are predicted exactly.
seealso:
  - module: fleetid.subid.subid
"""

EXAMPLES = r"""
- name: Allocate this host's subordinate ID blocks
  fleetid.subid.allocate:
    ledger: "{{ inventory_dir }}/../ledger/subid-ledger.yml"
    pool:
      ranges:
        - {start: 100000, count: 600000000}
      reserved:
        - {start: 200000000, count: 100000000}
      block_size: 65536
    owners:
      - alice
      - {name: bob, count: 4194304}
      - {name: kubelet, count: 7208960, scope: host}
  register: alloc

- name: Write them to /etc/subuid and /etc/subgid
  fleetid.subid.subid:
    subuid: "{{ alloc.subuid }}"
    subgid: "{{ alloc.subgid }}"

- name: On a converged host, skip the write (one module run fewer)
  block:
    - name: Resolve the owners and read what the host holds now
      fleetid.subid.owners_info:
        owners: [alice, bob]
      register: resolved

    - name: Allocate
      fleetid.subid.allocate:
        ledger: "{{ inventory_dir }}/../ledger/subid-ledger.yml"
        pool: "{{ subid_pool }}"
        owners: "{{ resolved.owners }}"
        host_state: "{{ resolved.host_state }}"
      register: alloc

    - name: Write only what changes
      fleetid.subid.subid:
        subuid: "{{ alloc.subuid }}"
        subgid: "{{ alloc.subgid }}"
      when: not alloc.in_step

- name: Put a departed user's blocks in quarantine (never reused while their files may exist)
  fleetid.subid.allocate:
    ledger: "{{ inventory_dir }}/../ledger/subid-ledger.yml"
    pool: "{{ subid_pool }}"
    owners:
      - {name: carol, state: released}

- name: Return them to the pool once the user's files are gone
  fleetid.subid.allocate:
    ledger: "{{ inventory_dir }}/../ledger/subid-ledger.yml"
    pool: "{{ subid_pool }}"
    owners:
      - {name: carol, state: reclaimed}
"""

RETURN = r"""
subuid:
  description: This host's present owners and their ranges, for C(/etc/subuid). An owner may have several entries.
  returned: success
  type: list
  elements: dict
  sample: [{name: alice, start: 100000, count: 65536}, {name: bob, start: 165536, count: 4194304}]
  contains:
    name:
      description: Owner.
      type: str
    start:
      description: First subordinate ID.
      type: int
    count:
      description: Number of IDs.
      type: int
subgid:
  description: The same entries as RV(subuid), for C(/etc/subgid).
  returned: success
  type: list
  elements: dict
  sample: [{name: alice, start: 100000, count: 65536}]
allocated:
  description: Blocks added to the ledger by this call. In check mode, the blocks that would be added.
  returned: success
  type: list
  elements: dict
  sample: [{owner: alice, scope: fleet, start: 100000, count: 65536}]
quarantine_held:
  description:
    - Owners listed V(present) whose blocks are quarantined, each with its blocks. They were given nothing;
      list them as V(reactivated) to take the blocks back, or remove them from the owners.
  returned: success
  type: list
  elements: dict
  sample: [{owner: bob, scope: fleet, blocks: [{owner: bob, scope: fleet, start: 165536, count: 65536}]}]
reactivated:
  description: Quarantined blocks given back to their owner (listed V(reactivated)).
  returned: success
  type: list
  elements: dict
  sample: []
released:
  description: Blocks moved to quarantine.
  returned: success
  type: list
  elements: dict
  sample: [{owner: carol, scope: fleet, start: 231072, count: 65536}]
reclaimed:
  description: Quarantined blocks deleted from the ledger, so their IDs are free again.
  returned: success
  type: list
  elements: dict
  sample: []
refused:
  description:
    - Owners of O(owners) whose name cannot be written to the ledger and the subid files, as C({name, reason})
      items. Nothing is allocated or written for them, and the other owners are served; a warning names them.
    - Accepted are the names C(useradd) accepts (letters, digits, V(_), V(.), V(-), an optional final V($)),
      optionally followed by C(@domain), as SSSD's fully qualified names. Refused are names of digits only
      (shadow takes them for UIDs), names with whitespace or non-ASCII letters, and any other character.
  returned: success
  type: list
  elements: dict
  sample: [{name: "John Smith", reason: "it holds whitespace, which useradd refuses and subid consumers split on"}]
retired:
  description:
    - Owners this call lists as V(released) or V(reclaimed), as C({name}) items. Their lines
      should leave the host, see M(fleetid.subid.subid) with O(fleetid.subid.subid#module:state=absent).
  returned: success
  type: list
  elements: dict
  sample: [{name: carol}]
unrequested:
  description:
    - Owners of O(host_state.present_owners) with an active ledger block for this host that this call does not
      request. Their lines and blocks stay; release them with C(playbooks/offboard.yml) when they have left.
  returned: success
  type: list
  elements: str
  sample: [erik]
ledger:
  description: The ledger used, an absolute path or a V(postgresql://) URI without its password.
  returned: when the ledger could be opened
  type: str
  sample: /srv/fleet/ledger/subid-ledger.yml
floor:
  description:
    - The pool's floor, for the host module's O(fleetid.subid.subid#module:floor), so that the host
      checks ranges against the same floor the pool was carved with.
  returned: success
  type: int
  sample: 1000
shifts:
  description:
    - Owners moving to the ledger's ranges with their storage (O(move), or a shift to finish), in the form
      O(fleetid.subid.storage_shift#module:shifts) takes. Run that module before writing RV(subuid) and RV(subgid).
  returned: success
  type: list
  elements: dict
  sample: [{owner: alice, subuid: [[1000000, 65536]], subgid: [[1000000, 65536]]}]
storage_held:
  description: Owners held on this host because of their Podman state, see O(host_state.podman_state).
  returned: success
  type: list
  elements: dict
  contains:
    owner:
      description: The owner.
      type: str
    current:
      description: Its ranges on the host now, as C({subuid, subgid}) lists of C([start, count]) (V(null) for lines in another form).
      type: dict
    ledger:
      description: The ledger's ranges, as C([start, count]) pairs.
      type: list
      elements: list
    evidence:
      description: What marks its Podman state.
      type: list
      elements: str
  sample:
    - owner: alice
      current: {subuid: [[165536, 65536]], subgid: [[165536, 65536]]}
      ledger: [[100000, 65536]]
      evidence: ["storage /home/alice/.local/share/containers/storage"]
in_step:
  description:
    - V(true) when O(host_state.current_ranges) shows that the host's subuid and subgid files hold exactly
      RV(subuid) and RV(subgid), each owner's lines as M(fleetid.subid.subid) writes them, and there
      is no interrupted write to repair. Writing them would change nothing, so the write can be skipped.
    - V(false) without O(host_state.current_ranges), or when anything would change.
  returned: success
  type: bool
  sample: true
"""
