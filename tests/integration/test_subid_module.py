"""fleetid.subid.subid and subid_info through ansible-playbook, on temporary files."""

import pytest

SEED = "# managed by hand\nzed:900000:65536\r\nlegacy line\n"


@pytest.fixture
def files(tmp_path):
    paths = {"subuid": tmp_path / "subuid", "subgid": tmp_path / "subgid"}
    for path in paths.values():
        path.write_text(SEED, newline="")
    return paths


def args(files, subuid, subgid=None, **extra):
    result = {"subuid": subuid, "subgid": subuid if subgid is None else subgid,
              "subuid_path": str(files["subuid"]), "subgid_path": str(files["subgid"])}
    result.update(extra)
    return result


def snapshot(files):
    return {k: p.read_bytes() for k, p in files.items()}


ALICE = [{"name": "alice", "start": 100000, "count": 65536}]


def test_apply_check_diff_and_idempotence(run_module, files):
    before = snapshot(files)
    res = run_module("fleetid.subid.subid", args(files, ALICE), check_mode=True, diff=True)
    assert res["changed"] is True and res["changed_owners"] == ["alice"]
    assert snapshot(files) == before
    assert res["diff"][0]["after"] == SEED + "alice:100000:65536\n"

    res = run_module("fleetid.subid.subid", args(files, ALICE))
    assert res["changed"] is True
    assert files["subuid"].read_bytes() == (SEED + "alice:100000:65536\n").encode()
    assert res["files"]["subuid"]["added"] == ["alice:100000:65536"]

    again = run_module("fleetid.subid.subid", args(files, ALICE))
    assert again["changed"] is False and again["changed_owners"] == []


def test_growth_and_state_absent(run_module, files):
    run_module("fleetid.subid.subid", args(files, ALICE))
    grown = ALICE + [{"name": "alice", "start": 300000, "count": 65536}]
    res = run_module("fleetid.subid.subid", args(files, grown))
    assert res["changed_owners"] == ["alice"]
    assert files["subgid"].read_text().endswith("alice:100000:65536\nalice:300000:65536\n")
    res = run_module("fleetid.subid.subid", args(files, [{"name": "alice"}], state="absent"))
    assert res["changed"] is True
    assert files["subuid"].read_bytes() == SEED.encode() and files["subgid"].read_bytes() == SEED.encode()


def test_backup_keeps_the_old_file(run_module, files):
    res = run_module("fleetid.subid.subid", args(files, ALICE, backup=True))
    assert len(res["backup_files"]) == 2
    with open(res["backup_files"][0], "rb") as handle:
        assert handle.read() == SEED.encode()


@pytest.mark.parametrize(
    "subuid,subgid,message",
    [
        ([{"name": "bob", "start": 950000, "count": 65536}], None,
         "{dir}/subuid: refused, nothing was written: bob:950000:65536 overlaps {dir}/subuid line 2 "
         "(zed:900000:65536)"),
        (ALICE, [{"name": "alice", "start": 0, "count": 65536}], "reaches below 1000: ID 0 is root"),
        ([{"name": "alice", "start": 500, "count": 65536}], None, "reaches below 1000"),
        ([{"name": "root:0:65536\nx", "start": 100000, "count": 1}], None, "is not allowed"),
        # The nobody account (65534) is on every Debian host: a range over it is refused.
        ([{"name": "alice", "start": 65000, "count": 1000}], None,
         "alice:65000:1000 contains UID 65534, which the host uses"),
        (ALICE, [{"name": "alice", "start": 65000, "count": 1000}], "contains GID 65534, which the host uses"),
    ],
)
def test_refusals_leave_both_files_untouched(run_module, files, subuid, subgid, message):
    before = snapshot(files)
    res = run_module("fleetid.subid.subid", args(files, subuid, subgid))
    assert res["failed"]
    assert message.format(dir=files["subuid"].parent) in res["msg"]
    assert snapshot(files) == before
    assert not [p for p in files["subuid"].parent.iterdir() if p.name.endswith(".lock")]


def test_subid_info_findings(run_module, tmp_path):
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\nbob:150000:65536\nroot:0:65536\nbad\n")
    (tmp_path / "subgid").write_text("")
    res = run_module("fleetid.subid.subid_info", {"subuid_path": str(subuid), "subgid_path": str(tmp_path / "subgid")})
    assert res["changed"] is False
    assert [e["owner"] for e in res["subuid"]] == ["alice", "bob", "root"]
    kinds = {(f["kind"], f["line"]) for f in res["findings"]}
    assert {("overlap", 2), ("maps_root", 3), ("owner_id_in_range", 3), ("malformed_line", 4)} <= kinds
    helpers = {h["name"]: h for h in res["helpers"]}
    assert helpers["newuidmap"]["exists"] and helpers["newuidmap"]["setuid"]
    assert res["podman_version"].startswith("podman version")
    assert "user.max_user_namespaces" in res["sysctls"]
    assert res["findings"][0]["severity"] == "critical"
