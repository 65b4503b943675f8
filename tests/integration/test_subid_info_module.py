"""fleetid.subid.subid_info through ansible-playbook, on seeded files."""

import os
import pwd
import shutil
import stat
import subprocess

import pytest

SUBUID = (
    "# seeded\n"
    "alice:100000:65536\n"        # 2: unknown owner
    "bob:150000:65536\n"          # 3: overlaps alice, unknown owner
    "root:0:65536\n"              # 4: maps root, root's own UID, host IDs
    "daemon:500:600\n"            # 5: below the floor, host IDs (daemon is UID 1, bin 2, ...)
    "nobodyrange:65000:1000\n"    # 6: holds nobody's 65534
    "bad line\n"                  # 7: malformed
    "1:7000000:10\n"              # 8: daemon by UID
    "daemon:7000005:10\n"         # 9: daemon again: touching its own range is no overlap
    "crlf:8000000:10\r\n"         # 10: shadow ignores it
)


def seed(tmp_path):
    (tmp_path / "subuid").write_text(SUBUID, newline="")
    (tmp_path / "subgid").write_text("root:0:10\ngid_user:200000:10\n")
    (tmp_path / "login.defs").write_text(
        "# SUB_UID_MIN 1\nUID_MIN 1000\nUID_MAX 60000\nSUB_UID_MIN\t100000\nSUB_UID_MAX 600100000\n"
        "SUB_UID_COUNT 65536\nSUB_GID_MIN 0x186a0\nSUB_GID_MAX 600100000\nSUB_GID_COUNT 0\n")
    for name, value in (("user/max_user_namespaces", "0\n"), ("kernel/unprivileged_userns_clone", "1\n"),
                        ("kernel/apparmor_restrict_unprivileged_userns", "1\n")):
        path = tmp_path / "sys" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    (tmp_path / "nsswitch.conf").write_text("passwd: files\nsubid:   sss\n")
    return {"subuid_path": str(tmp_path / "subuid"), "subgid_path": str(tmp_path / "subgid"),
            "login_defs_path": str(tmp_path / "login.defs"), "proc_sys_path": str(tmp_path / "sys"),
            "nsswitch_path": str(tmp_path / "nsswitch.conf")}


