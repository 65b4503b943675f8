"""playbooks/onboard.yml and playbooks/audit.yml on this machine (connection local):
onboarding twice changes nothing the second time; the audit's exit status gates CI."""

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import TOP, run_playbook, run_recorded, sleep_in_user_namespace

pytestmark = pytest.mark.needs_root

PODMAN_ENV = {"CONTAINERS_CONF": str(TOP / "tests" / "podman" / "containers.conf")}


@pytest.fixture
def real_files():
    saved = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")}
    yield
    for path, data in saved.items():
        Path(path).write_bytes(data)


def write_vars(tmp_path, **values):
    values.setdefault("subid_ledger", str(tmp_path / "subid-ledger.yml"))
    values.setdefault("subid_pool", {"ranges": [{"start": 9000000, "count": 10000000}]})
    path = tmp_path / ("vars-%s.json" % uuid.uuid4().hex[:6])
    path.write_text(json.dumps(values))
    return path


def test_onboarding_twice_changes_nothing_the_second_time(tmp_path, real_files):
    name, member = "fo" + uuid.uuid4().hex[:6], "fz" + uuid.uuid4().hex[:6]  # allocated in name order
    varfile = write_vars(tmp_path, subid_accounts=[{"name": name, "uid": 2901, "count": 131072},
                                                   {"name": member, "uid": 2902, "groups": ["users"]}],
                         rootless_podman_install=False, rootless_podman_proof_dir=str(tmp_path / "proofs"),
                         rootless_podman_run_options=["--network", "none", "--runtime", "runc",
                                                      "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"])
    playbook = TOP / "playbooks" / "onboard.yml"
    try:
        first = run_recorded(playbook, "-e", "@%s" % varfile, "-c", "local", env=PODMAN_ENV)
        assert first.status("Create the accounts with the same UID everywhere") == "changed"
        assert first.recap["localhost"]["failures"] == 0
        # An account without groups is no reason for a warning ('append' without 'groups').
        assert "[WARNING]" not in first.stdout + first.stderr, first.stdout + first.stderr
        # No test image: a container built from the host's own tools ran as each of them.
        assert "owned a file at the ID shown: %s (ID 131072), %s (ID 65536)." % (name, member) in first.stdout, first.stdout
        assert "%s:9000000:131072\n" % name in Path("/etc/subuid").read_text()
        assert subprocess.check_output(["id", "-u", name]).strip() == b"2901"
        assert subprocess.check_output(["id", "-nG", name]).split() == [name.encode()]
        assert set(subprocess.check_output(["id", "-nG", member]).split()) == {member.encode(), b"users"}
        second = run_recorded(playbook, "-e", "@%s" % varfile, "-c", "local", env=PODMAN_ENV)
        assert second.recap["localhost"]["changed"] == 0, second.stdout
        # Nothing differs: no module run per account (every item skipped), and the proofs stand.
        for task in ("Create each account's group with the same GID everywhere",
                     "Create the accounts with the same UID everywhere"):
            assert second.status(task) == "skipped", second.stdout
        assert "Proven before with a container, nothing changed since: %s, %s." % (name, member) in second.stdout
        assert "[WARNING]" not in second.stdout + second.stderr, second.stdout + second.stderr
    finally:
        for account in (name, member):
            subprocess.run(["pkill", "-KILL", "-u", account], check=False)
            subprocess.run(["userdel", "--remove", account], check=False, capture_output=True)
            subprocess.run(["groupdel", account], check=False, capture_output=True)


