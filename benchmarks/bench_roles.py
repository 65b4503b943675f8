"""The roles end to end on three real hosts, against the naive role they replace.

Three Debian 12 containers (localhost/fleetid-debian12, see scripts/images), named
bench-1..3 so they never clash with molecule's or anyone's, each with N users (default
200) created beforehand; a few of them (--with-state) have run Podman once, so they have
container storage that a change of ranges must migrate. Each contender starts from fresh
containers:

  naive   benchmarks/naive/: apt, getent, one lineinfile per user and file, uid << 16
  roles   fleetid.subid.uidmap, login_defs and subids (what site.yml runs before the
          rootless proof): first run, then a second run with nothing to change, then the
          connection's floor: a play of as many ansible.builtin.ping tasks per host as
          the second run made remote module runs, the least those runs can cost
  proof   fleetid.subid.rootless_podman for --proof-users users per host: the first proof
          (a real rootless `podman run` each), the converged run (the proof records), and
          one with rootless_podman_force_proof

For each run it prints the wall time, the module runs (every task result and loop item
that ran, counted by benchmarks/callback_plugins/count_runs.py; the remote ones exclude
actions that run on the controller only: assert, set_fact, debug, include_*, meta, the
roles' argument validation and the ledger's allocate), the slowest tasks, and the load average.

  . scripts/env && python benchmarks/bench_roles.py [--users 200] [--only naive,roles,proof]

Needs root, Podman and the images (scripts/images). Nothing here asserts on time.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
HOSTS = ["bench-1", "bench-2", "bench-3"]
IMAGE = "localhost/fleetid-debian12:latest"
ENV = dict(os.environ, CONTAINERS_CONF=str(TOP / "tests" / "podman" / "containers.conf"))
CONTROLLER_ONLY = {"assert", "set_fact", "debug", "include_tasks", "import_tasks", "include_role", "validate_argument_spec",
                   "include_vars", "meta", "fail", "allocate", "add_host", "group_by"}
FIRST_UID = 3001


def podman(*args, check=True):
    return subprocess.run(["podman", *args], env=ENV, check=check, capture_output=True, text=True)


def users(count):
    return ["u%04d" % i for i in range(count)]


def fresh_hosts(count, with_state):
    """Three new containers, each with `count` users and no subordinate ranges."""
    remove_hosts()
    names = users(count)
    script = ("set -e; for i in $(seq 0 %d); do n=$(printf 'u%%04d' $i); "
              "useradd -m -s /bin/bash -u $((%d + i)) -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 $n; done; "
              ": > /etc/subuid; : > /etc/subgid" % (count - 1, FIRST_UID))
    stateful = names[:with_state]
    for host in HOSTS:
        podman("run", "-d", "--name", host, "--hostname", host, "--privileged", "--stop-timeout", "1", IMAGE)
    for host in HOSTS:
        podman("exec", host, "sh", "-c", script)
        # Podman state from an earlier life: container storage under the home.
        for name in stateful:
            podman("exec", host, "runuser", "-u", name, "--", "sh", "-c", "cd / && podman info >/dev/null 2>&1 || true")
            podman("exec", host, "test", "-d", "/home/%s/.local/share/containers/storage" % name)
    return names, stateful


def remove_hosts():
    for host in HOSTS:
        podman("rm", "--force", "--time", "1", host, check=False)


def write_inventory(workdir, names, extra):
    inventory = {
        "all": {
            "hosts": {host: {} for host in HOSTS},
            "vars": dict({
                "ansible_connection": "containers.podman.podman",
                "ansible_python_interpreter": "/usr/bin/python3",
                "subid_ledger": str(workdir / "ledger.yml"),
                "subid_pool": {"ranges": [{"start": 100000, "count": 500000000}]},
                "subid_owners": names,
                "naive_users": names,
            }, **extra),
        }
    }
    path = workdir / "inventory.yml"
    path.write_text(json.dumps(inventory))
    return path


def play(workdir, inventory, playbook, label, extra_args=()):
    events = workdir / ("events-%s.jsonl" % label.replace(" ", "-"))
    env = dict(ENV, FLEETID_BENCH_EVENTS=str(events), ANSIBLE_CALLBACK_PLUGINS=str(TOP / "benchmarks" / "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="count_runs", ANSIBLE_ROLES_PATH=str(TOP / "benchmarks"),
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_FORKS="5")
    load_before = os.getloadavg()
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook), *extra_args],
                          env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    load_after = os.getloadavg()
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:] + proc.stderr[-3000:])
        raise SystemExit("%s: ansible-playbook failed (rc %d)" % (label, proc.returncode))
    remote = report(label, wall, events, load_before, load_after, proc.stdout)
    return proc.stdout, remote


def report(label, wall, events, load_before, load_after, stdout):
    runs, remote = collections.Counter(), collections.Counter()
    task_time, last = collections.defaultdict(float), None
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "task":
            if last:
                task_time[last[0]] += event["t"] - last[1]
            last = (event["name"], event["t"])
        elif event["status"] in ("ok", "failed") and not event["loop_parent"]:
            runs[event["action"]] += 1
            if event["action"].rsplit(".", 1)[-1] not in CONTROLLER_ONLY:
                remote[event["action"]] += 1
    if last:  # the last task lasts until its last result
        task_time[last[0]] += event["t"] - last[1]
    recap = [line for line in stdout.splitlines() if " : ok=" in line]
    print("--- %s" % label)
    print("wall time           %.1f s" % wall)
    print("module runs         %d (remote %d), by action: %s" % (
        sum(runs.values()), sum(remote.values()), ", ".join("%s %d" % kv for kv in runs.most_common())))
    slowest = sorted(task_time.items(), key=lambda kv: -kv[1])[:5]
    print("slowest tasks       %s" % "; ".join("%s %.1f s" % (name, t) for name, t in slowest))
    print("load average        %.2f %.2f %.2f before, %.2f %.2f %.2f after" % (load_before + load_after))
    for line in recap:
        print("recap               " + " ".join(line.split()))
    sys.stdout.flush()
    return sum(remote.values())


ROLES_PLAY = """\
- name: Provision subordinate ID ranges
  hosts: all
  gather_facts: false
  roles:
    - role: fleetid.subid.uidmap
    - role: fleetid.subid.login_defs
    - role: fleetid.subid.subids
