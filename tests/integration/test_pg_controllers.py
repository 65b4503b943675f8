"""The PostgreSQL ledger under several controllers at once, under kill -9, and through
real ansible-playbook runs that must never show the password."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from conftest import TOP, ansible_env, run_playbook
from pg_server import PASSWORD
from test_allocate_playbook import PLAYBOOK
from test_lifecycle_playbooks import PODMAN_ENV, real_files, write_vars  # noqa: F401 pylint: disable=unused-import

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as service
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool

POOL = {"ranges": [{"start": 100000, "count": 600000000}]}


def ledger_blocks(uri):
    with service.open_ledger(uri, check_mode=True) as store:
        return service.blocks_of(store)


def start_controller(tmp_path, name, uri, hosts, owners, extra_flags=()):
    """One ansible-playbook process as its own controller (own cache and temp folders)."""
    home = tmp_path / name
    out_dir = home / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    inventory = home / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {h: {"owners": owners(h)} for h in hosts}}}))
    (home / "allocate.yml").write_text(PLAYBOOK)
    varfile = home / "vars.json"
    varfile.write_text(json.dumps({"ledger_path": uri, "pool": POOL, "out_dir": str(out_dir)}))
    env = ansible_env(XDG_CACHE_HOME=str(home / "cache"), ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
                      ANSIBLE_HOME=str(home / "ansible"))
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-f", "3",
           "-e", "@%s" % varfile, *extra_flags, str(home / "allocate.yml")]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), out_dir


@pytest.mark.slow
def test_eight_controllers_ten_rounds_never_hand_one_id_to_two_owners(tmp_path, pg_ledger):
    results = {}
    for rnd in range(10):
        procs = []
        for n in range(8):
            def owners(host, n=n, rnd=rnd):
                # Everyone asks for the round's shared newcomers at once, plus its own.
                shared = ["new%d-%d" % (rnd, i) for i in range(3)]
                older = ["new%d-%d" % (r, i) for r in range(rnd) for i in range(3)]
                return ["alice", "bob"] + shared + older + ["own%d-%d" % (n, rnd),
                                                            {"name": "kubelet", "scope": "host", "count": 65536}]
            procs.append(start_controller(tmp_path, "c%d-r%d" % (n, rnd), pg_ledger, ["c%d-h0" % n],
                                          owners))
        for proc, out_dir in procs:
            output = proc.communicate()[0]
            assert proc.returncode == 0, output
            for path in out_dir.glob("*.json"):
                results["%s@%d" % (path.stem, rnd)] = json.loads(path.read_text())
    assert len(results) == 8 * 10

    # The same owner got the same range on every host of every controller in every round
    # (kubelet: one per host).
    by_owner = {}
    for key, res in results.items():
        host = key.split("@")[0]
        assert not res.get("failed") and res["subuid"] == res["subgid"], res
        for e in res["subuid"]:
            owner = e["name"] if e["name"] != "kubelet" else "kubelet@" + host
            by_owner.setdefault(owner, set()).add((e["start"], e["count"]))
    assert all(len(ranges) == 1 for ranges in by_owner.values()), by_owner

    blocks = ledger_blocks(pg_ledger)
    # Exactly one active block per owner and scope: nobody was allocated twice by two
    # controllers racing for the same newcomer, and no block was lost.
    keys = [(b.owner, b.scope) for b in blocks]
    assert len(keys) == len(set(keys))
    assert all(b.state == "active" for b in blocks)
    expected_owners = {"alice", "bob"} | {"new%d-%d" % (r, i) for r in range(10) for i in range(3)} | {
        "own%d-%d" % (n, r) for n in range(8) for r in range(10)}
    assert {b.owner for b in blocks if b.scope == "fleet"} == expected_owners
    assert len([b for b in blocks if b.owner == "kubelet"]) == 8
    recorded = {b.owner if b.scope == "fleet" else "kubelet@" + b.scope[5:]: {(b.start, b.count)} for b in blocks}
    assert recorded == by_owner

    # A final run, everyone at once, changes nothing.
    finals = []
    for n in range(8):
        def owners(host, n=n):
            return ["alice", "bob"] + ["new%d-%d" % (r, i) for r in range(10) for i in range(3)] + [
                {"name": "kubelet", "scope": "host", "count": 65536}]
        finals.append(start_controller(tmp_path, "final%d" % n, pg_ledger, ["c%d-h0" % n], owners))
    for proc, out_dir in finals:
        output = proc.communicate()[0]
        assert proc.returncode == 0, output
        final = [json.loads(path.read_text()) for path in out_dir.glob("*.json")]
        assert len(final) == 1 and not any(res["changed"] for res in final), final
    assert ledger_blocks(pg_ledger) == blocks


WRITER = textwrap.dedent("""\
    import sys
    from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as s
    from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool
    uri, batch, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pool = parse_pool({"ranges": [{"start": 100000, "count": 2000000000}], "block_size": 1000, "min_count": 1000})
    with s.open_ledger(uri, lock_timeout=30) as store:
        print("ready", flush=True)
        s.allocate(store, pool, parse_owners(["%s-%05d" % (batch, i) for i in range(size)], pool), "h", "2026-11-28")
    print("done", flush=True)
    """)


@pytest.mark.slow
def test_kill_9_of_the_writer_leaves_the_database_consistent(tmp_path, pg_ledger):
    """Fifty writers killed at random moments of a 3,000-block allocation: each batch is in
    the ledger whole or not at all, no lock is left behind, and the next writer finishes."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    rng = random.Random(4711)
    outcomes = {"killed": 0, "finished first": 0}
    started = time.monotonic()
    for attempt in range(50):
        proc = subprocess.Popen([sys.executable, str(script), pg_ledger, "k%02d" % attempt, "3000"],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.7))  # a full run takes about 0.5 s here: kills land in every phase
        proc.send_signal(signal.SIGKILL)
        out = proc.communicate()[0]
        outcomes["finished first" if "done" in out else "killed"] += 1
        counts = {}
        for b in ledger_blocks(pg_ledger):
            batch = b.owner.split("-")[0]
            counts[batch] = counts.get(batch, 0) + 1
        assert all(c == 3000 for c in counts.values()), (attempt, counts)
    print("kill -9 x50 in %.1fs: %s" % (time.monotonic() - started, outcomes))
    assert outcomes["killed"] >= 20  # most kills must land mid-allocation to prove anything
    # The next writer is not blocked by anything the killed ones held.
    proc = subprocess.run([sys.executable, str(script), pg_ledger, "after", "10"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr
    assert len([b for b in ledger_blocks(pg_ledger) if b.owner.startswith("after-")]) == 10


def test_the_password_never_shows_in_playbook_output(tmp_path, postgres, pg_ledger):
    database = pg_ledger.rsplit("/", 1)[1]
    secrets = [PASSWORD, urllib.parse.quote(PASSWORD, safe="")]

    def owners(host):
        return ["alice", {"name": "bob", "count": 70000}]

    proc, out_dir = start_controller(tmp_path, "verbose", pg_ledger, ["web1"], owners, ("-vvv", "--diff"))
    output = proc.communicate()[0]
    assert proc.returncode == 0, output
    result = json.loads((out_dir / "web1.json").read_text())
    assert result["changed"] is True and result["ledger"] == "postgresql://fleetid@127.0.0.1:%d/%s" % (
        postgres.port, database)
    assert '+- {owner: "bob", scope: "fleet", start: 165536, count: 70000' in output  # the diff was shown
    wrong = postgres.uri(database, password="Wrong-Pw-31337")
    proc, out_dir = start_controller(tmp_path, "wrong", wrong, ["web1"], owners, ("-vvv", "--diff"))
    failed = proc.communicate()[0]
    assert proc.returncode != 0
    assert "password authentication failed for user" in failed and "Traceback" not in failed
    # The real password unencoded ("Pw-fleetid/9x#q@z"): libpq and Python disagree on where
    # it ends, so the URI is refused and no part of it shown.
    unencoded = "postgresql://fleetid:%s@127.0.0.1:%d/%s" % (PASSWORD, postgres.port, database)
    proc, out_dir = start_controller(tmp_path, "unencoded", unencoded, ["web1"], owners, ("-vvv", "--diff"))
    malformed = proc.communicate()[0]
    assert proc.returncode != 0
    assert "the URI is malformed, so it is not shown" in malformed and "Traceback" not in malformed
    for text in (output, failed, malformed, json.dumps(result)):
        for secret in secrets + ["Wrong-Pw-31337", "Pw-fleetid", "9x#q", "q@z"]:
            assert secret not in text


@pytest.mark.needs_root
def test_onboard_and_audit_through_the_roles_with_the_postgresql_ledger(tmp_path, pg_ledger, real_files):
    """The roles and playbooks take a URI wherever they take a ledger: a real account,
    real /etc/subuid lines, a real rootless Podman run, then a clean audit."""
    name = "pg" + uuid.uuid4().hex[:6]
    varfile = write_vars(tmp_path, subid_ledger=pg_ledger, subid_accounts=[{"name": name, "uid": 2902}],
                         subid_report_dir=str(tmp_path / "reports"), subid_owners=[name],
                         rootless_podman_install=False, rootless_podman_proof_dir=str(tmp_path / "proofs"),
                         rootless_podman_run_options=["--network", "none", "--runtime", "runc",
                                                      "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
    try:
        onboard = run_playbook(TOP / "playbooks" / "onboard.yml", "-e", "@%s" % varfile, "-c", "local", env=PODMAN_ENV)
        assert "owned a file at the ID shown: %s (ID 65536)." % name in onboard.stdout, onboard.stdout
        assert "%s:9000000:65536\n" % name in Path("/etc/subuid").read_text()
        assert [(b.owner, b.start, b.count) for b in ledger_blocks(pg_ledger)] == [(name, 9000000, 65536)]
        Path("/etc/subuid").write_text("%s:9000000:65536\n" % name)
        Path("/etc/subgid").write_text("%s:9000000:65536\n" % name)
        audit = run_playbook(TOP / "playbooks" / "audit.yml", "-e", "@%s" % varfile, "-c", "local", check=False)
        assert audit.returncode == 0, audit.stdout
        report = json.loads((tmp_path / "reports" / "subid-audit.json").read_text())
        assert report["summary"]["critical"] == 0 and report["summary"]["blocks"] == 1
        assert PASSWORD not in onboard.stdout + audit.stdout
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def test_ledger_copy_through_ansible_import_again_and_export(tmp_path, pg_ledger, run_module):
    source = tmp_path / "subid-ledger.yml"
    pool = parse_pool(POOL)
    with service.open_ledger(str(source)) as store:
        service.allocate(store, pool, parse_owners(["alice", "bob"], pool), "h1", "2026-11-28")
    checked = run_module("fleetid.subid.ledger_copy", {"src": str(source), "dest": pg_ledger}, check_mode=True)
    assert checked["changed"] is True and checked["blocks"] == 2 and ledger_blocks(pg_ledger) == []
    copied = run_module("fleetid.subid.ledger_copy", {"src": str(source), "dest": pg_ledger}, diff=True)
    assert copied["changed"] is True and PASSWORD not in json.dumps(copied)
    assert copied["dest"].startswith("postgresql://fleetid@127.0.0.1:")
    again = run_module("fleetid.subid.ledger_copy", {"src": str(source), "dest": pg_ledger})
    assert again["changed"] is False
    export = tmp_path / "export.yml"
    run_module("fleetid.subid.ledger_copy", {"src": pg_ledger, "dest": str(export)})
    assert export.read_text().splitlines()[-2:] == source.read_text().splitlines()[-2:]
    listed = run_module("fleetid.subid.ledger_info", {"ledger": pg_ledger, "owners": ["bob"]})
    assert [(b["owner"], b["start"], b["state"]) for b in listed["blocks"]] == [("bob", 165536, "active")]
    refused = run_module("fleetid.subid.ledger_copy", {"src": pg_ledger, "dest": pg_ledger})
    assert refused["failed"] and "src and dest are the same ledger" in refused["msg"]
