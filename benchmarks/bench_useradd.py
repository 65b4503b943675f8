"""What admins use today against the subid module: shadow's own tools on a large /etc.

Run as root: scripts/bench (or .venv/bin/python benchmarks/bench_useradd.py [--quick])

A copy of /etc under a temporary folder holds passwd, group, shadow and gshadow with
100,000 accounts, and subuid and subgid with one 4,096-ID line for each of them
(100,000 lines each; 4,096 so that 100,000 ranges fit below 2^32). Then, on fresh
copies of the same files:

1. ``usermod --prefix DIR --add-subuids S-E --add-subgids S-E`` for 100 existing accounts
   without ranges, one call each: how an admin gives centrally chosen ranges with
   shadow's tools.
2. The collection's ``subid`` module, ``apply()`` once for the same 100 owners and ranges.
   It runs in a private mount namespace (``unshare --mount``) where the copy's passwd and
   group are bind-mounted over /etc/passwd and /etc/group, so its account lookups and
   host-ID check (``getent passwd``/``getent group``) see the same 100,000 accounts that
   usermod sees; nothing outside that namespace sees the mounts.
3. ``useradd --prefix DIR`` for new accounts, one call each: shadow picks each new
   account's subuid and subgid range itself (first fit from SUB_UID_MIN). useradd's time
   per call grows with the square of the number of accounts (1.6 s of CPU at 10,000
   accounts; the size of subuid does not matter; ``--root`` instead of ``--prefix`` costs
   the same), so 100 calls at 100,000 accounts would take hours: it is timed on copies of
   2,500 to 20,000 accounts, fitted (t = a * n^2 + b) and projected to 100,000, and the
   output says so.

Debian 12's shadow 4.13 honours ``--prefix`` for subuid and subgid: useradd and usermod
read and write DIR/etc/subuid and DIR/etc/subgid (and the prefix's passwd, group, shadow,
gshadow and login.defs). The script checks that: the new lines must appear under the
prefix, and none of its account names in the real /etc files. The files that usermod and
the module produce must be byte-for-byte the same. Prints the times, the ratio and the
load average; asserts nothing about time.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP / ".collections"))

from _benchlib import fit, load_average, median  # noqa: E402

FILES = ("passwd", "group", "shadow", "gshadow", "subuid", "subgid")
FIRST_UID = 10000  # the existing accounts' UIDs and GIDs
FIRST_SUBID = 1000000  # the existing accounts' ranges: above SUB_UID_MIN, so first fit has to search
LINE_COUNT = 4096
DEV_UID = 5000  # accounts that exist but have no ranges yet (the usermod and module case)
GIVEN_START = 500000000  # where the centrally chosen ranges of those accounts start
GIVEN_COUNT = 65536


def build_etc(etc, accounts, devs):
    """passwd, group, shadow, gshadow, subuid, subgid and login.defs for a large host."""
    os.makedirs(etc)
    users = ["user%06d" % i for i in range(accounts)]
    passwd = ["root:x:0:0:root:/root:/bin/bash"]
    group = ["root:x:0:", "shadow:x:42:"]
    shadow = ["root:*:20000:0:99999:7:::"]
    gshadow = ["root:*::", "shadow:*::"]
    for name, uid in [(d, DEV_UID + k) for k, d in enumerate(devs)] + [(u, FIRST_UID + i) for i, u in enumerate(users)]:
        passwd.append("%s:x:%d:%d::/home/%s:/usr/sbin/nologin" % (name, uid, uid, name))
        group.append("%s:x:%d:" % (name, uid))
        shadow.append("%s:!:20000:0:99999:7:::" % name)
        gshadow.append("%s:!::" % name)
    subids = ["%s:%d:%d" % (u, FIRST_SUBID + i * LINE_COUNT, LINE_COUNT) for i, u in enumerate(users)]
    contents = {"passwd": passwd, "group": group, "shadow": shadow, "gshadow": gshadow,
                "subuid": subids, "subgid": subids}
    for name, lines in contents.items():
        path = os.path.join(etc, name)
        with open(path, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(path, 0o640 if name in ("shadow", "gshadow") else 0o644)
    shutil.copy2("/etc/login.defs", os.path.join(etc, "login.defs"))


def fresh_prefix(tmp, name, master):
    prefix = os.path.join(tmp, name)
    os.makedirs(prefix, mode=0o755)
    shutil.copytree(master, os.path.join(prefix, "etc"), symlinks=True)
    return prefix


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"), check=False)
    if proc.returncode:
        sys.exit("bench_useradd: %s failed (rc=%d): %s" % (" ".join(cmd), proc.returncode,
                                                           (proc.stderr or proc.stdout).strip()))


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_calls(cmds):
    """Wall seconds and the commands' own CPU seconds (user + system) for running ``cmds``
    one after the other: CPU time is what other work on a shared machine stretches least."""
    start, cpu = time.perf_counter(), children_cpu()
    for cmd in cmds:
        run(cmd)
    return time.perf_counter() - start, children_cpu() - cpu


def useradd_curve(tmp, sizes, calls):
    """useradd's time per call against the number of accounts, which grows with its
    square (perf: mostly strcmp; the size of subuid does not matter): times ``calls``
    useradd calls on copies of /etc of each size and fits t = a * accounts^2 + b, for wall
    and for CPU time. Returns the two fitted functions."""
    points = []
    for size in sizes:
        master = os.path.join(tmp, "useradd-master-%d" % size)
        build_etc(master, size, [])
        prefix = fresh_prefix(tmp, "useradd-%d" % size, master)
        names = ["new%03d" % k for k in range(calls)]
        times = [timed_calls([["useradd", "--prefix", prefix, "-M", "-s", "/usr/sbin/nologin", name]])
                 for name in names]
        walls, cpus = [t[0] for t in times], [t[1] for t in times]
        for kind in ("subuid", "subgid"):
            got = [line.split(":")[0] for line in lines_of(os.path.join(prefix, "etc", kind)) if line.startswith("new")]
            if got != names:
                sys.exit("bench_useradd: useradd --prefix did not write the new accounts' ranges to %s/etc/%s: %r"
                         % (prefix, kind, got[:3]))
        points.append((size, median(walls), median(cpus)))
        print("useradd --prefix, %d accounts (subuid/subgid of %d lines): %.2f s per call (CPU %.2f s), median of %d "
              "(shadow picks each range, first fit)" % (size, size, median(walls), median(cpus), calls), flush=True)
        shutil.rmtree(prefix)
        shutil.rmtree(master)
    fits = []
    for label, column in (("wall", 1), ("CPU", 2)):
        slope, intercept, r2 = fit([(p[0] ** 2, p[column]) for p in points])
        print("useradd fit (%s): %.3g s per account^2, intercept %.0f ms, R^2 %.4f (a straight line: R^2 %.4f)"
              % (label, slope, intercept * 1000, r2, fit([(p[0], p[column]) for p in points])[2]))
        fits.append(lambda n, slope=slope, intercept=intercept: slope * n * n + intercept)
    return fits


def lines_of(path):
    with open(path) as handle:
        return handle.read().splitlines()


def child_apply(spec):
    """In the private mount namespace: bind the copy's account files over /etc, then time
    the module's apply() once and print the result as JSON."""
    spec = json.loads(spec)
    for name in ("passwd", "group"):
        subprocess.run(["mount", "--bind", os.path.join(spec["etc"], name), "/etc/" + name], check=True)
    # Only now: the module reads the account database through NSS, which must see the copy.
    from ansible.module_utils.testing import patch_module_args

    from ansible_collections.fleetid.subid.plugins.modules import subid

    with open("/etc/passwd") as handle:
        accounts = sum(1 for dummy in handle)
    args = {"subuid": spec["items"], "subgid": spec["items"],
            "subuid_path": os.path.join(spec["etc"], "subuid"), "subgid_path": os.path.join(spec["etc"], "subgid")}
    with patch_module_args(args):
        module = subid.build_module()
    start, cpu = time.perf_counter(), time.process_time() + children_cpu()
    result = subid.apply(module)[0]
    took, cpu = time.perf_counter() - start, time.process_time() + children_cpu() - cpu  # with getent's
    print(json.dumps({"seconds": took, "cpu": cpu, "changed": result["changed"], "owners": len(result["subuid"]),
                      "passwd_lines_seen": accounts}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="20,000 accounts and 20 owners instead of 100,000 and 100")
    parser.add_argument("--child-apply", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child_apply:
        return child_apply(opts.child_apply)
    if os.geteuid() != 0:
        sys.exit("bench_useradd: needs root (useradd, usermod, and mount in a private mount namespace)")
    accounts, owners = (20000, 20) if opts.quick else (100000, 100)
    useradd_sizes = [1000, 2000, 4000] if opts.quick else [2500, 5000, 10000, 20000]
    devs = ["dev%03d" % k for k in range(owners)]
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "passwd"], capture_output=True, text=True,
                             check=False).stdout
    print("load average at start: %s (%d CPUs); shadow (Debian package passwd) %s"
          % (load_average(), os.cpu_count(), version or "unknown"))

    with tempfile.TemporaryDirectory(prefix="bench-useradd-", dir=os.environ.get("BENCH_TMPDIR", "/var/tmp")) as tmp:
        os.chmod(tmp, 0o755)
        master = os.path.join(tmp, "master-etc")
        build_etc(master, accounts, devs)
        size = os.path.getsize(os.path.join(master, "subuid"))
        print("copy of /etc: %d accounts in passwd/group/shadow/gshadow, subuid and subgid of %d lines (%.1f MiB each)"
              % (accounts + owners + 1, accounts, size / 2**20))

        # usermod: the admin gives the chosen ranges.
        given = [(name, GIVEN_START + k * GIVEN_COUNT) for k, name in enumerate(devs)]
        prefix = fresh_prefix(tmp, "usermod", master)
        span = ["%d-%d" % (start, start + GIVEN_COUNT - 1) for name, start in given]
        usermod, usermod_cpu = timed_calls([["usermod", "--prefix", prefix, "--add-subuids", s, "--add-subgids", s,
                                             name] for (name, start), s in zip(given, span)])
        print("usermod --prefix --add-subuids/--add-subgids, %d existing accounts: %.2f s (CPU %.2f s), "
              "%.1f ms per account" % (owners, usermod, usermod_cpu, usermod / owners * 1000))

        # The module: the same owners and ranges, one call.
        module_prefix = fresh_prefix(tmp, "module", master)
        etc = os.path.join(module_prefix, "etc")
        items = [{"name": name, "start": start, "count": GIVEN_COUNT} for name, start in given]
        spec = json.dumps({"etc": etc, "items": items})
        proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", sys.executable,
                               os.path.abspath(__file__), "--child-apply", spec],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            sys.exit("bench_useradd: the module run failed (rc=%d): %s" % (proc.returncode, proc.stderr.strip()))
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        if not child["changed"] or child["owners"] != owners or child["passwd_lines_seen"] != accounts + owners + 1:
            sys.exit("bench_useradd: unexpected module result %r" % child)
        module, module_cpu = child["seconds"], child["cpu"]
        print("subid module apply(), the same %d owners and ranges, both files, one call (in a mount namespace "
              "seeing the copy's %d accounts): %.2f s (CPU %.2f s, getent included)"
              % (owners, child["passwd_lines_seen"], module, module_cpu))

        for kind in ("subuid", "subgid"):
            theirs = Path(prefix, "etc", kind).read_bytes()
            ours = Path(etc, kind).read_bytes()
            if theirs != ours:
                sys.exit("bench_useradd: usermod's %s and the module's differ: %s vs %s" % (kind, prefix, etc))
        print("usermod's and the module's subuid and subgid files are byte-for-byte the same")
        print("\nratio usermod / module: %.1fx wall, %.1fx CPU" % (usermod / module, usermod_cpu / module_cpu))

        # useradd: shadow chooses the ranges. Far too slow for 100 calls at this size, so
        # timed on smaller copies and projected (see useradd_curve).
        wall_fit, cpu_fit = useradd_curve(tmp, useradd_sizes, 2 if opts.quick else 3)
        n = accounts + owners + 1
        projected, projected_cpu = wall_fit(n) * owners, cpu_fit(n) * owners
        print("useradd, %d new accounts at %d accounts, projected: %.0f s (%.1f h), CPU %.0f s (%.1f h)"
              % (owners, n, projected, projected / 3600, projected_cpu, projected_cpu / 3600))
        print("ratio useradd (projected) / module: %.0fx wall, %.0fx CPU"
              % (projected / module, projected_cpu / module_cpu))
    # Other helpers' tests add real accounts meanwhile, so look for this script's names only.
    ours = re.compile(r"\A(dev|new)\d{3}\Z")
    for name in FILES:
        real = lines_of("/etc/" + name) if os.path.exists("/etc/" + name) else []
        leaked = [line for line in real if ours.match(line.split(":")[0])]
        if leaked:
            sys.exit("bench_useradd: /etc/%s holds %r: --prefix did not keep shadow's tools out of /etc"
                     % (name, leaked[:3]))
    print("/etc/passwd, group, shadow, gshadow, subuid, subgid hold none of this script's accounts")
    print("load average at end: %s" % load_average())


if __name__ == "__main__":
    main()