def test_findings_on_seeded_files(run_module, tmp_path):
    params = seed(tmp_path)
    before = {p: open(params[p], "rb").read() for p in ("subuid_path", "subgid_path")}
    res = run_module("fleetid.subid.subid_info", params, check_mode=True)
    assert res["changed"] is False
    assert {p: open(params[p], "rb").read() for p in ("subuid_path", "subgid_path")} == before

    assert [(e["owner"], e["start"], e["count"], e["line"]) for e in res["subuid"]] == [
        ("alice", 100000, 65536, 2), ("bob", 150000, 65536, 3), ("root", 0, 65536, 4), ("daemon", 500, 600, 5),
        ("nobodyrange", 65000, 1000, 6), ("1", 7000000, 10, 8), ("daemon", 7000005, 10, 9),
        ("crlf", 8000000, 10, 10)]
    assert "ends in CR" in res["subuid"][-1]["note"] and res["subuid"][0]["note"] is None

    subuid = params["subuid_path"]
    # systemd_window depends on what this host has installed: test_systemd_window covers it.
    found = {(f["kind"], f["file"], f["line"]) for f in res["findings"] if f["kind"] != "systemd_window"}
    expected = {
        ("unknown_owner", subuid, 2), ("unknown_owner", subuid, 3), ("overlap", subuid, 3),
        ("maps_root", subuid, 4), ("owner_id_in_range", subuid, 4),
        ("below_floor", subuid, 5),
        ("host_id_collision", subuid, 6), ("unknown_owner", subuid, 6),
        ("overlap", subuid, 5), ("overlap", subuid, 6),  # both inside root:0:65536
        ("malformed_line", subuid, 7), ("malformed_line", subuid, 10), ("unknown_owner", subuid, 10),
        ("consumer_compat", subuid, 8), ("consumer_compat", subuid, 1),  # a numeric owner, a comment
        ("maps_root", params["subgid_path"], 1), ("owner_id_in_range", params["subgid_path"], 1),
        ("unknown_owner", params["subgid_path"], 2),
        ("userns_disabled", None, None), ("nsswitch_subid", params["nsswitch_path"], None),
    }
    # daemon:500:600 meets a host account only where one has a UID in 500-1099 (a first user).
    if any(500 <= account.pw_uid < 1100 for account in pwd.getpwall()):
        expected.add(("host_id_collision", subuid, 5))
    assert found == expected
    by_line = {(f["kind"], f["line"]): f for f in res["findings"] if f["file"] == subuid}
    assert by_line[("overlap", 3)]["severity"] == "critical"
    assert by_line[("overlap", 3)]["message"].startswith(
        "%s line 3 (bob:150000:65536) overlaps %s line 2 (alice:100000:65536)" % (subuid, subuid))
    assert by_line[("host_id_collision", 6)]["message"] == (
        "%s line 6 (nobodyrange:65000:1000) contains UID 65534, which the host uses" % subuid)
    assert by_line[("owner_id_in_range", 4)]["message"] == (
        "%s line 4 (root:0:65536) contains its owner's own UID 0" % subuid)
    assert by_line[("unknown_owner", 2)]["severity"] == "warning"
    severities = [f["severity"] for f in res["findings"]]
    assert severities == sorted(severities, key=lambda s: s != "critical")  # critical first
    userns = [f for f in res["findings"] if f["kind"] == "userns_disabled"]
    assert [(f["severity"], f["message"]) for f in userns] == [
        ("critical", "unprivileged user namespaces are disabled (user.max_user_namespaces=0)"),
        ("warning", "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1): "
                    "only programs with a 'userns,' profile (the distribution's podman has one) can create them")]
    assert res["sysctls"] == {"user.max_user_namespaces": 0, "kernel.unprivileged_userns_clone": 1,
                              "kernel.apparmor_restrict_unprivileged_userns": 1}

    assert res["login_defs"] == {"UID_MIN": 1000, "UID_MAX": 60000, "SUB_UID_MIN": 100000, "SUB_UID_MAX": 600100000,
                                 "SUB_UID_COUNT": 65536, "SUB_GID_MIN": 100000, "SUB_GID_MAX": 600100000,
                                 "SUB_GID_COUNT": 0}
    assert res["nsswitch_subid"] == "sss"


def test_helpers_and_podman_on_this_host(run_module, tmp_path):
    params = seed(tmp_path)
    (tmp_path / "sys" / "user" / "max_user_namespaces").write_text("63704\n")
    (tmp_path / "sys" / "kernel" / "apparmor_restrict_unprivileged_userns").unlink()
    (tmp_path / "nsswitch.conf").write_text("passwd: files\n")
    res = run_module("fleetid.subid.subid_info", params)
    helpers = {h["name"]: h for h in res["helpers"]}
    # Compared with what this host has, whatever that is.
    for name, cap in (("newuidmap", "cap_setuid"), ("newgidmap", "cap_setgid")):
        helper = helpers[name]
        assert helper["capability"] == cap
        assert helper["path"] == shutil.which(name, path=os.environ["PATH"] + ":/usr/bin:/usr/sbin:/bin:/sbin")
        assert helper["exists"] is (helper["path"] is not None)
        if helper["exists"]:
            st = os.stat(helper["path"])
            assert helper["setuid"] == bool(st.st_mode & stat.S_ISUID and st.st_uid == 0)
    privileged = [h["name"] for h in res["helpers"] if h["exists"] and (h["setuid"] or h["capability_ok"])]
    assert sorted(f["kind"] for f in res["findings"] if f["kind"].startswith("helper_")) == sorted(
        "helper_missing" if not h["exists"] else "helper_not_privileged"
        for h in res["helpers"] if h["name"] not in privileged)
    assert not [f for f in res["findings"] if f["kind"].startswith(("userns_", "nsswitch_"))]
    assert res["nsswitch_subid"] is None
    podman = shutil.which("podman")
    assert res["podman_version"] == (subprocess.run([podman, "--version"], capture_output=True, text=True,
                                                    check=True).stdout.strip() if podman else None)


