"""Benchmark for fleetid.subid.subid: 100 owners applied to files of 100,000 and 1,000,000 lines.

Run: scripts/bench (or .venv/bin/python benchmarks/bench_subid_module.py [--lines N ...] [--no-playbook])

For each size, a subuid and a subgid file of that many lines:

1. The I/O floor, measured in the same run: read both files, write each to a temp file in
   the same folder, fsync it, rename it over the file, fsync the folder. No module can do
   less and stay durable.
2. The module's core function, in-process: plugins/modules/subid.py ``apply()`` with a real
   AnsibleModule, on fresh copies of both files: locks, read, plan, host-ID check (getent
   passwd/group), overlap check, render, atomic write of both files. 100 owners, half of
   them already present with other ranges (moved in place), half new (appended).
3. The same call again on the result: nothing to change.
4. For the smallest size, the pure logic alone (parse, plan, check, render) and one real
   ansible-playbook run of the module, for context.

Each figure is wall time (best and worst of the runs) and CPU time of this process, with
the ratio to the I/O floor; the load average is printed at the start and at the end, since
other work on the machine slows the wall times. Prints the figures; asserts nothing about time.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import (  # noqa: E402
    check_edit,
    desired_entries,
    edit_text,
)
from ansible_collections.fleetid.subid.plugins.modules import subid  # noqa: E402

SIZES = (100000, 1000000)
OWNERS = 100


def build_file(lines):
    rows = ["# existing entries"]
    rows.extend("user%07d:%d:4096" % (i, 100000 + i * 4096) for i in range(lines - 1))
    return "\n".join(rows) + "\n"


def wanted_items(lines):
    # Half the owners already have lines (their ranges move), half are new; the new ranges
    # lie after every existing one, so every line of the file is checked against them.
    items = []
    for i in range(OWNERS):
        name = "user%07d" % (i * (lines // OWNERS - 3)) if i % 2 else "newcomer%03d" % i
        items.append({"name": name, "start": 100000 + (lines + i) * 4096, "count": 4096})
    return items


def load():
    return "%.2f %.2f %.2f" % os.getloadavg()


def timed(func):
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def io_floor(tmp, rounds):
    """Best wall time to read both files and replace each durably (no parsing at all)."""
    best = None
    for dummy in range(rounds):
        def work():
            for kind in ("subuid", "subgid"):
                path = os.path.join(tmp, kind)
                with open(path, "rb") as handle:
                    data = handle.read()
                fd = os.open(path + ".floor", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(path + ".floor", path)
                folder = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
        wall, cpu, dummy_result = timed(work)
        best = wall if best is None else min(best, wall)
    return best


def apply_args(tmp, items):
    return {"subuid": items, "subgid": items, "subuid_path": "%s/subuid" % tmp, "subgid_path": "%s/subgid" % tmp}


def run_apply(tmp, items):
    with patch_module_args(apply_args(tmp, items)):
        module = subid.build_module()
    return timed(lambda: subid.apply(module)[0])


def bench_size(lines, rounds):
    text = build_file(lines)
    items = wanted_items(lines)
    print("\n%d lines a file, %.1f MiB; %d owners to apply (half of them move, half are new); load average %s"
          % (lines, len(text) / 2**20, OWNERS, load()))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMPDIR")) as tmp:
        for kind in ("subuid", "subgid"):
            Path(tmp, kind).write_text(text)
        floor = io_floor(tmp, rounds + 1)
        print("  I/O floor (read both files, write, fsync, rename, fsync folder): %.0f ms, %.2f us a line"
              % (floor * 1000, floor / (2 * lines) * 1e6))
        changes, converged = [], []
        for dummy in range(rounds):
            for kind in ("subuid", "subgid"):
                Path(tmp, kind).write_text(text)
            wall, cpu, result = run_apply(tmp, items)
            assert result["changed"] and len(result["subuid"]) == OWNERS and len(result["changed_owners"]) == OWNERS
            changes.append((wall, cpu))
            wall, cpu, again = run_apply(tmp, items)
            assert not again["changed"]
            converged.append((wall, cpu))
        assert Path(tmp, "subuid").read_text().count("\n") == lines + OWNERS // 2
    for label, runs in (("100 owners into both files, apply() with writes", changes),
                        ("the same again, nothing to change", converged)):
        walls = [wall for wall, cpu in runs]
        print("  %s: best %.0f ms, worst %.0f ms (%d runs), CPU %.0f ms; %.1fx the I/O floor, %.2f us a line"
              % (label, min(walls) * 1000, max(walls) * 1000, len(runs), min(cpu for wall, cpu in runs) * 1000,
                 min(walls) / floor, min(walls) / (2 * lines) * 1e6))
    return text, items


def module_work(path, text, items, host_ids):
    wanted = desired_entries(items, 1000, "subuid")
    edit = edit_text(path, text, wanted, lambda name: {name})  # the module also adds the UID
    check_edit(edit, host_ids, "UID")
    return edit.new


def pure_logic(lines, text, items):
    host_ids = sorted(set(range(0, 1000)) | set(range(1000, 61000, 7)) | {65534})
    timings = []
    for dummy in range(5):
        wall, cpu, new = timed(lambda: [module_work("/etc/" + kind, text, items, host_ids)
                                        for kind in ("subuid", "subgid")][-1])
        timings.append(wall)
    assert new.count("\n") == lines + OWNERS // 2
    print("  pure logic alone, both files (plan, check against %d host IDs, render): best %.0f ms, worst %.0f ms "
          "(5 runs)" % (len(host_ids), min(timings) * 1000, max(timings) * 1000))


def playbook(text, items):
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("subuid", "subgid"):
            Path(tmp, kind).write_text(text)
        play = Path(tmp, "play.yml")
        play.write_text(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
            "    - fleetid.subid.subid:\n        subuid: %s\n        subgid: %s\n"
            "        subuid_path: %s/subuid\n        subgid_path: %s/subgid\n"
            % (json.dumps(items), json.dumps(items), tmp, tmp))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(TOP / ".collections"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", str(play)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(proc.stdout + proc.stderr)
        print("  whole ansible-playbook run of the module (write included): %.2f s" % (time.perf_counter() - start))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--lines", type=int, nargs="+", default=list(SIZES), help="file sizes in lines")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each case")
    parser.add_argument("--no-playbook", action="store_true", help="skip the ansible-playbook run")
    args = parser.parse_args()
    print("fleetid.subid.subid benchmark; Python %s; %d CPUs; load average %s"
          % (sys.version.split()[0], os.cpu_count(), load()))
    for n, lines in enumerate(sorted(args.lines)):
        text, items = bench_size(lines, args.rounds)
        if n == 0:
            pure_logic(lines, text, items)
            if not args.no_playbook:
                playbook(text, items)
    print("\nload average at the end: %s" % load())


if __name__ == "__main__":
    main()
