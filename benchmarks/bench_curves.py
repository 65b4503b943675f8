"""Scaling curves: how the controller's and the host's work grow with the data, against
the I/O floor at each size.

Run: scripts/bench (or .venv/bin/python benchmarks/bench_curves.py [--quick])

1. A converged ``allocate`` call (a host whose 200 owners all have blocks) on ledgers of
   1k, 10k, 50k and 200k blocks. Floor: reading the ledger's bytes (any answer depends
   on all of them).
2. 1,000 new owners into the same ledgers (read, validate, plan, lock, render, atomic
   write). Floor: reading the ledger, then writing the new ledger durably (temp file,
   fsync, rename, fsync of the folder).
3. The ``subid`` host module's ``apply()`` with 100 owners whose lines are already there
   (nothing to change) on subuid and subgid files of 1k, 10k, 100k and 1M lines each.
   Floor: reading both files and writing both durably; the read alone is printed too,
   since a run with nothing to change needs no write.

For each curve: the median at each size, the floor, their ratio, and a least-squares line
(microseconds per block or line, intercept, R^2) for both. ``--quick`` runs smaller sizes
and fewer repetitions. Only the functions other benchmarks use are called:
``ledger_service.allocate(store, pool, requests, host, today)`` with a ``FileStore``, and
the module's ``apply()``. Prints figures; asserts nothing about time.
"""

import argparse
import collections
import os
import sys
import tempfile
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.fleetid.subid.plugins.modules import subid  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import (  # noqa: E402
    parse_owners,
    parse_pool,
)
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import FileStore  # noqa: E402
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate  # noqa: E402

from _benchlib import (  # noqa: E402
    describe_fit,
    durable_write,
    load_average,
    measure,
    median,
    read_bytes,
)

TODAY = "2026-11-24"
# Blocks of 16,384 IDs so that 200,000 of them (and 1,000 more) fit below 2^32. One
# reserved range, as a directory service's would be, above the blocks.
BLOCK = 16384
FIRST = 100000
POOL_SPEC = {
    "ranges": [{"start": FIRST, "count": 4294000000 - FIRST}],
    "reserved": [{"start": 4200000000, "count": 1000000}],
    "block_size": BLOCK,
}
HOST_OWNERS = 200
NEW_OWNERS = 1000
MODULE_OWNERS = 100
LINE_COUNT = 4096  # IDs per line in the subid files: 1M lines fit below 2^32

# One size of a curve: medians of wall and CPU seconds, the floor's median, the number of
# runs, and (module only) the time to read both files.
Row = collections.namedtuple("Row", "size wall cpu floor runs read_only")


def ledger_text(blocks):
    """A ledger of ``blocks`` fleet blocks in the canonical one-line form, every 50th
    quarantined (released owners), so it is read by the fast path and remembered."""
    lines = ["# bench_curves ledger", "version: 1", "blocks:"]
    for i in range(blocks):
        line = '- {owner: "user%06d", scope: "fleet", start: %d, count: %d, state: %s, allocated: 2026-01-05' % (
            i, FIRST + i * BLOCK, BLOCK, "quarantined" if i % 50 == 0 else "active")
        if i % 50 == 0:
            line += ", released: 2026-06-01"  # index 0 mod 50: the converged host never asks for these
        lines.append(line + "}")
    return "\n".join(lines) + "\n"


def seeded_ledger(folder, name, text):
    """Write ``text`` as a ledger and read it once through the store, so the store
    remembers it as validated, as it would after its own last write."""
    path = os.path.join(folder, name)
    with open(path, "w") as handle:
        handle.write(text)
    store = FileStore(path)
    store.snapshot()
    memo = getattr(store, "memo_path", None)
    if memo is not None and not os.path.exists(memo):
        sys.exit("bench_curves: the store did not remember %s as validated (is the seeded text not canonical?): "
                 "converged calls would take the full path and this benchmark would measure the wrong thing" % path)
    return path