def test_audit_exit_status_follows_critical_findings(tmp_path, real_files):
    report_dir = tmp_path / "reports"
    playbook = TOP / "playbooks" / "audit.yml"
    Path("/etc/subuid").write_text("")
    Path("/etc/subgid").write_text("")
    clean = write_vars(tmp_path, subid_owners=[], subid_report_dir=str(report_dir))
    proc = run_playbook(playbook, "-e", "@%s" % clean, "-c", "local", check=False)
    assert proc.returncode == 0, proc.stdout
    assert json.loads((report_dir / "subid-audit.json").read_text())["summary"]["critical"] == 0

    (tmp_path / "subid-ledger.yml").write_text(
        'version: 1\nblocks:\n- {owner: "root", scope: "fleet", start: 9000000, count: 65536, state: active, '
        "allocated: 2026-11-24}\n")
    Path("/etc/subuid").write_text("root:1000:65536\n")
    drifted = write_vars(tmp_path, subid_owners=["root"], subid_report_dir=str(report_dir))
    proc = run_playbook(playbook, "-e", "@%s" % drifted, "-c", "local", check=False)
    assert proc.returncode != 0
    report = json.loads((report_dir / "subid-audit.json").read_text())
    kinds = {f["kind"] for f in report["findings"]}
    assert {"drift", "host_id_collision", "missing"} <= kinds  # nobody (65534); nothing in /etc/subgid
    assert "/etc/subuid line 1: root has 1000+65536 but the ledger says 9000000+65536" in proc.stdout
    # The console: counts, one line per finding, the reports; the failure itself is one short line.
    critical = report["summary"]["critical"]
    assert '"%d critical, %d warning, ' % (critical, report["summary"]["warning"]) in proc.stdout
    # One row for the line, with every kind found on it (drift, and the host's UIDs it holds).
    row = re.search(r'"CRITICAL localhost /etc/subuid:1 root ([a-z_, ]+): ([^"]*)"', proc.stdout)
    assert row and row.group(1).split(", ")[0] == "drift" and "host_id_collision" in row.group(1), proc.stdout
    assert row.group(2).startswith("/etc/subuid line 1: root has 1000+65536 but the ledger says 9000000+65536")
    assert "%d critical finding(s), listed above and in %s" % (critical, report_dir / "subid-audit.md") \
        in proc.stdout
    assert '"findings": [' not in proc.stdout  # no result dumped as one JSON line


def test_the_audit_applies_the_pools_floor_not_the_modules_default(tmp_path, real_files):
    # A pool with floor 500: a block at 500+400 is the pool's to give (no host uses those
    # IDs here), so the audit finds nothing below the floor and passes.
    report_dir = tmp_path / "reports"
    (tmp_path / "subid-ledger.yml").write_text(
        'version: 1\nblocks:\n- {owner: "zed", scope: "fleet", start: 500, count: 400, state: active, '
        "allocated: 2026-11-24}\n")
    Path("/etc/subuid").write_text("zed:500:400\n")
    Path("/etc/subgid").write_text("zed:500:400\n")
    low = write_vars(tmp_path, subid_owners=["zed"], subid_report_dir=str(report_dir),
                     subid_pool={"ranges": [{"start": 500, "count": 10000000}], "floor": 500})
    proc = run_playbook(TOP / "playbooks" / "audit.yml", "-e", "@%s" % low, "-c", "local", check=False)
    report = json.loads((report_dir / "subid-audit.json").read_text())
    assert [f["kind"] for f in report["findings"] if f["severity"] == "critical"] == [], proc.stdout
    assert proc.returncode == 0, proc.stdout


SUBIDS_PLAY = """\
- name: Give the owners their ranges
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: fleetid.subid.subids
"""


