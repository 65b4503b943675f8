# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a rootless Podman check means: ID maps compared with the ledger, and Podman's
error text turned into a reason an administrator can act on. Pure logic."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Podman/containers-storage wording for "the image has owners beyond the user's map",
# old and new (containers/storage PR #747 changed it).
_TOO_FEW_IDS = (
    "there might not be enough ids available in the namespace",
    "potentially insufficient uids or gids available in user namespace",
    "insufficient uids or gids",
)
_NO_SUBIDS = ("no subuid ranges found", "no subgid ranges found", "cannot find mappings for user")
_HELPER_BROKEN = ("newuidmap: write to uid_map failed", "newgidmap: write to gid_map failed",
                  "should have setuid or have filecaps")


def parse_id_map(text):
    """``/proc/PID/uid_map`` text as a list of (inside, outside, count)."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            raise ValueError("not an ID map line: %r" % line)
        rows.append(tuple(int(f) for f in fields))
    return rows


def map_problems(rows, own_id, expected, kind="uid"):
    """Why the map Podman uses differs from ``expected`` (a list of (start, count)).

    Podman maps the user's own ID to 0 and the subordinate ranges after it, 1..N.
    Returns a list of messages; empty when the map is exactly as expected.
    """
    problems = []
    if not rows or rows[0] != (0, own_id, 1):
        problems.append("%s 0 should map to the user's own %s %d, the map is %s" % (kind, kind, own_id, rows))
    got = sorted((outside, count) for inside, outside, count in rows if inside != 0)
    want = sorted((start, count) for start, count in expected)
    if got != want:
        problems.append(
            "sub%s ranges in use are %s but the ledger says %s; if /etc/sub%s is right, run "
            "`podman system migrate` as the user" % (kind, _ranges_text(got), _ranges_text(want), kind))
    return problems


def highest_inside_id(rows):
    """The highest ID a process inside the namespace can use."""
    return max(inside + count - 1 for inside, outside, count in rows) if rows else 0


def explain_podman_error(text, user, total):
    """A reason an administrator can act on, from Podman's error output."""
    lower = text.lower()
    if any(marker in lower for marker in _TOO_FEW_IDS):
        return ("not enough subordinate IDs: the image has files owned by IDs above the %d that %s "
                "can map; give %s a larger count in subid_owners (e.g. 4194304 for owners up to "
                "4,000,000)" % (total, user, user))
    if any(marker in lower for marker in _NO_SUBIDS):
        return "%s has no subordinate ID ranges Podman can find (/etc/subuid, /etc/subgid)" % user
    if any(marker in lower for marker in _HELPER_BROKEN):
        return ("newuidmap/newgidmap cannot write the ID map: the helpers need the setuid bit or "
                "file capabilities (role fleetid.subid.uidmap checks this)")
    last = [line for line in text.strip().splitlines() if line.strip()]
    return last[-1] if last else "podman failed without a message"


def _ranges_text(pairs):
    return ", ".join("%d+%d" % pair for pair in pairs) or "none"
