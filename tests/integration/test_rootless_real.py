"""Rootless Podman for real on this machine: real useradd, real /etc/subuid, the real
newuidmap, a real `podman run` as each user, through fleetid.subid.rootless_check.

Includes the seed case: an image with a file owned by UID 4,000,000 fails clearly for a
user with 65536 subordinate IDs and runs for a user given 4,194,304.
"""

import json
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import TOP, run_playbook

pytestmark = pytest.mark.needs_root

IMAGES = TOP / ".cache" / "images"
# Root Podman settings for this kind of machine (runc, explicit ulimits); test-only.
PODMAN_ENV = {"CONTAINERS_CONF": str(TOP / "tests" / "podman" / "containers.conf")}
RUN_OPTIONS = ["--network", "none", "--runtime", "runc",
               "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def images():
    subprocess.run([str(TOP / "scripts" / "images")], check=True, capture_output=True)
    archives = {name: IMAGES / ("%s.tar" % name) for name in ("fleetid-busybox", "fleetid-highuid")}
    for path in archives.values():
        assert path.is_file(), path
        os.chmod(path, 0o644)
    return archives


@pytest.fixture
def subid_files():
    """The real /etc/subuid and /etc/subgid, restored byte for byte afterwards."""
    saved = {p: Path(p).read_bytes() for p in ("/etc/subuid", "/etc/subgid")}
    yield
    for path, data in saved.items():
        Path(path).write_bytes(data)


@pytest.fixture
def make_user(subid_files):
    created = []

    def make(start, count, home=True, home_dir=None):
        name = "fx" + uuid.uuid4().hex[:8]
        where = ["--home-dir", home_dir % name] if home_dir else []
        subprocess.run(["useradd", "--create-home" if home else "--no-create-home", "--shell", "/bin/bash", *where,
                        "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name], check=True)
        created.append(name)
        for path in ("/etc/subuid", "/etc/subgid"):
            with open(path, "a") as handle:
                handle.write("%s:%d:%d\n" % (name, start, count))
        return name

    yield make
    for name in created:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


@pytest.fixture
def proof_dir(tmp_path):
    """Proof records in a folder of the test's own, never the machine's."""
    return tmp_path / "proofs"


def check(run_module, proof_dir, users, entries, check_mode=False, **extra):
    args = {"users": users, "subuid": entries, "subgid": entries, "run_options": RUN_OPTIONS,
            "state_dir": str(proof_dir)}
    args.update(extra)
    return run_module("fleetid.subid.rootless_check", args, check_mode=check_mode, env=PODMAN_ENV)


def test_maps_and_a_real_run_match_the_ledger(run_module, proof_dir, make_user, images):
    user = make_user(3000000, 65536)
    uid = int(subprocess.check_output(["id", "-u", user]))
    res = check(run_module, proof_dir, [user], [{"name": user, "start": 3000000, "count": 65536}],
                image="localhost/fleetid-busybox:latest", image_archive=str(images["fleetid-busybox"]))
    assert not res.get("failed"), res
    report = res["users"][0]
    assert report["uid_map"] == [[0, uid, 1], [1, 3000000, 65536]]
    assert report["ran"] is True and report["image_loaded"] is True
    assert report["highest_id"] == 65536
    assert res["changed"] is True
    again = check(run_module, proof_dir, [user], [{"name": user, "start": 3000000, "count": 65536}],
                  image="localhost/fleetid-busybox:latest", image_archive=str(images["fleetid-busybox"]))
    assert again["changed"] is False and again["users"][0]["ok"]


def test_a_missing_home_is_created_as_pam_mkhomedir_would_in_the_same_module_run(run_module, proof_dir, make_user):
    user = make_user(3100000, 65536, home=False)
    home = Path("/home") / user
    entries = [{"name": user, "start": 3100000, "count": 65536}]
    assert not home.exists()
    refused = check(run_module, proof_dir, [user], entries)
    assert refused["failed"] and "%s's home %s does not exist" % (user, home) in refused["msg"]
    predicted = check(run_module, proof_dir, [user], entries, check_mode=True, create_homes=True)
    assert predicted["changed"] is True and not predicted.get("failed"), predicted
    assert predicted["users"][0]["home_created"] is True and predicted["users"][0]["proof"] == "pending"
    assert not home.exists()  # check mode creates nothing
    made = check(run_module, proof_dir, [user], entries, create_homes=True)
    assert not made.get("failed"), made
    assert made["changed"] is True and made["users"][0]["home_created"] is True and made["users"][0]["proof"] == "now"
    st = home.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (int(subprocess.check_output(["id", "-u", user])), 0o700)
    assert (home / ".bashrc").read_bytes() == Path("/etc/skel/.bashrc").read_bytes()
    again = check(run_module, proof_dir, [user], entries, create_homes=True)
    assert again["changed"] is False and again["users"][0]["home_created"] is False
    assert again["users"][0]["proof"] == "before"


def test_homes_are_created_only_for_users_proven_and_only_under_the_home_roots(run_module, proof_dir, make_user):
    proven = make_user(3110000, 65536, home=False)
    elsewhere = make_user(3120000, 65536, home=False, home_dir="/var/lib/%s")
    escaping = make_user(3130000, 65536, home=False, home_dir="/home/../etc/%s")
    rangeless = make_user(3140000, 65536, home=False)
    entries = [{"name": name, "start": start, "count": 65536}
               for name, start in ((proven, 3110000), (elsewhere, 3120000), (escaping, 3130000))]
    res = check(run_module, proof_dir, [proven, elsewhere, escaping, rangeless], entries, create_homes=True)
    assert res["failed"] and res["changed"] is True
    assert (Path("/home") / proven).is_dir()  # the one home this run may create
    assert not Path("/var/lib/%s" % elsewhere).exists() and not Path("/etc/%s" % escaping).exists()
    assert not (Path("/home") / rangeless).exists()
    by_name = {u["name"]: u for u in res["users"]}
    assert by_name[proven]["proof"] == "now" and by_name[proven]["home_created"] is True
    outside = "it is not created, because it is not under the home roots (/home)"
    for name, home, reason in ((elsewhere, "/var/lib/%s" % elsewhere, outside),
                               (escaping, "/home/../etc/%s" % escaping, outside),
                               (rangeless, "/home/%s" % rangeless, "%s has no ranges to prove" % rangeless)):
        assert by_name[name]["proof"] == "failed"
        assert "%s's home %s does not exist: %s" % (name, home, reason) in res["msg"], res["msg"]


def test_lines_that_differ_from_the_ledger_fail_naming_the_user_and_the_file(run_module, proof_dir, make_user):
    user = make_user(3200000, 65536)
    res = check(run_module, proof_dir, [user], [{"name": user, "start": 3300000, "count": 65536}])
    assert res["failed"]
    assert "rootless Podman does not work for %s" % user in res["msg"]
    assert ("/etc/subuid as shadow reads it gives %s 3200000+65536, the ledger says 3300000+65536" % user
            in res["msg"]), res["msg"]
    assert res["users"][0]["ran"] is None  # nothing ran on a host whose files are wrong


def test_a_stale_user_namespace_fails_with_the_migrate_fix(run_module, proof_dir, make_user):
    """The files are right, but the user's pause process still holds the old map."""
    user = make_user(3250000, 65536)
    assert as_user(user, "podman", "unshare", "true").returncode == 0  # starts the pause process
    for path in ("/etc/subuid", "/etc/subgid"):
        Path(path).write_text(Path(path).read_text().replace("%s:3250000:" % user, "%s:3260000:" % user))
    res = check(run_module, proof_dir, [user], [{"name": user, "start": 3260000, "count": 65536}])
    assert res["failed"]
    assert ("subuid ranges in use are 3250000+65536 but the ledger says 3260000+65536; if /etc/subuid is "
            "right, run `podman system migrate` as the user") in res["msg"], res["msg"]
    assert as_user(user, "podman", "system", "migrate").returncode == 0
    fixed = check(run_module, proof_dir, [user], [{"name": user, "start": 3260000, "count": 65536}])
    assert not fixed.get("failed"), fixed


def test_seed_case_high_uid_image_needs_a_larger_range(run_module, proof_dir, make_user, images):
    small = make_user(3400000, 65536)
    large = make_user(3500000, 4194304)
    entries = [{"name": small, "start": 3400000, "count": 65536},
               {"name": large, "start": 3500000, "count": 4194304}]
    res = check(run_module, proof_dir, [small, large], entries,
                image="localhost/fleetid-highuid:latest", image_archive=str(images["fleetid-highuid"]))
    assert res["failed"]
    by_name = {r["name"]: r for r in res["users"]}
    assert by_name[large]["ok"] and by_name[large]["ran"] and by_name[large]["highest_id"] == 4194304
    assert not by_name[small]["ok"]
    assert ("not enough subordinate IDs: the image has files owned by IDs above the 65536 that %s can map; "
            "give %s a larger count in subid_owners" % (small, small)) in res["msg"]
    assert large not in res["msg"].split(":")[0]


ROLE_PLAY = """\
- name: Prove rootless Podman with the role
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: fleetid.subid.rootless_podman
      vars:
        rootless_podman_install: false
        rootless_podman_users: {users}
        rootless_podman_expected: {{subuid: {entries}, subgid: {entries}}}
        rootless_podman_test_image: localhost/fleetid-highuid:latest
        rootless_podman_test_image_archive: {archive}
        rootless_podman_remote_tmp: {remote_tmp}
        rootless_podman_run_options: {run_options}
        rootless_podman_proof_dir: {proof_dir}
"""


def test_seed_case_through_the_role(make_user, images, tmp_path, proof_dir):
    """The role names the user who needs more IDs, and passes the one who has them."""
    remote_tmp = "/var/tmp/fleetid-test-" + uuid.uuid4().hex[:8]  # users must reach the archive
    small = make_user(3600000, 65536)
    large = make_user(3700000, 4194304)
    entries = [{"name": small, "start": 3600000, "count": 65536},
               {"name": large, "start": 3700000, "count": 4194304}]
    playbook = tmp_path / "role.yml"
    playbook.write_text(ROLE_PLAY.format(
        users=json.dumps([small, large]), entries=json.dumps(entries), archive=images["fleetid-highuid"],
        remote_tmp=remote_tmp, run_options=json.dumps(RUN_OPTIONS), proof_dir=proof_dir))
    proc = run_playbook(playbook, env=PODMAN_ENV, check=False)
    assert proc.returncode != 0
    assert "rootless Podman does not work for %s: %s: podman load of" % (small, small) in proc.stdout
    assert "not enough subordinate IDs" in proc.stdout
    assert "rootless Podman does not work for %s," % small not in proc.stdout  # only the small one fails

    entries[0]["count"] = 4194304
    for path in ("/etc/subuid", "/etc/subgid"):
        text = Path(path).read_text().replace("%s:3600000:65536" % small, "%s:3600000:4194304" % small)
        Path(path).write_text(text)
    playbook.write_text(ROLE_PLAY.format(
        users=json.dumps([small, large]), entries=json.dumps(entries), archive=images["fleetid-highuid"],
        remote_tmp=remote_tmp, run_options=json.dumps(RUN_OPTIONS), proof_dir=proof_dir))
    subprocess.run(["runuser", "-u", small, "--", "podman", "system", "migrate"], cwd="/", check=True,
                   capture_output=True)
    proc = run_playbook(playbook, env=PODMAN_ENV, check=False)
    subprocess.run(["rm", "-rf", remote_tmp], check=True)
    assert proc.returncode == 0, proc.stdout
    # The small user's map changed: proven again; the large one's did not: the earlier proof stands.
    assert ("Proven now with a container that owned a file at the ID shown: %s (ID 4194304). Proven before with a "
            "container, nothing changed since: %s." % (small, large)) in proc.stdout, proc.stdout


def as_user(user, *argv):
    return subprocess.run(["runuser", "-u", user, "--", "env", "-u", "XDG_RUNTIME_DIR", *argv], cwd="/",
                          env=dict(os.environ, **PODMAN_ENV), capture_output=True, text=True, check=False)


def test_a_passed_proof_is_recorded_and_reported_as_earlier_until_something_changes(
        run_module, proof_dir, make_user, images):
    user = make_user(3800000, 65536)
    entries = [{"name": user, "start": 3800000, "count": 65536}]
    image = {"image": "localhost/fleetid-busybox:latest", "image_archive": str(images["fleetid-busybox"])}
    first = check(run_module, proof_dir, [user], entries, **image)
    report = first["users"][0]
    assert first["changed"] and (report["proof"], report["reason"], report["ran"]) == ("now", "no record", True)
    record = proof_dir / ("%s.json" % user)
    st = record.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode), stat.S_IMODE(proof_dir.stat().st_mode)) == (0, 0o644, 0o755)
    saved = json.loads(record.read_text())
    assert (saved["digest"], saved["result"], saved["proven_at"]) == (report["digest"], "ok", report["proven_at"])
    assert saved["podman_version"].startswith("podman version ")

    # The user's image is gone: a real proof would load it again. Nothing runs: proven before.
    assert as_user(user, "podman", "rmi", "localhost/fleetid-busybox:latest").returncode == 0
    for check_mode in (True, False):
        again = check(run_module, proof_dir, [user], entries, check_mode=check_mode, **image)
        assert again["changed"] is False and not again.get("failed"), again
        assert again["users"][0]["proof"] == "before" and again["users"][0]["proven_at"] == report["proven_at"]
        assert again["users"][0]["image_loaded"] is False and again["users"][0]["ran"] is None
    assert as_user(user, "podman", "image", "exists", "localhost/fleetid-busybox:latest").returncode == 1

    forced = check(run_module, proof_dir, [user], entries, force=True, **image)
    assert (forced["users"][0]["proof"], forced["users"][0]["reason"]) == ("now", "forced")
    assert forced["users"][0]["image_loaded"] is True and forced["changed"]

    # A record anyone could have written is not trusted.
    record.chmod(0o666)
    untrusted = check(run_module, proof_dir, [user], entries, **image)
    assert (untrusted["users"][0]["proof"], untrusted["users"][0]["reason"]) == ("now", "no record")
    assert stat.S_IMODE(record.stat().st_mode) == 0o644

    # The host's map changes: proven again, and a failed proof removes the record.
    for path in ("/etc/subuid", "/etc/subgid"):
        Path(path).write_text(Path(path).read_text().replace("%s:3800000:65536" % user, "%s:3900000:65536" % user))
    as_user(user, "podman", "system", "migrate")
    failed = check(run_module, proof_dir, [user], entries, **image)
    assert failed["failed"] and failed["users"][0]["proof"] == "failed"
    assert failed["users"][0]["reason"] == "the ranges changed"
    assert not record.exists()
    moved = [{"name": user, "start": 3900000, "count": 65536}]
    proven = check(run_module, proof_dir, [user], moved, **image)
    assert (proven["users"][0]["proof"], proven["users"][0]["reason"]) == ("now", "no record")


def test_a_records_folder_others_can_write_is_refused(run_module, proof_dir, make_user):
    user = make_user(4000000, 65536)
    proof_dir.mkdir(mode=0o777)
    proof_dir.chmod(0o777)
    res = check(run_module, proof_dir, [user], [{"name": user, "start": 4000000, "count": 65536}])
    assert res["failed"]
    assert ("%s must be a folder owned by root and writable by root only (it is a folder, owner UID 0, mode 0777)"
            % proof_dir) in res["msg"]


def test_migrate_runs_only_for_users_with_podman_state(run_module, make_user):
    used, fresh = make_user(4100000, 65536), make_user(4200000, 65536)
    assert as_user(used, "podman", "info").returncode == 0
    home = Path("/home") / fresh
    args = {"users": [used, fresh, "fxnosuchuser"]}
    for check_mode in (True, False):
        res = run_module("fleetid.subid.rootless_migrate", args, check_mode=check_mode, env=PODMAN_ENV)
        assert not res.get("failed"), res
        assert (res["migrated"], res["without_state"], res["without_account"]) == ([used], [fresh], ["fxnosuchuser"])
        assert res["changed"] is True
        assert "storage /home/%s/.local/share/containers/storage" % used in res["evidence"][used]
        assert not (home / ".local" / "share" / "containers").exists()  # Podman never ran as fresh
    none = run_module("fleetid.subid.rootless_migrate", {"users": [fresh]}, env=PODMAN_ENV)
    assert none["changed"] is False and none["migrated"] == []


# The same play with the role's own choice of users, and an image every user can run.
DEFAULT_USERS_PLAY = ROLE_PLAY.replace("        rootless_podman_users: {users}\n", "").replace(
    "localhost/fleetid-highuid:latest", "localhost/fleetid-busybox:latest")


def test_root_and_service_owners_are_never_proven_as_rootless_users(make_user, images, tmp_path, proof_dir):
    """root has a login shell, but its entry is for LXC, Incus and rootful Podman: a rootless
    proof as root fails. containers, dockremap and kubelet are service entries too."""
    user = make_user(3900000, 65536)
    entries = [{"name": user, "start": 3900000, "count": 65536}] + [
        {"name": name, "start": 4000000 + i * 65536, "count": 65536}
        for i, name in enumerate(["root", "containers", "dockremap", "kubelet"])]
    playbook = tmp_path / "role.yml"
    remote_tmp = "/var/tmp/fleetid-test-" + uuid.uuid4().hex[:8]
    playbook.write_text(DEFAULT_USERS_PLAY.format(
        entries=json.dumps(entries), archive=images["fleetid-busybox"], remote_tmp=remote_tmp,
        run_options=json.dumps(RUN_OPTIONS), proof_dir=proof_dir))
    proc = run_playbook(playbook, env=PODMAN_ENV, check=False)
    subprocess.run(["rm", "-rf", remote_tmp], check=True)
    assert proc.returncode == 0, proc.stdout
    assert "owned a file at the ID shown: %s (ID 65536)." % user in proc.stdout, proc.stdout


def test_without_an_image_a_container_built_from_the_hosts_tools_proves_the_top_id(run_module, proof_dir, make_user):
    user = make_user(4300000, 65536)
    entries = [{"name": user, "start": 4300000, "count": 65536}]
    res = check(run_module, proof_dir, [user], entries)
    assert not res.get("failed"), res
    report = res["users"][0]
    assert (report["proof"], report["proven_by"], report["ran"], report["check_id"]) == ("now", "container", True, 65536)
    assert report["image"].startswith("localhost/fleetid-subid-proof:") and report["image_loaded"] is True
    # The image is in the user's own storage, unpacked through the user's map.
    listed = as_user(user, "podman", "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert listed.stdout.split() == [report["image"]], listed
    # A file the proof's chown gives the top ID really lands on the host at start + 65535.
    probe = as_user(user, "podman", "run", "--rm", *RUN_OPTIONS, "-v", "/tmp:/host-tmp", report["image"], "sh", "-c",
                    "touch /host-tmp/%s && chown 65536:65536 /host-tmp/%s" % (user, user))
    try:
        assert probe.returncode == 0, probe.stderr
        st = os.stat("/tmp/%s" % user)
        assert (st.st_uid, st.st_gid) == (4300000 + 65535, 4300000 + 65535)
    finally:
        os.unlink("/tmp/%s" % user)
    again = check(run_module, proof_dir, [user], entries)
    assert (again["changed"], again["users"][0]["proof"], again["users"][0]["proven_by"]) == (False, "before", "container")

    maps = check(run_module, proof_dir, [user], entries, proof="maps")
    assert (maps["users"][0]["proof"], maps["users"][0]["proven_by"]) == ("now", "maps")
    assert maps["users"][0]["reason"] == "the image changed"
    assert (maps["users"][0]["ran"], maps["users"][0]["image"], maps["users"][0]["check_id"]) == (None, None, None)


def test_images_per_user_and_per_group_with_the_id_to_check(run_module, proof_dir, make_user, images):
    plain, member, outsider = make_user(4400000, 65536), make_user(4500000, 4194304), make_user(4600000, 65536)
    group = "fg" + uuid.uuid4().hex[:8]
    subprocess.run(["groupadd", group], check=True)
    try:
        subprocess.run(["usermod", "-aG", group, member], check=True)
        entries = [{"name": plain, "start": 4400000, "count": 65536},
                   {"name": member, "start": 4500000, "count": 4194304},
                   {"name": outsider, "start": 4600000, "count": 65536}]
        high = {"image": "localhost/fleetid-highuid:latest", "image_archive": str(images["fleetid-highuid"])}
        res = check(run_module, proof_dir, [plain, member, outsider], entries,
                    images=[dict(high, groups=[group], check_id=4000000),
                            dict(high, users=[outsider], check_id=70000)])
        by_name = {r["name"]: r for r in res["users"]}
        assert res["failed"]
        assert by_name[plain]["ok"] and by_name[plain]["image"].startswith("localhost/fleetid-subid-proof:")
        assert (by_name[member]["ok"], by_name[member]["image"], by_name[member]["check_id"]) == (
            True, "localhost/fleetid-highuid:latest", 4000000)
        assert "check_id 70000 is beyond %s's map, whose highest ID is 65536" % outsider in res["msg"], res["msg"]
        assert not by_name[outsider]["ok"] and by_name[outsider]["ran"] is None
    finally:
        subprocess.run(["groupdel", group], check=False)


def test_a_nul_byte_before_the_users_line_breaks_a_proof_recorded_before(run_module, proof_dir, make_user):
    user = make_user(4700000, 65536)
    entries = [{"name": user, "start": 4700000, "count": 65536}]
    assert check(run_module, proof_dir, [user], entries, proof="maps")["users"][0]["proof"] == "now"
    for path in ("/etc/subuid", "/etc/subgid"):
        text = Path(path).read_bytes().replace(b"%s:4700000" % user.encode(), b"fxnul:1:1\0\n%s:4700000" % user.encode())
        Path(path).write_bytes(text)
    for check_mode in (True, False):  # the user's own line is as subid writes it: check mode predicts the failure
        res = check(run_module, proof_dir, [user], entries, check_mode=check_mode, proof="maps")
        assert res["failed"] and res["users"][0]["reason"] == "the ranges changed", res
        assert "/etc/subuid as shadow reads it gives %s no subuid range, the ledger says 4700000+65536" % user \
            in res["msg"], res["msg"]
    assert not (proof_dir / ("%s.json" % user)).exists()


def test_a_user_who_broke_their_podman_configuration_is_proven_again(run_module, proof_dir, make_user):
    user = make_user(4800000, 65536)
    entries = [{"name": user, "start": 4800000, "count": 65536}]
    assert not check(run_module, proof_dir, [user], entries).get("failed")
    conf = Path("/home") / user / ".config" / "containers"
    conf.mkdir(parents=True)
    # Storage where the user cannot write (CONTAINERS_CONF, set for this machine, would hide a containers.conf).
    (conf / "storage.conf").write_text('[storage]\ndriver = "vfs"\ngraphroot = "/proc/fleetid-no-storage"\n')
    subprocess.run(["chown", "-R", "%s:" % user, str(conf.parent)], check=True)
    res = check(run_module, proof_dir, [user], entries)
    assert res["failed"] and res["users"][0]["reason"] == "the Podman configuration changed", res
    assert "/proc/fleetid-no-storage" in res["msg"], res["msg"]


def test_check_mode_predicts_a_new_host_whose_archive_and_ranges_are_not_there_yet(
        run_module, proof_dir, make_user, images):
    user = make_user(4900000, 65536)
    for path in ("/etc/subuid", "/etc/subgid"):  # a new host: the subids role has not written the line yet
        Path(path).write_text(Path(path).read_text().replace("%s:4900000:65536\n" % user, ""))
    entries = [{"name": user, "start": 4900000, "count": 65536}]
    missing = "/var/tmp/fleetid-not-copied-%s.tar" % user
    res = check(run_module, proof_dir, [user], entries, check_mode=True,
                image="localhost/fleetid-busybox:latest", image_archive=missing)
    assert not res.get("failed") and res["changed"] is True, res
    report = res["users"][0]
    assert (report["proof"], report["proven_by"]) == ("pending", "container")
    assert report["reason"] == "no record; the image archive is not copied yet"
    real = check(run_module, proof_dir, [user], entries, image="localhost/fleetid-busybox:latest",
                 image_archive=missing)
    assert real["failed"] and "image_archive %s does not exist on the host" % missing in real["msg"]
    built = check(run_module, proof_dir, [user], entries, check_mode=True)
    assert built["users"][0]["reason"] == (
        "no record; the host's lines do not give the ledger's ranges yet: a real run of fleetid.subid.subids "
        "writes them first")


def test_the_role_in_check_mode_on_a_new_host_names_who_a_real_run_proves_and_how(
        make_user, images, tmp_path, proof_dir):
    """No archive copied, no lines written yet: check mode says what the real run proves,
    and the real run proves exactly those users."""
    first, second = make_user(5100000, 65536), make_user(5200000, 65536)
    for path in ("/etc/subuid", "/etc/subgid"):
        Path(path).write_text(Path(path).read_text().replace("%s:5200000:65536\n" % second, ""))
    entries = [{"name": first, "start": 5100000, "count": 65536}, {"name": second, "start": 5200000, "count": 65536}]
    remote_tmp = "/var/tmp/fleetid-test-" + uuid.uuid4().hex[:8]
    playbook = tmp_path / "role.yml"
    playbook.write_text(ROLE_PLAY.format(
        users=json.dumps([first, second]), entries=json.dumps(entries), archive=images["fleetid-busybox"],
        remote_tmp=remote_tmp, run_options=json.dumps(RUN_OPTIONS), proof_dir=proof_dir).replace(
        "fleetid-highuid:latest", "fleetid-busybox:latest"))
    proc = run_playbook(playbook, "--check", env=PODMAN_ENV, check=False)
    text = " ".join(proc.stdout.split())
    assert proc.returncode == 0, proc.stdout
    assert not Path(remote_tmp).exists() and not proof_dir.exists()
    assert ("check mode: A real run would prove rootless Podman with a container for: %s, %s. It does this "
            "first: %s: the image archive is not copied yet; %s: the image archive is not copied yet."
            % (first, second, first, second)) in text, text
    for path in ("/etc/subuid", "/etc/subgid"):  # what the subids role would write first
        with open(path, "a") as handle:
            handle.write("%s:5200000:65536\n" % second)
    real = run_playbook(playbook, env=PODMAN_ENV, check=False)
    subprocess.run(["rm", "-rf", remote_tmp], check=True)
    assert real.returncode == 0, real.stdout
    assert "owned a file at the ID shown: %s (ID 65536), %s (ID 65536)." % (first, second) in " ".join(real.stdout.split())


# The role's play with an image for the members of a group instead of one for everyone.
IMAGES_PLAY = ROLE_PLAY.replace("""\
        rootless_podman_test_image: localhost/fleetid-highuid:latest
        rootless_podman_test_image_archive: {archive}
""", """\
        rootless_podman_test_images:
          - image: localhost/fleetid-highuid:latest
            archive: {archive}
            groups: [{group}]
            check_id: 4000000
""")


def test_the_role_copies_each_images_archive_and_proves_a_group_with_its_own_image(
        make_user, images, tmp_path, proof_dir):
    plain, member = make_user(5300000, 65536), make_user(5400000, 4194304)
    group = "fg" + uuid.uuid4().hex[:8]
    subprocess.run(["groupadd", group], check=True)
    remote_tmp = "/var/tmp/fleetid-test-" + uuid.uuid4().hex[:8]
    try:
        subprocess.run(["usermod", "-aG", group, member], check=True)
        entries = [{"name": plain, "start": 5300000, "count": 65536},
                   {"name": member, "start": 5400000, "count": 4194304}]
        playbook = tmp_path / "role.yml"
        playbook.write_text(IMAGES_PLAY.format(
            users=json.dumps([plain, member]), entries=json.dumps(entries), archive=images["fleetid-highuid"],
            group=group, remote_tmp=remote_tmp, run_options=json.dumps(RUN_OPTIONS), proof_dir=proof_dir))
        proc = run_playbook(playbook, env=PODMAN_ENV, check=False)
        text = " ".join(proc.stdout.split())
        assert proc.returncode == 0, proc.stdout
        assert (Path(remote_tmp) / "fleetid-highuid.tar").is_file()
        assert "owned a file at the ID shown: %s (ID 65536), %s (ID 4000000)." % (plain, member) in text, text
        records = {name: json.loads((proof_dir / ("%s.json" % name)).read_text()) for name in (plain, member)}
        assert records[member]["image"] == "localhost/fleetid-highuid:latest"
        assert records[plain]["image"].startswith("localhost/fleetid-subid-proof:")
    finally:
        subprocess.run(["groupdel", group], check=False)
        subprocess.run(["rm", "-rf", remote_tmp], check=True)
