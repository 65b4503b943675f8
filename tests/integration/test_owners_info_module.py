"""fleetid.subid.owners_info through ansible-playbook, with the machine's real NSS
(getent): members by primary GID, a group that does not resolve, an owner that does not
resolve, listed owners winning, and the owners present in a subuid file."""

import grp
import pwd

import pytest


@pytest.fixture
def subuid(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\nbob:165536:65536\nalice:300000:10\n+nis:1:1\n")
    return path


def by_primary_gid(gid):
    return [e.pw_name for e in pwd.getpwall() if e.pw_gid == gid]


@pytest.mark.parametrize("check_mode", [False, True])
def test_groups_and_owners_resolve_through_nss(run_module, subuid, check_mode):
    res = run_module("fleetid.subid.owners_info", {
        "groups": ["root", {"name": "daemon", "count": 131072}, "fleetid-no-such-group"],
        "owners": [{"name": "root", "count": 5}, "fleetid-no-such-user"],
        "subuid_path": str(subuid),
    }, check_mode=check_mode)
    assert not res.get("failed"), res
    assert res["changed"] is False
    # root is listed: its entry wins over its group's; daemon's members come with the count.
    expected = [{"name": "root", "count": 5}, "fleetid-no-such-user"]
    seen = {"root", "fleetid-no-such-user"}
    for name, extra in (("root", {}), ("daemon", {"count": 131072})):
        group = grp.getgrnam(name)
        for member in list(group.gr_mem) + [m for m in by_primary_gid(group.gr_gid) if m not in group.gr_mem]:
            if member not in seen:
                seen.add(member)
                expected.append(dict({"name": member}, **extra))
    assert {"name": "daemon", "count": 131072} in expected  # daemon's primary GID is daemon's here
    assert res["owners"] == expected
    assert res["added"]["daemon"] == "daemon"
    groups = {g["name"]: g for g in res["groups"]}
    assert groups["root"]["found"] and groups["root"]["gid"] == 0 and "root" in groups["root"]["members"]
    missing = {"name": "fleetid-no-such-group", "found": False, "gid": None, "members": []}
    assert groups["fleetid-no-such-group"] == missing
    assert any("fleetid-no-such-group does not resolve" in w for w in res["warnings"])
    assert res["accounts"]["root"]["uid"] == 0 and res["accounts"]["daemon"]["uid"] == pwd.getpwnam("daemon").pw_uid
    assert res["unresolved"] == ["fleetid-no-such-user"]
    assert {"kind": "uid", "id": 0, "name": "root"} in res["host_state"]["resolved_ids"]
    assert {"kind": "gid", "id": 0, "name": "group root; primary group of root"} in res["host_state"]["resolved_ids"]
    assert res["host_state"]["present_owners"] == ["alice", "bob"]  # shadow skips the NIS line


def test_a_bad_group_item_fails_naming_it(run_module, subuid):
    args = {"groups": [{"name": "root", "size": 1}], "subuid_path": str(subuid)}
    res = run_module("fleetid.subid.owners_info", args)
    assert res["failed"] and res["msg"] == "owner group 'root' has unknown key(s): size (allowed: name, count, scope)"


def test_current_ranges_are_what_the_subid_module_would_leave_as_they_are(run_module, tmp_path):
    # daemon has an account (UID 1 here): its line in UID form is its own, and the subid
    # module would rewrite it in name form, so it is reported as V(null).
    uid = pwd.getpwnam("daemon").pw_uid
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("daemon:100000:65536\nfleetid-svc:165536:65536\nfleetid-svc:231072:65536\n")
    subgid.write_text("%d:100000:65536\nfleetid-svc:165536:65536\n# apart\nfleetid-svc:231072:65536\n" % uid)
    args = {"owners": ["daemon", "fleetid-svc", "fleetid-absent"], "subuid_path": str(subuid),
            "subgid_path": str(subgid)}
    res = run_module("fleetid.subid.owners_info", args)
    assert res["host_state"]["current_ranges"] == {
        "subuid": {"daemon": [[100000, 65536]], "fleetid-svc": [[165536, 65536], [231072, 65536]]},
        "subgid": {"daemon": None, "fleetid-svc": None},
        "interrupted_write": False,
    }
    (tmp_path / ".subuid.fleetid-journal").write_text("{}")
    subgid.unlink()
    res = run_module("fleetid.subid.owners_info", args)
    assert res["host_state"]["current_ranges"]["interrupted_write"] is True
    assert res["host_state"]["current_ranges"]["subgid"] == {}


def test_a_subuid_file_shadow_cannot_read_line_by_line_is_none_and_no_failure(run_module, tmp_path):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_bytes(b"daemon:100000:65536\0\nfleetid-svc:165536:65536\n")  # a NUL byte joins the lines
    subgid.write_text("daemon:100000:65536\n")
    res = run_module("fleetid.subid.owners_info", {"owners": ["daemon", "fleetid-svc"], "subuid_path": str(subuid),
                                                   "subgid_path": str(subgid)})
    assert not res.get("failed"), res
    assert res["host_state"]["current_ranges"]["subuid"] is None
    assert res["host_state"]["podman_state"] == {}
