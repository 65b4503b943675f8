"""Benchmarks for fleetid.subid.allocate's controller-side work, on the YAML file store.

Run: scripts/bench (or .venv/bin/python benchmarks/bench_allocate.py [--blocks N])

The ledger holds 200,000 blocks (16,384 IDs each, so that they fit in the 32-bit ID
space): 199,400 users, every 50th quarantined, the first 100 grown to a second block,
and 500 per-host blocks of owner ``runner``. The script times the same ``allocate()``
function that the action plugin runs, each call with a new store as in the plugin:

1. A host with 200 owners, all allocated (users with one and with two blocks, and a
   host-scope block): first without a memo of the text (what a call after another
   controller's write or a hand edit pays: a full parse and validation), then median
   of 10 with it (the converged fleet: lock-free read, digest, index lookups, plan).
2. 1,000 new owners: read, plan, render, atomic write under the lock; three rounds with
   the memo of the previous write, then one without a memo.
3. The converged call through the real action plugin in a real ansible-playbook run
   (20 hosts, forks 10), for the end-to-end figure per host.

Prints the figures and the load average; it asserts nothing about time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import FileStore  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate  # noqa: E402

BLOCK = 16384
POOL_SPEC = {"ranges": [{"start": 100000, "count": 4294000000 - 100000}], "block_size": BLOCK}
TODAY = "2026-11-24"
HOST = "node007"


def seed_blocks(count):
    """``count`` blocks as described above, sorted by start (as allocate would lay them)."""
    hosts, grown = 500, 100
    users = count - hosts - grown
    blocks = []
    start = POOL_SPEC["ranges"][0]["start"]
    for i in range(users):
        state, released = ("quarantined", TODAY) if i % 50 == 49 else ("active", None)
        blocks.append(ledger.Block("user%06d" % i, "fleet", start, BLOCK, state, TODAY, released, 0))
        start += BLOCK
    for h in range(hosts):
        blocks.append(ledger.Block("runner", "host:node%03d" % h, start, BLOCK, "active", TODAY, None, 0))
        start += BLOCK
    for i in range(grown):
        blocks.append(ledger.Block("user%06d" % i, "fleet", start, BLOCK, "active", TODAY, None, 0))
        start += BLOCK
    return blocks


def seed_ledger(path, count):
    blocks = seed_blocks(count)
    FileStore(path).write(ledger.render(blocks))
    return len(blocks)


def converged_owners(count):
    """200 owners of one host, all allocated: 10 with two blocks, 189 spread over the
    ledger (none quarantined: asking for those would reactivate them), one host block."""
    users = count - 600
    spread = [i for i in range(100, users, (users - 100) // 200) if i % 50 != 49][:189]
    names = ["user%06d" % i for i in list(range(0, 100, 10)) + spread]
    return names + [{"name": "runner", "scope": "host"}]


def allocate_call(path, owners, host=HOST):
    """What the action plugin does for one host, minus Ansible's own task overhead."""
    pool = parse_pool(POOL_SPEC)
    return allocate(FileStore(path), pool, parse_owners(owners, pool), host, TODAY)[1]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    cpu = time.process_time()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start, time.process_time() - cpu


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=200000)
    args = parser.parse_args()
    print(load())
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")  # a memo of this run only
        path = os.path.join(tmp, "subid-ledger.yml")
        count = seed_ledger(path, args.blocks)
        print("ledger: %d blocks, %.1f MiB" % (count, os.path.getsize(path) / 2**20))
        memo = FileStore(path).memo_path

        owners = converged_owners(count)
        outcome, wall, cpu = timed(allocate_call, path, owners)
        assert not outcome.changed and len(outcome.entries) == 200
        assert sum(len(r) for r in outcome.entries.values()) == 210  # 10 owners have two blocks
        print("converged call, 200 owners, no memo of the text (full parse and validation): %.0f ms wall, "
              "%.0f ms CPU" % (wall * 1000, cpu * 1000))
        walls, cpus = [], []
        for dummy in range(10):
            outcome, wall, cpu = timed(allocate_call, path, owners)
            assert not outcome.changed
            walls.append(wall)
            cpus.append(cpu)
        print("converged call, 200 owners, %d blocks: median %.1f ms wall (max %.1f), %.1f ms CPU (10 calls)"
              % (count, statistics.median(walls) * 1000, max(walls) * 1000, statistics.median(cpus) * 1000))
        print(load())

        added = 0
        for r in range(3):
            newcomers = ["new%d-%04d" % (r, i) for i in range(1000)]
            outcome, wall, cpu = timed(allocate_call, path, newcomers)
            assert len(outcome.added) == 1000
            added += 1000
            print("1,000 new owners into %d blocks, memo of the last write: %.3f s wall, %.3f s CPU"
                  % (count + added - 1000, wall, cpu))
        os.unlink(memo)
        newcomers = ["new9-%04d" % i for i in range(1000)]
        outcome, wall, cpu = timed(allocate_call, path, newcomers)
        assert len(outcome.added) == 1000
        added += 1000
        print("1,000 new owners into %d blocks, no memo (full parse and validation): %.3f s wall, %.3f s CPU"
              % (count + added - 1000, wall, cpu))
        check = ledger.parse(Path(path).read_text())
        assert len(check) == count + added  # the written ledger is whole and valid
        print(load())

        end_to_end(tmp, path, owners)
    print(load())


def end_to_end(tmp, path, owners):
    hosts = 20
    inventory = Path(tmp, "inv.yml")
    inventory.write_text("all:\n  hosts:\n" + "".join("    h%02d:\n" % i for i in range(hosts)))
    playbook = Path(tmp, "play.yml")
    playbook.write_text(
        "- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - fleetid.subid.allocate:\n        ledger: %s\n        pool: %s\n        owners: %s\n"
        % (path, json.dumps(POOL_SPEC), json.dumps([o for o in owners if isinstance(o, str)])))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(TOP / ".collections"), ANSIBLE_NOCOLOR="1")
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-f", "10", str(playbook)]
    empty = Path(tmp, "empty.yml")
    empty.write_text("- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n"
                     "    - ansible.builtin.debug:\n        msg: hi\n")
    base_cmd = cmd[:-1] + [str(empty)]
    base = timed(subprocess.run, base_cmd, env=env, capture_output=True, check=True)[1]
    full = timed(subprocess.run, cmd, env=env, capture_output=True, check=True)[1]
    print("ansible-playbook, %d hosts x 199 owners, forks 10: %.2f s with allocate vs %.2f s with a debug task "
          "(%.0f ms more per host)" % (hosts, full, base, (full - base) / hosts * 1000))


if __name__ == "__main__":
    main()