"""

NAIVE_PLAY = """\
- name: The naive way
  hosts: all
  gather_facts: false
  roles:
    - role: naive
"""

PROOF_PLAY = """\
- name: Prove rootless Podman
  hosts: all
  gather_facts: false
  roles:
    - role: fleetid.subid.subids
    - role: fleetid.subid.rootless_podman
      vars:
        rootless_podman_install: false
        rootless_podman_users: "{{ subid_owners[:proof_users | int] }}"
"""


def floor_play(tasks):
    """A play of ``tasks`` pings per host: what that many remote module runs cost when
    the modules do nothing (Ansible's and the connection's share of a run)."""
    return "- name: Connection floor\n  hosts: all\n  gather_facts: false\n  tasks:\n" + "".join(
        "    - name: Ping %d\n      ansible.builtin.ping:\n" % (i + 1) for i in range(tasks))


def show(text, marker):
    for line in text.splitlines():
        if marker in line:
            print("  " + line.strip()[:400])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--with-state", type=int, default=5, help="users per host who ran Podman before")
    parser.add_argument("--proof-users", type=int, default=10, help="users per host proven by rootless_podman")
    parser.add_argument("--only", default="naive,roles,proof")
    parser.add_argument("--keep", action="store_true", help="leave the containers for a look")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_roles: run as root (Podman containers as hosts)")
    subprocess.run([str(TOP / "scripts" / "images")], check=True, env=ENV, capture_output=True)
    busybox = TOP / ".cache" / "images" / "fleetid-busybox.tar"
    only = args.only.split(",")
    print("bench_roles: %d users on %d hosts, %d with Podman state; %d CPUs; load %.2f %.2f %.2f" % (
        (args.users, len(HOSTS), args.with_state, os.cpu_count()) + os.getloadavg()))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-roles-") as tmp:
            workdir = Path(tmp)
            for name, text in (("roles.yml", ROLES_PLAY), ("naive.yml", NAIVE_PLAY), ("proof.yml", PROOF_PLAY)):
                (workdir / name).write_text(text)
            if "naive" in only:
                names, stateful = fresh_hosts(args.users, args.with_state)
                inventory = write_inventory(workdir, names, {})
                play(workdir, inventory, workdir / "naive.yml", "naive first run")
                play(workdir, inventory, workdir / "naive.yml", "naive second run")
            if "roles" in only or "proof" in only:
                names, stateful = fresh_hosts(args.users, args.with_state)
                (workdir / "ledger.yml").unlink(missing_ok=True)
                inventory = write_inventory(workdir, names, {
                    "proof_users": args.proof_users,
                    "rootless_podman_test_image": "localhost/fleetid-busybox:latest",
                    "rootless_podman_test_image_archive": str(busybox),
                })
                if "roles" in only:
                    out = play(workdir, inventory, workdir / "roles.yml", "roles first run")[0]
                    show(out, "podman system migrate ran as")
                    remote = play(workdir, inventory, workdir / "roles.yml", "roles second run")[1]
                    per_host = remote // len(HOSTS)
                    (workdir / "floor.yml").write_text(floor_play(per_host))
                    play(workdir, inventory, workdir / "floor.yml", "connection floor, %d pings per host" % per_host)
                if "proof" in only:
                    for label, extra in (("proof first run", []), ("proof converged run", []),
                                         ("proof forced run", ["-e", "rootless_podman_force_proof=true"])):
                        show(play(workdir, inventory, workdir / "proof.yml", label, extra)[0], "Proven now")
    finally:
        if not args.keep:
            remove_hosts()
    print("bench_roles: done; load %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