def allocate_curves(folder, sizes, quick):
    pool = parse_pool(POOL_SPEC)
    converged, new = [], []
    for blocks in sizes:
        text = ledger_text(blocks)
        path = seeded_ledger(folder, "ledger-%d.yml" % blocks, text)
        # Spread over the ledger, skipping the quarantined (every 50th): asking for one of
        # those would reactivate it, which is a change.
        mine = ["user%06d" % (i * (blocks // HOST_OWNERS) + 1) for i in range(HOST_OWNERS)]
        requests = parse_owners(mine, pool)

        def converged_call():
            outcome = allocate(FileStore(path), pool, requests, "bench", TODAY)[1]
            if outcome.changed or len(outcome.entries) != HOST_OWNERS:
                sys.exit("bench_curves: the converged call changed the ledger of %d blocks (or lost owners)" % blocks)
            return outcome

        times, cpus, dummy = measure(converged_call, 8 if quick else 30, 3 if quick else 10)
        floor = measure(lambda: read_bytes(path), 30, 2)[0]
        converged.append(Row(blocks, median(times), median(cpus), median(floor), len(times), None))

        newcomers = parse_owners(["new%05d" % i for i in range(NEW_OWNERS)], pool)
        runs, run_cpus, floors = [], [], []
        for rep in range(2 if quick or blocks > 100000 else 3):
            # A fresh copy each time, remembered as validated: the controller wrote it last.
            fresh = seeded_ledger(folder, "new-%d-%d.yml" % (blocks, rep), text)
            took, cpu, outcome = measure(lambda: allocate(FileStore(fresh), pool, newcomers, "bench", TODAY)[1], 1, 0)
            if len(outcome.added) != NEW_OWNERS:
                sys.exit("bench_curves: %d blocks added instead of %d" % (len(outcome.added), NEW_OWNERS))
            runs.extend(took)
            run_cpus.extend(cpu)
            result = read_bytes(fresh)
            if result.count(b"\n- {owner:") != blocks + NEW_OWNERS:
                sys.exit("bench_curves: the ledger written does not hold %d blocks" % (blocks + NEW_OWNERS))
            target = os.path.join(folder, "floor-%d.yml" % blocks)
            with open(target, "w") as handle:
                handle.write(text)

            def floor_new():
                read_bytes(target)
                durable_write(target, result)

            floors.extend(measure(floor_new, 1, 0)[0])
            os.unlink(fresh)
        new.append(Row(blocks, median(runs), median(run_cpus), median(floors), len(runs), None))
        for name in os.listdir(folder):  # keep the temp folder small: 200k blocks are 20 MiB a copy
            if name.startswith(("ledger-", "floor-")):
                os.unlink(os.path.join(folder, name))
        print("  ledger of %d blocks (%.1f MiB) done" % (blocks, len(text) / 2**20), flush=True)
    return converged, new


def subid_file(lines, owners):
    """A subid file of ``lines`` lines; ``owners`` of them, evenly spread, are the ones applied."""
    step = lines // owners
    rows = ["user%07d:%d:%d" % (i, FIRST + i * LINE_COUNT, LINE_COUNT) for i in range(lines)]
    wanted = [{"name": "user%07d" % (k * step), "start": FIRST + k * step * LINE_COUNT, "count": LINE_COUNT}
              for k in range(owners)]
    return "\n".join(rows) + "\n", wanted


def module_curve(folder, sizes, quick):
    curve = []
    for lines in sizes:
        text, items = subid_file(lines, MODULE_OWNERS)
        data = text.encode()
        paths = {kind: os.path.join(folder, kind) for kind in ("subuid", "subgid")}
        for path in paths.values():
            with open(path, "wb") as handle:
                handle.write(data)
        args = {"subuid": items, "subgid": items, "subuid_path": paths["subuid"], "subgid_path": paths["subgid"]}

        def converged_apply():
            with patch_module_args(args):
                module = subid.build_module()
            result = subid.apply(module)[0]
            if result["changed"]:
                sys.exit("bench_curves: the module changed files of %d lines that were already right" % lines)
            return result

        # Two runs at the largest size: one takes tens of seconds.
        times, cpus, result = measure(converged_apply, 5 if quick else 10, 3 if quick else 12,
                                      at_least=2 if lines > 100000 else 3)
        if len(result["subuid"]) != MODULE_OWNERS or read_bytes(paths["subuid"]) != data:
            sys.exit("bench_curves: the module did not report the %d owners or changed the file" % MODULE_OWNERS)

        def floor_rw():
            for path in paths.values():
                durable_write(path, read_bytes(path))

        def floor_read():
            for path in paths.values():
                read_bytes(path)

        floor = median(measure(floor_rw, 5, 3)[0])
        read_only = median(measure(floor_read, 10, 2)[0])
        curve.append(Row(lines, median(times), median(cpus), floor, len(times), read_only))
        print("  subid files of %d lines (%.1f MiB each) done" % (lines, len(data) / 2**20), flush=True)
    return curve


def report(title, unit, rows, floor_label):
    print("\n%s" % title)
    print("  %10s  %12s  %12s  %12s  %8s  %s" % (unit + "s", "median ms", "CPU ms", "floor ms", "ratio", "runs"))
    for r in rows:
        print("  %10d  %12.2f  %12.2f  %12.2f  %7.1fx  %d"
              % (r.size, r.wall * 1000, r.cpu * 1000, r.floor * 1000, r.wall / r.floor, r.runs))
    slope, text = describe_fit("  fit, measured (wall)", unit, [(r.size, r.wall) for r in rows])
    print(text)
    print(describe_fit("  fit, measured (CPU)", unit, [(r.size, r.cpu) for r in rows])[1])
    floor_slope, text = describe_fit("  fit, floor (%s)" % floor_label, unit, [(r.size, r.floor) for r in rows])
    print(text)
    print("  slope ratio to the floor (wall): %.1fx" % (slope / floor_slope))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repetitions")
    opts = parser.parse_args()
    ledger_sizes = [1000, 5000, 20000] if opts.quick else [1000, 10000, 50000, 200000]
    file_sizes = [1000, 10000, 100000] if opts.quick else [1000, 10000, 100000, 1000000]
    print("load average at start: %s (%d CPUs)" % (load_average(), os.cpu_count()))
    # Its own folder (on the same disk as the ledger would be) and its own cache folder,
    # so the store's memo files go with it.
    with tempfile.TemporaryDirectory(prefix="bench-curves-", dir=os.environ.get("BENCH_TMPDIR", "/var/tmp")) as tmp:
        os.environ["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
        converged, new = allocate_curves(tmp, ledger_sizes, opts.quick)
        module = module_curve(tmp, file_sizes, opts.quick)
    report("allocate, converged host (%d owners, all allocated; lock-free read, memo check, targeted search)"
           % HOST_OWNERS, "block", converged, "read of the ledger")
    report("allocate, %d new owners (read, validate, plan, lock, render, atomic write)" % NEW_OWNERS,
           "block", new, "read + durable write of the new ledger")
    report("subid module apply(), %d owners already right, both files (locks, read, parse, plan; no write)"
           % MODULE_OWNERS, "line", module, "read + durable write of both files")
    print("  against reading both files alone (all a run with nothing to change needs):")
    for r in module:
        print("  %10d  read %.2f ms, ratio %.0fx" % (r.size, r.read_only * 1000, r.wall / r.read_only))
    print("\nload average at end: %s" % load_average())


if __name__ == "__main__":
    main()