def test_offboarding_stops_the_leavers_processes_that_map_the_range_or_refuses(tmp_path, real_files):
    name = "fb" + uuid.uuid4().hex[:6]
    subprocess.run(["useradd", "--create-home", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
    sleeper = None
    try:
        varfile = write_vars(tmp_path, subid_owners=[name], subids_migrate=False)
        (tmp_path / "subids.yml").write_text(SUBIDS_PLAY)
        run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile)
        assert "%s:9000000:65536\n" % name in Path("/etc/subuid").read_text()
        sleeper = sleep_in_user_namespace(name, PODMAN_ENV)
        before = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid", str(tmp_path / "subid-ledger.yml"))}
        playbook = TOP / "playbooks" / "offboard.yml"
        refused = run_playbook(playbook, "-e", "@%s" % varfile, "-e", '{"subid_offboard": ["%s"]}' % name,
                               "-e", "subid_offboard_stop_processes=false", "-c", "local", check=False)
        text = " ".join(refused.stdout.split())
        assert refused.returncode != 0
        assert re.search(r"Not offboarding on localhost: process(es)? [0-9, ]+ \(\S+ of %s\) maps? UIDs "
                         r"9000000-9065535 of %s's block" % (name, name), text), text
        assert "run again without subid_offboard_stop_processes=false to have them killed; nothing was changed" in text
        assert {p: Path(p).read_bytes() for p in before} == before
        assert sleeper.poll() is None  # still running: nothing was stopped

        stopped = run_playbook(playbook, "-e", "@%s" % varfile, "-e", '{"subid_offboard": ["%s"]}' % name,
                               "-c", "local", check=False)
        assert stopped.returncode == 0, stopped.stdout
        assert re.search(r"Stopping on localhost: process(es)? [0-9, ]+ \(\S+ of %s\) maps? UIDs" % name,
                         " ".join(stopped.stdout.split())), stopped.stdout
        assert sleeper.wait(timeout=30) != 0  # killed
        assert "%s:" % name not in Path("/etc/subuid").read_text()
        assert "state: quarantined" in (tmp_path / "subid-ledger.yml").read_text()
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        if sleeper:
            sleeper.wait(timeout=30)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def test_an_owner_with_storage_whose_host_lines_differ_is_held_until_moved(tmp_path, real_files):
    """A host joins with a range useradd gave, and the user has container storage there:
    the run keeps the range and says why, until subid_move says to move it."""
    name = "fm" + uuid.uuid4().hex[:6]
    subprocess.run(["useradd", "--create-home", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
    try:
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as handle:
                handle.write("%s:7000000:65536\n" % name)  # as useradd gave it on this host
        made = subprocess.run(["runuser", "-u", name, "--", "env", "-u", "XDG_RUNTIME_DIR", "podman", "info"], cwd="/",
                              env=dict(os.environ, **PODMAN_ENV), capture_output=True, text=True, check=False)
        assert made.returncode == 0, made.stderr
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)  # storage only, no process left
        for dummy in range(100):
            if subprocess.run(["pgrep", "-u", name], capture_output=True, check=False).returncode != 0:
                break
            time.sleep(0.1)
        varfile = write_vars(tmp_path, subid_owners=[name])
        (tmp_path / "subids.yml").write_text(SUBIDS_PLAY)
        files = [Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")]
        for flags in (("--check",), ()):
            held = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile, *flags)
            text = " ".join((held.stdout + held.stderr).split())
            assert ("localhost: %s keeps 7000000+65536 here, not the ledger's 9000000+65536: %s has container state "
                    "(storage /home/%s/.local/share/containers/storage), whose files" % (name, name, name)) in text, text
            assert "To move %s with its storage, list %s in subid_move" % (name, name) in text
            assert [Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")] == files
        assert '{owner: "%s", scope: "fleet", start: 9000000, count: 65536, state: active' % name \
            in (tmp_path / "subid-ledger.yml").read_text()  # the ledger's block stands

        moved = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile, "-e", '{"subid_move": ["%s"]}' % name,
                             env=PODMAN_ENV)
        assert "keeps 7000000+65536" not in moved.stdout + moved.stderr
        assert "%s:9000000:65536\n" % name in Path("/etc/subuid").read_text()
        assert "%s:7000000" % name not in Path("/etc/subuid").read_text()
        assert "podman system migrate ran as: %s" % name in " ".join(moved.stdout.split()), moved.stdout
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def test_an_owner_with_no_account_anywhere_is_named_and_refused_when_asked(tmp_path, real_files):
    """A typo in subid_owners (alcie for alice): said plainly, and with
    subids_unknown_owners: refuse, nothing is allocated or written for it."""
    typo = "fq" + uuid.uuid4().hex[:6]  # no such account
    (tmp_path / "subids.yml").write_text(SUBIDS_PLAY)
    varfile = write_vars(tmp_path, subid_owners=["root", typo])
    warned = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile)
    text = " ".join((warned.stdout + warned.stderr).split())
    assert ("localhost: %s has no account on any host of this play (getent passwd %s finds nothing): it gets a "
            "fleet-wide block and lines all the same. A typo?" % (typo, typo)) in text, text
    assert "%s:" % typo in Path("/etc/subuid").read_text()

    refused_vars = write_vars(tmp_path, subid_owners=["root", typo + "x"], subids_unknown_owners="refuse",
                              subid_ledger=str(tmp_path / "other-ledger.yml"),
                              subid_pool={"ranges": [{"start": 30000000, "count": 10000000}]})
    refused = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % refused_vars)
    text = " ".join((refused.stdout + refused.stderr).split())
    assert "owner %r is refused, nothing was allocated or written for it: it has no account on any host of this " \
           "play" % (typo + "x") in text, text
    assert typo + "x" not in (tmp_path / "other-ledger.yml").read_text()
    assert "root" in (tmp_path / "other-ledger.yml").read_text()  # the host's other owners are served
    assert typo + "x:" not in Path("/etc/subuid").read_text()


