"""What the runs reported, from the records molecule/shared/record.yml wrote beside the
ledger: the first run migrated only the owner with Podman state and proved everyone;
the converged and check runs reported the earlier proofs; the forced run proved again."""

import json
import os

import pytest
import yaml

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]


def _hosts():
    with open(os.environ["MOLECULE_INVENTORY_FILE"]) as handle:
        data = yaml.safe_load(handle)
    return sorted({name for group in data.values() for name in ((group or {}).get("hosts") or {})})


@pytest.fixture(params=_hosts())
def runs(request):
    with open(os.path.join(EPHEMERAL, "runs-%s.jsonl" % request.param)) as handle:
        return [json.loads(line) for line in handle]


def proofs(run):
    return {report["name"]: report for report in run["proof"]}


def test_four_runs_recorded(runs):
    # converge, idempotence, check, side_effect (forced)
    assert [(r["check_mode"], r["forced"]) for r in runs] == [(False, False), (False, False), (True, False),
                                                              (False, True)]


def test_first_run_migrated_only_the_owner_with_podman_state(runs):
    migration = runs[0]["migration"]
    assert migration["migrated"] == ["alice"]
    assert "storage /home/alice/.local/share/containers/storage" in migration["evidence"]["alice"]
    assert "bob" in migration["without_state"] and "alice" not in migration["without_state"]
    assert set(migration["evidence"]) == {"alice"}
    assert all(run["migration"]["skipped"] for run in runs[1:])  # no range changed: nothing migrated


def test_proof_now_then_before_then_forced(runs):
    first, second, check, forced = (proofs(run) for run in runs)
    assert first and set(first) == set(second) == set(check) == set(forced)
    for name, report in first.items():
        assert (report["proof"], report["reason"], report["ok"]) == ("now", "no record", True), name
        assert report["ran"] is True
        for later in (second, check):
            assert later[name]["proof"] == "before" and later[name]["proven_at"] == report["proven_at"], name
            assert later[name]["ran"] is None and later[name]["digest"] == report["digest"]
        assert (forced[name]["proof"], forced[name]["reason"], forced[name]["ran"]) == ("now", "forced", True)
        assert forced[name]["proven_at"] >= report["proven_at"]
