"""Benchmark for fleetid.subid.subid: 100 owners applied to a file of 100,000 lines.

Run: scripts/bench (or .venv/bin/python benchmarks/bench_subid_module.py)

1. The module's core function, in-process: plugins/modules/subid.py ``apply()`` with a real
   AnsibleModule, on temporary copies of both files: locks, read, plan, host-ID check
   (getent passwd/group), overlap check, render, atomic write of both files.
2. The pure logic alone (parse, plan, check, render), for both files.
3. One real ansible-playbook run of the module on temporary copies, for context.

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

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.fleetid.subid.plugins.module_utils.subid_file import (  # noqa: E402
    check_edit,
    desired_entries,
    edit_text,
)
from ansible_collections.fleetid.subid.plugins.modules import subid  # noqa: E402

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


def core_function(tmp, text, items, rounds=5):
    """Time subid.apply() on fresh copies of the big files; returns (seconds list, result)."""
    timings = []
    result = None
    for dummy in range(rounds):
        for kind in ("subuid", "subgid"):
            Path(tmp, kind).write_text(text)
        args = {"subuid": items, "subgid": items, "subuid_path": "%s/subuid" % tmp,
                "subgid_path": "%s/subgid" % tmp}
        with patch_module_args(args):
            module = subid.build_module()
        start = time.perf_counter()
        result, diffs = subid.apply(module)
        timings.append(time.perf_counter() - start)
    assert result["changed"] and len(result["subuid"]) == OWNERS
    assert Path(tmp, "subuid").read_text().count("\n") == LINES + OWNERS // 2
    # And the converged run: nothing to write.
    with patch_module_args(args):
        module = subid.build_module()
    start = time.perf_counter()
    again, diffs = subid.apply(module)
    converged = time.perf_counter() - start
    assert not again["changed"]
    return timings, converged


def main():
    text = build_file()
    items = wanted_items()
    print("file: %d lines, %.1f MiB; %d owners to apply (half of them move, half are new)"
          % (LINES, len(text) / 2**20, OWNERS))
    with tempfile.TemporaryDirectory() as tmp:
        timings, converged = core_function(tmp, text, items)
    print("module core function subid.apply(), both files (locks, read, plan, getent host-ID check, "
          "overlap check, render, atomic write): best %.0f ms, worst %.0f ms (5 runs)"
          % (min(timings) * 1000, max(timings) * 1000))
    print("module core function, second run with nothing to change: %.0f ms" % (converged * 1000))

    host_ids = sorted(set(range(0, 1000)) | set(range(1000, 61000, 7)) | {65534})
    timings = []
    for dummy in range(5):
        start = time.perf_counter()
        for kind in ("subuid", "subgid"):
            new = module_work("/etc/" + kind, text, items, host_ids)
        timings.append(time.perf_counter() - start)
    assert new.count("\n") == LINES + OWNERS // 2
    print("pure logic alone, both files (parse, plan, check against %d host IDs, render): best %.0f ms, "
          "worst %.0f ms (5 runs)" % (len(host_ids), min(timings) * 1000, max(timings) * 1000))

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
