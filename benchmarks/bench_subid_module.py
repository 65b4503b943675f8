"""Benchmark for fleetid.subid.subid: 100 owners applied to a file of 100,000 lines.

Run: scripts/bench (or .venv/bin/python benchmarks/bench_subid_module.py)

1. The module's own work, in-process: parse the file, plan the edit, check overlaps and
   host IDs, render (the functions plugins/modules/subid.py calls), for both files.
2. One real ansible-playbook run of the module on temporary copies, for context.

Prints the figures; asserts nothing about time.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))

from ansible_collections.fleetid.subid.plugins.module_utils.subid_file import (  # noqa: E402
    check_edit,
    desired_entries,
    edit_text,
)

LINES = 100000
OWNERS = 100


def build_file():
    rows = ["# existing entries"]
    rows.extend("user%06d:%d:4096" % (i, 100000 + i * 4096) for i in range(LINES - 1))
    return "\n".join(rows) + "\n"


def wanted_items():
    # Half the owners already have lines (their ranges move), half are new.
    items = []
    for i in range(OWNERS):
        name = "user%06d" % (i * 997) if i % 2 else "newcomer%03d" % i
        items.append({"name": name, "start": 100000 + (LINES + i) * 4096, "count": 4096})
    return items


def module_work(path, text, items, host_ids):
    wanted = desired_entries(items, 1000, "subuid")
    edit = edit_text(path, text, wanted, lambda name: {name})  # the module also adds the UID
    check_edit(edit, host_ids, "UID")
    return edit.new


def main():
    text = build_file()
    items = wanted_items()
    host_ids = sorted(set(range(0, 1000)) | set(range(1000, 61000, 7)) | {65534})
    print("file: %d lines, %.1f MiB; %d owners to apply" % (LINES, len(text) / 2**20, OWNERS))
    timings = []
    for dummy in range(5):
        start = time.perf_counter()
        for kind in ("subuid", "subgid"):
            new = module_work("/etc/" + kind, text, items, host_ids)
        timings.append(time.perf_counter() - start)
    assert new.count("\n") == LINES + OWNERS // 2
    print("module work for both files (parse, plan, check, render): best %.0f ms, worst %.0f ms (5 runs)"
          % (min(timings) * 1000, max(timings) * 1000))

    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("subuid", "subgid"):
            Path(tmp, kind).write_text(text)
        playbook = Path(tmp, "play.yml")
        playbook.write_text(
            "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
            "    - fleetid.subid.subid:\n        subuid: %s\n        subgid: %s\n"
            "        subuid_path: %s/subuid\n        subgid_path: %s/subgid\n"
            % (json.dumps(items), json.dumps(items), tmp, tmp))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(TOP / ".collections"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", str(playbook)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit(proc.stdout + proc.stderr)
        print("whole ansible-playbook run of the module (write included): %.2f s" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
