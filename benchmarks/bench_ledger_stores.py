"""The two ledger stores side by side: the YAML file and PostgreSQL (a throwaway server
started here, as in the tests, and stopped at the end).

Run: scripts/bench (or .venv/bin/python benchmarks/bench_ledger_stores.py)

1. 10,000 new owners into a ledger that already holds 50,000 blocks.
2. A host whose 11 owners are all allocated, ledger of 60,000 blocks: the whole
   per-host call of the action plugin (open the store, for PostgreSQL a new connection
   with password authentication, the converged query, plan), median of 20; wall and
   controller CPU time.
3. 8 controllers (processes) each adding 1,000 new owners (1,000 IDs each: 65536 would
   exhaust the 32-bit space) at once: total wall time, failed runs, and a check that no
   ID went to two owners.
4. Importing the 50,000-block file ledger into an empty database (ledger_copy).

Prints the figures; it asserts nothing about time.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))
sys.path.insert(0, str(TOP / "tests"))
sys.path.insert(0, str(TOP / "benchmarks"))

from bench_allocate import POOL_SPEC, TODAY, seed_ledger  # noqa: E402
from pg_server import Server  # noqa: E402

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import find_overlaps  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as service  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool  # noqa: E402

WRITER = textwrap.dedent("""\
    import sys, time
    from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as s
    from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool
    location, prefix, pool = sys.argv[1], sys.argv[2], parse_pool(%r)
    sys.stdin.readline()  # start together
    with s.open_ledger(location, lock_timeout=120) as store:
        s.allocate(store, pool, parse_owners(["%%s%%04d" %% (prefix, i) for i in range(1000)], pool), "h", "2026-11-28")
    """) % (dict(POOL_SPEC, block_size=1000),)


def call(location, owners, host="bench"):
    pool = parse_pool(POOL_SPEC)
    with service.open_ledger(location, lock_timeout=120) as store:
        return service.allocate(store, pool, parse_owners(owners, pool), host, TODAY)[1]


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def controllers(location, tmp):
    script = Path(tmp, "writer.py")
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=str(TOP / ".collections"))
    procs = [subprocess.Popen([sys.executable, str(script), location, "c%d-" % n], stdin=subprocess.PIPE, env=env,
                              stderr=subprocess.PIPE, text=True) for n in range(8)]
    time.sleep(1.5)  # let every process finish its imports
    start = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    failed = [proc.communicate()[1] for proc in procs if proc.wait() != 0]
    return time.perf_counter() - start, failed


def main():
    load = os.getloadavg()
    print("load average at start: %.2f %.2f %.2f" % load)
    server = Server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seed = os.path.join(tmp, "seed.yml")
            count = seed_ledger(seed, 50000)
            stores = {"file": os.path.join(tmp, "subid-ledger.yml"), "postgresql": server.uri(server.new_database())}
            with open(seed) as src, open(stores["file"], "w") as dest:
                dest.write(src.read())
            with service.open_ledger(seed, check_mode=True) as src, service.open_ledger(stores["postgresql"]) as dest:
                wall = timed(service.copy, src, dest)[1]
            print("ledger: %d blocks; import into an empty database (ledger_copy): %.2f s" % (count, wall))

            newcomers = ["new%05d" % i for i in range(10000)]
            converged = ["user%05d" % i for i in range(1, 40000, 4000)] + ["new00042"]
            figures = {}
            for name, location in stores.items():
                outcome, wall, cpu = timed(call, location, newcomers)
                assert len(outcome.added) == 10000
                figures[name, "new"] = (wall, cpu)
                call(location, converged)  # warm: the file store's memo, PostgreSQL's caches
                walls, cpus = [], []
                for dummy in range(20):
                    outcome, wall, cpu = timed(call, location, converged)
                    assert not outcome.changed
                    walls.append(wall)
                    cpus.append(cpu)
                figures[name, "converged"] = (statistics.median(walls), statistics.median(cpus))
            for name in stores:
                print("%-10s 10,000 new owners into 50,000 blocks: %.3f s wall, %.3f s CPU" % ((name,) + figures[name, "new"]))
            for name in stores:
                print("%-10s converged call, 11 owners, 60,000 blocks: median %.1f ms wall, %.1f ms controller CPU"
                      % (name, figures[name, "converged"][0] * 1000, figures[name, "converged"][1] * 1000))

            for name, location in stores.items():
                wall, failed = controllers(location, tmp)
                with service.open_ledger(location, check_mode=True) as store:
                    blocks = service.blocks_of(store)
                added = sum(1 for b in blocks if b.owner.startswith("c") and "-" in b.owner)
                assert not find_overlaps(blocks, key=lambda b: b.range)
                print("%-10s 8 controllers x 1,000 new owners at once: %.2f s, %d failed runs, %d blocks added, "
                      "no overlap" % (name, wall, len(failed), added))
                for error in failed:
                    print("  failed: %s" % error.strip().splitlines()[-1])
    finally:
        server.stop()
    print("load average at end: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
