"""The module and useradd/userdel racing on this machine's real /etc/subuid and /etc/subgid.

useradd allocates from login.defs (first fit, under shadow's locks: lckpwdf and
/etc/subuid.lock) and userdel removes; meanwhile the module's core function applies
ranges in a loop in-process (and a couple of times through ansible-playbook). Afterwards
every line is whole, nobody's line is lost, and no two owners overlap.
"""

import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from real_host import REAL, real_files, users  # noqa: F401  pylint: disable=unused-import

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import find_overlaps
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SubidFile
from ansible_collections.fleetid.subid.plugins.modules import subid

pytestmark = pytest.mark.needs_root

BASE = 8000000  # far above where useradd's first fit from SUB_UID_MIN (100000) gets with a few users


def ranges_for(owners, round_number):
    """Each round moves every owner between two slots, so every round really writes."""
    return [{"name": name, "start": BASE + (i * 2 + round_number % 2) * 65536, "count": 65536}
            for i, name in enumerate(owners)]


def apply_in_process(entries):
    with patch_module_args({"subuid": entries, "subgid": entries, "lock_timeout": 30}):
        module = subid.build_module()
    result, diffs = subid.apply(module)
    return result


def test_module_and_useradd_racing_on_the_same_files_lose_nothing(run_module, users):
    owners = [users("fm") for dummy in range(3)]
    stop = threading.Event()
    churned, deleted, errors = [], set(), []

    def churn():
        while not stop.is_set():
            name = "fc" + uuid.uuid4().hex[:8]
            # Default login.defs allocation: useradd really writes both files.
            proc = subprocess.run(["useradd", "--no-create-home", name], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors.append(proc.stderr)
                continue
            churned.append(name)
            if len(churned) >= 3:  # keep two alive, delete the rest: holes get reused first fit
                victim = churned[-3]
                subprocess.run(["userdel", victim], check=True, capture_output=True)
                deleted.add(victim)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        race(owners, run_module, stop, thread, churned, deleted, errors)
    finally:
        stop.set()
        thread.join()
        for name in churned:
            if name not in deleted:
                subprocess.run(["userdel", name], check=False, capture_output=True)


def race(owners, run_module, stop, thread, churned, deleted, errors):
    rounds = 0
    try:
        for rounds in range(1, 41):
            result = apply_in_process(ranges_for(owners, rounds))
            assert result["changed"] is True, result
        for dummy in range(2):
            rounds += 1
            res = run_module("fleetid.subid.subid", {"subuid": ranges_for(owners, rounds),
                                                     "subgid": ranges_for(owners, rounds), "lock_timeout": 30})
            assert res.get("changed") is True, res
        while len(churned) < 6 and not errors:  # make sure useradd really ran meanwhile
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    survivors = set(churned) - deleted
    final = {e["name"]: [(e["name"], e["start"], e["count"])] for e in ranges_for(owners, rounds)}
    for path in REAL:
        parsed = SubidFile(path, Path(path).read_text())
        assert not parsed.malformed, parsed.malformed
        assert all(e.note is None for e in parsed.entries)
        by_owner = {}
        for entry in parsed.entries:
            by_owner.setdefault(entry.owner, []).append((entry.owner, entry.start, entry.count))
        for name in owners:  # the module's owners have exactly their last ranges
            assert by_owner[name] == final[name], (path, by_owner[name])
        for name in survivors:  # useradd's surviving users still have their one line
            assert len(by_owner.get(name, [])) == 1, (name, path)
            assert by_owner[name][0][1] < BASE  # first fit below the module's ranges
        for name in deleted:  # and userdel's removals stuck
            assert name not in by_owner, (name, path)
        assert not find_overlaps(parsed.entries, key=lambda e: e.range)
    assert len(churned) >= 6, "the race needs useradd running meanwhile"
    print("rounds %d, useradd %d, userdel %d" % (rounds, len(churned), len(deleted)))
