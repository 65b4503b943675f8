"""The two ledger stores side by side: the YAML file and PostgreSQL (a throwaway server
started here, as in the tests, and stopped at the end).

Run: scripts/bench (or .venv/bin/python benchmarks/bench_ledger_stores.py [--blocks N] [--import]
[--only file|postgresql])

The ledger is bench_allocate's: 200,000 blocks of 16,384 IDs. The database is seeded in
bulk (rows copied, then the exclusion constraint built once; with --import through
ledger_copy instead, which inserts every row under the constraint and takes minutes).

1. A host whose 200 owners are all allocated: the whole per-host call of the action
   plugin (open the store, for PostgreSQL a new connection with password
   authentication, the converged read, plan), median of 10; wall and controller CPU.
2. 1,000 new owners, three rounds; for PostgreSQL also the read alone (the owners' rows
   and the free gaps, found in SQL) and the rest (plan, COPY under the advisory lock).
3. 4 controllers (processes) each adding 1,000 new owners at once: total wall time,
   failed runs, and a check that no ID went to two owners.

Prints the figures and the load average; it asserts nothing about time.
"""

import argparse
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

from bench_allocate import POOL_SPEC, TODAY, converged_owners, load, seed_blocks  # noqa: E402
from pg_server import Server  # noqa: E402

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import find_overlaps  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as service  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool  # noqa: E402

WRITER = textwrap.dedent("""\
    import sys, time
    from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as s
    from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool
    location, prefix, pool = sys.argv[1], sys.argv[2], parse_pool(%r)
    sys.stdin.readline()  # start together
    with s.open_ledger(location, lock_timeout=300) as store:
        s.allocate(store, pool, parse_owners(["%%s%%04d" %% (prefix, i) for i in range(1000)], pool), "h", "2026-11-28")
    """) % (POOL_SPEC,)


def call(location, owners, host="node007"):
    pool = parse_pool(POOL_SPEC)
    with service.open_ledger(location, lock_timeout=300) as store:
        return service.allocate(store, pool, parse_owners(owners, pool), host, TODAY)[1]


def read_view(location, owners):
    """The read of a new-owner call alone: the owners' blocks and the free IDs."""
    pool = parse_pool(POOL_SPEC)
    with service.open_ledger(location, check_mode=True) as store:
        if not hasattr(store, "view"):  # a store without views (before they existed)
            return None
        return store.view({r.name for r in parse_owners(owners, pool)}, pool, free=True)


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn(*args)
    return value, time.perf_counter() - wall, time.process_time() - cpu


def seed_database(server, database, blocks):
    """Every block as a row, the exclusion constraint built once over all of them."""
    import psycopg

    uri = server.uri(database)
    with service.open_ledger(uri) as store:
        service.blocks_of(store)  # creates the schema
    with psycopg.connect(uri) as conn:
        conn.execute("ALTER TABLE fleetid_subid.blocks DROP CONSTRAINT blocks_never_overlap")
        with conn.cursor().copy("COPY fleetid_subid.blocks (owner, scope, ids, state, allocated, released) "
                                "FROM STDIN") as copy:
            for b in blocks:
                copy.write_row((b.owner, b.scope, "[%d,%d)" % (b.start, b.end), b.state, b.allocated, b.released))
        conn.execute("ALTER TABLE fleetid_subid.blocks ADD CONSTRAINT blocks_never_overlap EXCLUDE USING gist (ids WITH &&)")
        conn.execute("UPDATE fleetid_subid.meta SET generation = generation + 1")
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE fleetid_subid.blocks")
    return uri


def controllers(location, tmp, count=4):
    script = Path(tmp, "writer.py")
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=str(TOP / ".collections"))
    procs = [subprocess.Popen([sys.executable, str(script), location, "c%d-" % n], stdin=subprocess.PIPE, env=env,
                              stderr=subprocess.PIPE, text=True) for n in range(count)]
    time.sleep(1.5)  # let every process finish its imports
    start = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    failed = [proc.communicate()[1] for proc in procs if proc.wait() != 0]
    return time.perf_counter() - start, failed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=200000)
    parser.add_argument("--import", dest="use_import", action="store_true",
                        help="fill the database through ledger_copy (slow) instead of in bulk")
    parser.add_argument("--only", choices=["file", "postgresql"], help="measure one store only")
    args = parser.parse_args()
    print(load())
    server = Server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")  # a memo of this run only
            blocks = seed_blocks(args.blocks)
            stores = {"file": os.path.join(tmp, "subid-ledger.yml")}
            with open(stores["file"], "w") as handle:
                handle.write(ledger.render(blocks))
            if args.use_import:
                stores["postgresql"] = server.uri(server.new_database())
                with service.open_ledger(stores["file"], check_mode=True) as src, \
                        service.open_ledger(stores["postgresql"]) as dest:
                    wall = timed(service.copy, src, dest)[1]
                print("ledger: %d blocks; import into an empty database (ledger_copy): %.1f s" % (len(blocks), wall))
            else:
                stores["postgresql"], wall = timed(seed_database, server, server.new_database(), blocks)[:2]
                print("ledger: %d blocks; database seeded in bulk (COPY, then the constraint): %.1f s"
                      % (len(blocks), wall))

            if args.only:
                stores = {args.only: stores[args.only]}
            converged = converged_owners(len(blocks))
            figures = {}
            for name, location in stores.items():
                call(location, converged)  # warm: the file store's memo, PostgreSQL's caches
                walls, cpus = [], []
                for dummy in range(10):
                    outcome, wall, cpu = timed(call, location, converged)
                    assert not outcome.changed and len(outcome.entries) == 200
                    walls.append(wall)
                    cpus.append(cpu)
                figures[name, "converged"] = (statistics.median(walls), statistics.median(cpus))
                rounds = []
                for r in range(3):
                    newcomers = ["new%d-%04d" % (r, i) for i in range(1000)]
                    view, read = timed(read_view, location, newcomers)[:2]
                    read = None if view is None else read
                    outcome, wall, cpu = timed(call, location, newcomers)
                    assert len(outcome.added) == 1000
                    rounds.append((wall, cpu, read))
                figures[name, "new"] = rounds
            print(load())
            for name in stores:
                print("%-10s converged call, 200 owners, %d blocks: median %.1f ms wall, %.1f ms controller CPU"
                      % (name, len(blocks), figures[name, "converged"][0] * 1000, figures[name, "converged"][1] * 1000))
            for name in stores:
                print("%-10s 1,000 new owners into %d+ blocks: %s" % (name, len(blocks), "; ".join(
                    "%.3f s wall, %.3f s CPU (the read alone: %s)" % (wall, cpu, "n/a" if read is None else "%.3f s" % read)
                    for wall, cpu, read in figures[name, "new"])))

            for name, location in stores.items():
                wall, failed = controllers(location, tmp)
                with service.open_ledger(location, check_mode=True) as store:
                    found = service.blocks_of(store)
                added = sum(1 for b in found if b.owner.startswith("c") and "-" in b.owner)
                assert not find_overlaps(found, key=lambda b: b.range)
                print("%-10s 4 controllers x 1,000 new owners at once: %.2f s, %d failed runs, %d blocks added, "
                      "no overlap" % (name, wall, len(failed), added))
                for error in failed:
                    print("  failed: %s" % error.strip().splitlines()[-1])
    finally:
        server.stop()
    print(load())


if __name__ == "__main__":
    main()