@pytest.fixture
def root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it is marked needs_root; deselect with -m 'not needs_root')")


@pytest.mark.needs_root
def test_a_helper_with_file_caps_instead_of_setuid(run_module, tmp_path, root):
    """A helper with cap_setuid+ep and no setuid bit counts as privileged; one with neither
    is reported. Stand-ins (only their file attributes matter) are put first on PATH."""
    helpers = tmp_path / "bin"
    helpers.mkdir()
    for name, caps in (("newuidmap", "cap_setuid+ep"), ("newgidmap", None)):
        target = helpers / name
        target.write_text("#!/bin/sh\nexit 1\n")
        os.chmod(target, 0o755)
        if caps:
            subprocess.run(["setcap", caps, str(target)], check=True)
    params = seed(tmp_path)
    res = run_module("fleetid.subid.subid_info", params,
                     env={"PATH": "%s:%s" % (helpers, os.environ["PATH"])})
    by_name = {h["name"]: h for h in res["helpers"]}
    assert by_name["newuidmap"]["path"] == str(helpers / "newuidmap")
    assert by_name["newuidmap"]["setuid"] is False and by_name["newuidmap"]["capability_ok"] is True
    assert by_name["newuidmap"]["file_caps"]["permitted"] == [7] and by_name["newuidmap"]["file_caps"]["effective"]
    assert by_name["newgidmap"]["capability_ok"] is False and by_name["newgidmap"]["file_caps"] is None
    weak = [f for f in res["findings"] if f["kind"] == "helper_not_privileged"]
    assert [(f["severity"], f["file"]) for f in weak] == [("critical", str(helpers / "newgidmap"))]

    # The helpers subset (what the uidmap role asks for) reports the same helpers and their
    # findings, and reads nothing else: the seeded files' findings are not there.
    only = run_module("fleetid.subid.subid_info", dict(params, gather_subset=["helpers"]),
                      env={"PATH": "%s:%s" % (helpers, os.environ["PATH"])})
    assert only["helpers"] == res["helpers"]
    assert only["findings"] == [f for f in res["findings"] if f["kind"].startswith("helper_")] == weak
    assert any(not f["kind"].startswith("helper_") for f in res["findings"])
    assert (only["subuid"], only["subgid"], only["login_defs"], only["podman_version"]) == ([], [], {}, None)


def test_systemd_window(run_module, tmp_path):
    """With systemd-nspawn on PATH, ranges inside systemd's container UID range are warned
    about; the others are not."""
    programs = tmp_path / "bin"
    programs.mkdir()
    (programs / "systemd-nspawn").write_text("#!/bin/sh\n")  # only its presence matters here
    (programs / "systemd-nspawn").chmod(0o755)
    params = seed(tmp_path)
    res = run_module("fleetid.subid.subid_info", params, env={"PATH": "%s:%s" % (programs, os.environ["PATH"])})
    assert res["systemd_id_allocators"][0] == str(programs / "systemd-nspawn")
    windows = [f for f in res["findings"] if f["kind"] == "systemd_window"]
    assert [(f["severity"], f["file"], f["line"]) for f in windows] == [
        ("warning", params["subuid_path"], line) for line in (8, 9, 10)]
    assert windows[0]["message"].startswith(
        "%s line 8 (1:7000000:10) lies in systemd's container UID range 524288-1879048191: systemd-nspawn"
        % params["subuid_path"])
    assert windows[0]["message"].endswith("list that range in subid_pool.reserved")
