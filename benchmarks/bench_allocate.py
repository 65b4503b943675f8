"""Benchmarks for fleetid.subid.allocate's controller-side work.

Run: scripts/bench (or .venv/bin/python benchmarks/bench_allocate.py)

1. 10,000 new owners into a ledger that already holds 50,000 blocks: read, parse,
   validate, allocate, render and atomically write, under the lock.
2. A call for a host whose owners are all allocated, ledger of 50,000 blocks: what the
   action plugin does per host on a converged fleet (lock-free read, memo check, plan);
   then the same call when the memo does not match (full parse and validation).
3. The same call through the real action plugin in a real ansible-playbook run
   (20 hosts), for the end-to-end figure per host.

Prints the figures; it asserts nothing about time.
"""

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
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import (  # noqa: E402
    parse_owners,
    parse_pool,
    plan,
)
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import FileStore  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate  # noqa: E402

POOL_SPEC = {"ranges": [{"start": 100000, "count": 4294000000 - 100000}]}
TODAY = "2026-11-24"


def seed_ledger(path, blocks):
    """A ledger of ``blocks`` users (with some quarantined gaps) and some host blocks."""
    pool = parse_pool(POOL_SPEC)
    owners = ["user%05d" % i for i in range(blocks - 100)]
    outcome = plan([], pool, parse_owners(owners, pool), "seed", TODAY)
    result = outcome.blocks
    for h in range(100):
        outcome = plan(result, pool, parse_owners([{"name": "kubelet", "scope": "host"}], pool), "node%d" % h, TODAY)
        result = outcome.blocks
    result = [b._replace(state="quarantined", released=TODAY) if i % 50 == 0 else b for i, b in enumerate(result)]
    FileStore(path).write(ledger.render(result))
    return len(result)


def allocate_call(path, owners, host):
    """What the action plugin does for one host, minus Ansible's own task overhead."""
    pool = parse_pool(POOL_SPEC)
    return allocate(FileStore(path), pool, parse_owners(owners, pool), host, TODAY)[1]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    cpu = time.process_time()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start, time.process_time() - cpu


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "subid-ledger.yml")
        count = seed_ledger(path, 50000)
        size = os.path.getsize(path)
        print("ledger: %d blocks, %.1f MiB" % (count, size / 2**20))

        newcomers = ["new%05d" % i for i in range(10000)]
        outcome, wall, cpu = timed(allocate_call, path, newcomers, "bench")
        assert len(outcome.added) == 10000
        print("10,000 new owners into 50,000 blocks: %.3f s wall, %.3f s CPU" % (wall, cpu))

        converged = ["user%05d" % i for i in range(1, 40000, 4000)] + ["new00042"]
        walls = []
        for dummy in range(20):
            outcome, wall, cpu = timed(allocate_call, path, converged, "bench")
            assert not outcome.changed
            walls.append(wall)
        print("call with all %d owners allocated, %d-block ledger: median %.1f ms, max %.1f ms (20 calls)"
              % (len(converged), count + 10000, statistics.median(walls) * 1000, max(walls) * 1000))

        os.unlink(FileStore(path).memo_path)
        outcome, wall, cpu = timed(allocate_call, path, converged, "bench")
        assert not outcome.changed
        print("the same call after another controller's write (full parse and validation): %.0f ms"
              % (wall * 1000))

        end_to_end(tmp, path, converged)


def end_to_end(tmp, path, owners):
    hosts = 20
    inventory = Path(tmp, "inv.yml")
    inventory.write_text("all:\n  hosts:\n" + "".join("    h%02d:\n" % i for i in range(hosts)))
    playbook = Path(tmp, "play.yml")
    playbook.write_text(
        "- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - fleetid.subid.allocate:\n        ledger: %s\n        pool: %s\n        owners: %s\n"
        % (path, json.dumps(POOL_SPEC), json.dumps(owners)))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(TOP / ".collections"), ANSIBLE_NOCOLOR="1")
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-f", "10", str(playbook)]
    empty = Path(tmp, "empty.yml")
    empty.write_text("- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n"
                     "    - ansible.builtin.debug:\n        msg: hi\n")
    base_cmd = cmd[:-1] + [str(empty)]
    base = timed(subprocess.run, base_cmd, env=env, capture_output=True, check=True)[1]
    full = timed(subprocess.run, cmd, env=env, capture_output=True, check=True)[1]
    print("ansible-playbook, %d hosts, forks 10: %.2f s with allocate vs %.2f s with a debug task "
          "(%.0f ms more per host)" % (hosts, full, base, (full - base) / hosts * 1000))


if __name__ == "__main__":
    main()
