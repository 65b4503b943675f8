"""The subids role through ansible-playbook on files in a temp folder: a converged host
skips the write (the owner resolution read the files, and the allocation says they hold
exactly its ranges), while any drift, an interrupted write or check mode on a drifted
host still gets the write."""

import json

import pytest
import yaml

from conftest import run_recorded

POOL = {"ranges": [{"start": 100000, "count": 600000000}]}
OWNERS = ["fleetid-svc-a", "fleetid-svc-b"]  # service owners: no account, nothing resolved

PLAY = [{
    "name": "Subordinate IDs",
    "hosts": "localhost",
    "connection": "local",
    "gather_facts": False,
    "roles": [{"role": "fleetid.subid.subids"}],
}]

WRITE_TASK = "fleetid.subid.subids : Write the ranges to /etc/subuid and /etc/subgid"


@pytest.fixture
def host(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    extra = {"subids_ledger": str(tmp_path / "ledger.yml"), "subids_pool": POOL, "subids_owners": OWNERS,
             "subids_subuid_path": str(folder / "subuid"), "subids_subgid_path": str(folder / "subgid"),
             "subids_migrate": False}
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(PLAY))
    return tmp_path


def run(host, *flags):
    """(what the write task did on localhost: ok, changed or skipped; the recap's counts)."""
    done = run_recorded(host / "play.yml", "-e", "@%s" % (host / "vars.json"), *flags)
    return done.status(WRITE_TASK), done.recap["localhost"]


def files(host):
    return [(host / "etc" / kind).read_text() for kind in ("subuid", "subgid")]


def test_a_converged_host_skips_the_write_and_any_drift_gets_it(host):
    status, recap = run(host)
    assert status == "changed"
    written = files(host)
    assert [line.split(":")[0] for line in written[0].splitlines()] == OWNERS and written[0] == written[1]

    status, recap = run(host)
    assert (status, files(host)) == ("skipped", written)
    assert recap["changed"] == 0

    # A hand edit moves one owner's range: the write runs and puts it back.
    subuid = host / "etc" / "subuid"
    subuid.write_text(written[0].replace(":%s:" % written[0].split(":")[1], ":900000000:", 1))
    assert run(host, "--check")[0] == "changed"  # check mode predicts the write
    assert files(host)[0] != written[0]
    assert run(host)[0] == "changed"
    assert files(host) == written

    # A line for the owner in another place (not next to its first line) is rewritten too.
    subuid.write_text(written[0] + "# a comment\n" + written[0].splitlines()[0] + "\n")
    assert run(host)[0] == "changed"
    assert files(host)[0] == written[0] + "# a comment\n"

    # The journal of an interrupted write: the module must run to repair it.
    journal = host / "etc" / ".subuid.fleetid-journal"
    journal.write_text("{")  # killed while writing it
    assert run(host)[0] == "ok"
    assert not journal.exists()
    assert run(host)[0] == "skipped"


def set_owners(host, owners):
    extra = json.loads((host / "vars.json").read_text())
    extra["subids_owners"] = owners
    (host / "vars.json").write_text(json.dumps(extra))


def test_a_routine_run_does_not_undo_an_offboarding(host):
    run(host)
    written = files(host)
    a_line, b_line = written[0].splitlines()
    set_owners(host, [{"name": "fleetid-svc-a", "state": "released"}, "fleetid-svc-b"])  # as offboard.yml does
    run(host)
    assert files(host) == [b_line + "\n"] * 2
    ledger = (host / "ledger.yml").read_bytes()
    assert b"state: quarantined" in ledger

    # The next routine run, with the leaver still listed: held, said, nothing written.
    set_owners(host, OWNERS)
    for flags in (("--check",), ()):
        done = run_recorded(host / "play.yml", "-e", "@%s" % (host / "vars.json"), *flags)
        text = " ".join((done.stdout + done.stderr).split())
        assert done.recap["localhost"]["failures"] == 0
        start, count = (int(field) for field in a_line.split(":")[1:])
        assert ("localhost: fleetid-svc-a is skipped, nothing was allocated or written for it: its block %d-%d (%d IDs) "
                "is quarantined since it was released on" % (start, start + count - 1, count)) in text, text
        assert ("If fleetid-svc-a is back, list it as {name: fleetid-svc-a, state: reactivated} to take the block back "
                "into use; otherwise remove fleetid-svc-a from subid_owners") in text, text
    assert files(host) == [b_line + "\n"] * 2
    assert (host / "ledger.yml").read_bytes() == ledger

    # Said explicitly: the same block comes back.
    set_owners(host, [{"name": "fleetid-svc-a", "state": "reactivated"}, "fleetid-svc-b"])
    assert run(host)[0] == "changed"
    assert sorted(files(host)[0].splitlines()) == sorted([a_line, b_line])
    assert b"state: quarantined" not in (host / "ledger.yml").read_bytes()
