"""What marks a user's rootless Podman state (module_utils.rootless.podman_state), read
from folders built here, and the digest and file reading behind the proof records."""

import os

from ansible_collections.fleetid.subid.plugins.module_utils.rootless import (
    config_digest,
    namespaced_owners,
    user_namespaces,
    podman_state,
    proof_digest,
    storage_paths,
    shadow_ranges,
)


def layout(tmp_path):
    home, run, tmp = tmp_path / "home" / "alice", tmp_path / "run" / "user", tmp_path / "tmp"
    for folder in (home, run, tmp):
        folder.mkdir(parents=True)
    return str(home), str(run), str(tmp)


def state(tmp_path, home, run, tmp, confs=(), in_namespace=frozenset()):
    return podman_state("alice", os.getuid(), home, in_namespace, system_confs=confs)


def test_a_user_who_never_ran_podman_has_no_state(tmp_path):
    home, run, tmp = layout(tmp_path)
    os.makedirs(os.path.join(home, ".local", "share", "other"))
    os.makedirs(os.path.join(run, str(os.getuid())))  # logind's runtime dir alone is no Podman state
    assert state(tmp_path, home, run, tmp) == []


def test_default_storage_under_the_home_is_state(tmp_path):
    home, run, tmp = layout(tmp_path)
    os.makedirs(os.path.join(home, ".local", "share", "containers", "storage"))
    assert state(tmp_path, home, run, tmp) == ["storage %s/.local/share/containers/storage" % home]


def test_runtime_folders_alone_are_no_state(tmp_path):
    # They outlive the pause process and the account (and UIDs are reused).
    home, run, tmp = layout(tmp_path)
    os.makedirs(os.path.join(tmp, "podman-run-%d" % os.getuid(), "libpod"))
    os.makedirs(os.path.join(run, str(os.getuid()), "containers"))
    assert state(tmp_path, home, run, tmp) == []


def test_configured_storage_places_are_looked_at(tmp_path):
    home, run, tmp = layout(tmp_path)
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\nrootless_storage_path = "$HOME/podman/$USER-$UID"\n')
    os.makedirs(os.path.join(home, ".config", "containers"))
    with open(os.path.join(home, ".config", "containers", "storage.conf"), "w") as handle:
        handle.write("[storage]\n# graphroot = \"/nope\"\ngraphroot = \"~/big/storage\"\n")
    assert storage_paths("alice", 7, home, [str(tmp_path / "missing.conf"), str(conf)]) == [
        home + "/big/storage", home + "/podman/alice-7", home + "/.local/share/containers/storage"]
    os.makedirs(os.path.join(home, "podman", "alice-%d" % os.getuid()))
    assert state(tmp_path, home, run, tmp, confs=[str(conf)]) == [
        "storage %s/podman/alice-%d" % (home, os.getuid())]


def test_processes_in_a_user_namespace_are_state(tmp_path):
    home, run, tmp = layout(tmp_path)
    assert state(tmp_path, home, run, tmp, in_namespace={os.getuid()}) == [
        "processes in a user namespace (pause process or containers)"]


def test_namespaced_owners_reads_proc(tmp_path):
    proc = tmp_path / "proc"
    for pid, ns in (("1", "user:[1]"), ("20", "user:[1]"), ("30", "user:[2]"), ("self", "user:[2]")):
        (proc / pid / "ns").mkdir(parents=True)
        os.symlink(ns, proc / pid / "ns" / "user")
    assert namespaced_owners(str(proc)) == {os.getuid()}
    os.unlink(proc / "30" / "ns" / "user")
    os.symlink("user:[1]", proc / "30" / "ns" / "user")
    assert namespaced_owners(str(proc)) == set()
    assert namespaced_owners(str(tmp_path / "nothing")) == set()