def test_a_line_of_another_owner_that_maps_root_fails_the_host_until_removed(tmp_path, real_files):
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path, "a") as handle:
            handle.write("root:0:65536\n")
    line = len(Path("/etc/subuid").read_text().splitlines())
    (tmp_path / "subids.yml").write_text(SUBIDS_PLAY)
    varfile = write_vars(tmp_path, subid_owners=["nobody"])
    files = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")}
    for flags in (("--check",), ()):
        refused = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile, *flags, check=False)
        text = " ".join(refused.stdout.split())
        assert refused.returncode == 2, text
        assert ("/etc/subuid line %d (root:0:65536) contains ID 0: its owner can become the host's root" % line) in text
        assert "Nothing was allocated or written on this host" in text and "subids_unsafe_lines=remove" in text
        assert {p: Path(p).read_bytes() for p in files} == files
        assert not (tmp_path / "subid-ledger.yml").exists()
    removed = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile, "-e", "subid_unsafe_lines=remove")
    assert "root:0:65536" not in Path("/etc/subuid").read_text() + Path("/etc/subgid").read_text(), removed.stdout
    assert "nobody:9000000:65536\n" in Path("/etc/subuid").read_text()


def test_a_returning_person_is_onboarded_with_the_old_block_only_when_reactivated(tmp_path, real_files):
    name = "fr" + uuid.uuid4().hex[:6]
    account = {"name": name, "uid": 2951}
    common = dict(rootless_podman_install=False, rootless_podman_proof="maps",
                  rootless_podman_proof_dir=str(tmp_path / "proofs"))
    onboard, offboard = TOP / "playbooks" / "onboard.yml", TOP / "playbooks" / "offboard.yml"
    try:
        run_playbook(onboard, "-e", "@%s" % write_vars(tmp_path, subid_accounts=[account], **common), "-c", "local",
                     env=PODMAN_ENV)
        run_playbook(offboard, "-e", "@%s" % write_vars(tmp_path), "-e", '{"subid_offboard": ["%s"]}' % name,
                     "-c", "local")
        assert "%s:" % name not in Path("/etc/subuid").read_text()
        ledger = tmp_path / "subid-ledger.yml"
        quarantined = ledger.read_bytes()
        again = run_playbook(onboard, "-e", "@%s" % write_vars(tmp_path, subid_accounts=[account], **common),
                             "-c", "local", env=PODMAN_ENV, check=False)
        text = " ".join((again.stdout + again.stderr).split())
        assert "%s is skipped, nothing was allocated or written for it: its block 9000000-9065535 (65536 IDs) is quarantined" \
            % name in text, text
        assert "list it as {name: %s, state: reactivated}" % name in text
        assert again.returncode != 0  # and the proof says the account has no range here
        assert ledger.read_bytes() == quarantined and "%s:" % name not in Path("/etc/subuid").read_text()
        back = run_playbook(onboard, "-e", "@%s" % write_vars(
            tmp_path, subid_accounts=[dict(account, state="reactivated")], **common), "-c", "local", env=PODMAN_ENV)
        assert "%s:9000000:65536\n" % name in Path("/etc/subuid").read_text(), back.stdout
        assert "state: active" in ledger.read_text()
    finally:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def test_dockers_remapped_data_holds_dockremap_and_a_move_is_refused(tmp_path, real_files):
    """dockerd --userns-remap made dockremap:7000000:65536 and keeps its data in
    /var/lib/docker/7000000.7000000: the ledger's other block would strand it."""
    created = subprocess.run(["useradd", "--system", "--no-create-home", "dockremap"], capture_output=True,
                             check=False).returncode == 0
    data = Path("/var/lib/docker/7000000.7000000")
    made_docker = not Path("/var/lib/docker").exists()
    data.mkdir(parents=True, exist_ok=False)
    try:
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as handle:
                handle.write("dockremap:7000000:65536\n")
        (tmp_path / "subids.yml").write_text(SUBIDS_PLAY)
        varfile = write_vars(tmp_path, subid_owners=["dockremap"])
        files = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")}
        held = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile)
        text = " ".join((held.stdout + held.stderr).split())
        assert ("dockremap keeps 7000000+65536 here, not the ledger's 9000000+65536: dockremap has container state "
                "(Docker data /var/lib/docker/7000000.7000000)") in text, text
        assert {p: Path(p).read_bytes() for p in files} == files
        moved = run_playbook(tmp_path / "subids.yml", "-e", "@%s" % varfile, "-e", '{"subid_move": ["dockremap"]}',
                             check=False)
        assert moved.returncode != 0
        assert "dockremap: not moved, Docker's remapped data in /var/lib/docker/7000000.7000000" in moved.stdout
        assert {p: Path(p).read_bytes() for p in files} == files
    finally:
        data.rmdir()
        if made_docker:
            Path("/var/lib/docker").rmdir()
        if created:
            subprocess.run(["userdel", "dockremap"], check=False)
