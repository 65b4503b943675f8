"""Benchmark for the storage shift (module_utils/_storage_shift.py): a container storage of
N files owned by IDs of an old range, shifted to a new one.

Run as root: scripts/bench (or .venv/bin/python benchmarks/bench_storage_shift.py [--files N ...] [--quick])

For each size, a tree of N files in folders of 100 (a storage's layers look like that), each
owned by a different ID of 7000000+65536:

1. The floor, measured in the same run: os.walk and one lchown per file, no checks. No
   shift can do less.
2. scan(): the walk through folder descriptors, an lstat per file, the manifest entries.
3. The manifest written durably (JSON, fsync, rename), as the module does before the first change.
4. apply(): the second walk, one open, fstat, getxattr, fchown and fchmod per regular file.
5. apply() again on the result: a resumed shift that finds every file done.

Each figure is wall time and CPU time of this process; the load average is printed at the
start and at the end. Prints the figures; asserts nothing about time.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _benchlib import load_average  # noqa: E402

from ansible_collections.fleetid.subid.plugins.module_utils._durable import replace_file  # noqa: E402
from ansible_collections.fleetid.subid.plugins.module_utils._storage_shift import (  # noqa: E402
    IdShift,
    apply,
    open_root,
    scan,
)

OLD, NEW, COUNT = 7000000, 9000000, 65536


def build(root, files):
    os.mkdir(root)
    os.chown(root, 5555, 5555)
    for i in range(files):
        folder = os.path.join(root, "layer%04d" % (i // 100))
        if i % 100 == 0:
            os.mkdir(folder)
            os.chown(folder, OLD, OLD)
        path = os.path.join(folder, "f%d" % i)
        with open(path, "wb") as handle:
            handle.write(b"x")
        os.chown(path, OLD + i % COUNT, OLD + i % COUNT)


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - start, time.process_time() - cpu, value


def floor(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            os.lchown(path, st.st_uid + NEW - OLD, st.st_gid + NEW - OLD)


def bench(files, work):
    shift = IdShift([(OLD, COUNT)], [(NEW, COUNT)])
    print("--- %d files" % files)
    base = os.path.join(work, "floor")
    build(base, files)
    wall, cpu, dummy = timed(lambda: floor(base))
    print("  floor (walk + lchown)    %7.2f s wall  %6.2f s CPU" % (wall, cpu))
    shutil.rmtree(base)
    root = os.path.join(work, "storage")
    build(root, files)
    fd = open_root(root, 5555)
    try:
        wall, cpu, (entries, lost) = timed(lambda: scan(fd, shift, shift))
        assert len(entries) == files + -(-files // 100) and not lost, len(entries)  # the files and their folders
        print("  scan                     %7.2f s wall  %6.2f s CPU  (%d entries)" % (wall, cpu, len(entries)))
        manifest = os.path.join(work, "manifest.json")
        wall, cpu, dummy = timed(lambda: replace_file(manifest, json.dumps({"roots": {root: entries}}).encode(), 0o600))
        print("  manifest write           %7.2f s wall  %6.2f s CPU  (%.1f MB)"
              % (wall, cpu, os.path.getsize(manifest) / 1e6))
        wall, cpu, result = timed(lambda: apply(fd, entries))
        print("  apply                    %7.2f s wall  %6.2f s CPU  (changed %d)" % (wall, cpu, result[0]))
        wall, cpu, result = timed(lambda: apply(fd, entries))
        print("  apply again (resumed)    %7.2f s wall  %6.2f s CPU  (already %d)" % (wall, cpu, result[1]))
    finally:
        os.close(fd)
    shutil.rmtree(root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, nargs="*", default=[20000, 200000])
    parser.add_argument("--quick", action="store_true", help="20,000 files only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_storage_shift: needs root (it gives files other owners)")
        return 0
    print("load average at start: %s" % load_average())
    work = tempfile.mkdtemp(prefix="bench-shift.")
    try:
        for files in ([20000] if args.quick else args.files):
            bench(files, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("load average at end: %s" % load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