def test_digest_depends_on_every_fact_and_not_on_their_order():
    facts = {"name": "alice", "uid": 2001, "subuid": [[100000, 65536]], "image": None}
    assert proof_digest(facts) == proof_digest(dict(reversed(list(facts.items()))))
    assert proof_digest(facts) != proof_digest(dict(facts, subuid=[[165536, 65536]]))
    assert proof_digest(facts) != proof_digest(dict(facts, uid=2002))


def test_shadow_ranges_by_name_and_uid(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\nbob:165536:65536\n2001:300000:65536\nalice:400000:65536\n")
    granted, raw = shadow_ranges(str(path), {"alice", "2001"})
    assert granted == {"alice": [(100000, 65536), (400000, 65536)], "2001": [(300000, 65536)]}
    assert raw == {"alice": ["alice:100000:65536", "alice:400000:65536"], "2001": ["2001:300000:65536"]}
    assert shadow_ranges(str(tmp_path / "missing"), {"alice"}) == ({}, {})


def test_a_nul_byte_on_the_line_before_takes_the_range_away_as_shadow_reads_it(tmp_path):
    path = tmp_path / "subuid"
    path.write_bytes(b"bob:165536:65536\0\nalice:100000:65536\n")
    granted, raw = shadow_ranges(str(path), {"alice"})
    assert granted == {}  # shadow joins alice's line to bob's
    assert raw == {"alice": ["alice:100000:65536"]}  # the line itself is unchanged


def test_config_digest_sees_the_users_podman_configuration_without_following_links(tmp_path):
    home, system = tmp_path / "home", tmp_path / "etc-containers"
    (home / ".config" / "containers").mkdir(parents=True)
    system.mkdir()
    empty = config_digest(str(home), [str(system)])
    conf = home / ".config" / "containers" / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\n')
    written = config_digest(str(home), [str(system)])
    assert written != empty
    conf.write_text('[storage]\ndriver = "vfs"\n')
    assert config_digest(str(home), [str(system)]) not in (empty, written)
    conf.unlink()
    os.symlink("/etc/shadow", conf)  # a link is its target's name, never read as root
    linked = config_digest(str(home), [str(system)])
    assert linked not in (empty, written)
    conf.unlink()
    (system / "containers.conf.d").mkdir()
    (system / "containers.conf.d" / "10-x.conf").write_text("[engine]\n")
    assert config_digest(str(home), [str(system)]) != empty


def test_user_namespaces_reads_each_namespaces_maps_once(tmp_path):
    proc = tmp_path / "proc"
    for pid, ns, uid_map in (("1", "user:[1]", "0 0 4294967295\n"), ("40", "user:[2]", "0 2001 1\n1 165536 65536\n"),
                             ("41", "user:[2]", "garbage: never read\n"), ("50", "user:[3]", "0 2002 1\n")):
        (proc / pid / "ns").mkdir(parents=True)
        os.symlink(ns, proc / pid / "ns" / "user")
        (proc / pid / "uid_map").write_text(uid_map)
        (proc / pid / "gid_map").write_text(uid_map)
        (proc / pid / "comm").write_text("catatonit\n")
    (proc / "60" / "ns").mkdir(parents=True)  # ended meanwhile: its maps are gone
    os.symlink("user:[4]", proc / "60" / "ns" / "user")
    found = user_namespaces(str(proc))
    assert [(n["ns"], n["pids"], n["comm"], n["uid_map"]) for n in found] == [
        ("user:[2]", [40, 41], "catatonit", [(0, 2001, 1), (1, 165536, 65536)]),
        ("user:[3]", [50], "catatonit", [(0, 2002, 1)])]


def test_where_pid_1_is_hidden_our_own_namespace_is_the_reference(tmp_path):
    proc = tmp_path / "proc"
    for pid, ns in (("1", None), ("self", "user:[1]"), ("20", "user:[1]"), ("30", "user:[2]")):
        (proc / pid / "ns").mkdir(parents=True)
        if ns:
            os.symlink(ns, proc / pid / "ns" / "user")
    assert namespaced_owners(str(proc)) == {os.getuid()}
