"""Owner groups and directory users: member resolution from getent output, the merge with
subid_owners, the host's ID sources, the pool refusal over resolved IDs, and the audit's
directory findings."""

import pytest

from ansible_collections.fleetid.subid.plugins.plugin_utils.host_rules import refuse_pool_over_ids as _refuse_pool_over_ids
from ansible_collections.fleetid.subid.plugins.module_utils.directory import (
    DirectoryError,
    id_source_report,
    ids_in_ranges,
    merge_owners,
    normalize_groups,
    not_enumerated_finding,
    nss_sources,
    parse_groups,
    parse_passwd,
    resolved_ids,
    sssd_domains,
)
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import IdRange, RangeError
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.audit import audit

PASSWD = """root:x:0:0:root:/root:/bin/bash
alice:x:2001:2001::/home/alice:/bin/bash
ci:x:2100:70500:CI runner:/var/lib/ci:/usr/sbin/nologin
broken line
alice:x:9999:9999::/elsewhere:/bin/sh
"""

GROUPS = """developers:*:70500:dana,erik
empty:x:3000:
ops:*:70600:erik,alice
"""


def test_getent_output_is_parsed_first_entry_wins_and_bad_lines_are_skipped():
    accounts = parse_passwd(PASSWD)
    assert list(accounts) == ["root", "alice", "ci"]
    assert accounts["alice"] == {"uid": 2001, "gid": 2001, "home": "/home/alice", "shell": "/bin/bash"}
    groups = parse_groups(GROUPS)
    assert groups["developers"] == {"gid": 70500, "members": ["dana", "erik"]}
    assert groups["empty"] == {"gid": 3000, "members": []}


def test_members_become_owners_after_the_listed_owners_which_win():
    groups = normalize_groups(["developers", {"name": "ops", "count": 1048576, "scope": "host"}])
    owners = [{"name": "erik", "count": 4194304}]
    merged, added = merge_owners(owners, groups, parse_groups(GROUPS), parse_passwd(PASSWD))
    # erik is listed: his entry stays as given. ci's primary GID is developers'.
    assert merged == [{"name": "erik", "count": 4194304}, {"name": "dana"}, {"name": "ci"},
                      {"name": "alice", "count": 1048576, "scope": "host"}]
    assert dict(added) == {"dana": "developers", "ci": "developers", "alice": "ops"}


def test_a_member_of_two_groups_takes_the_first_group_listed():
    groups = normalize_groups([{"name": "ops", "count": 131072}, {"name": "developers", "count": 65536}])
    merged, added = merge_owners([], groups, parse_groups(GROUPS), {})
    assert {"name": "erik", "count": 131072} in merged and {"name": "erik", "count": 65536} not in merged
    assert added["erik"] == "ops" and added["dana"] == "developers"


def test_a_group_that_does_not_resolve_adds_nobody():
    merged, added = merge_owners(["bob"], normalize_groups(["nosuch"]), parse_groups(GROUPS), {})
    assert merged == ["bob"] and not added


@pytest.mark.parametrize("groups, message", [
    ("developers", "must be a list"),
    ([{"count": 5}], "mapping with 'name'"),
    ([{"name": "developers", "size": 5}], "unknown key(s): size"),
    (["developers", {"name": "developers"}], "listed twice"),
])
def test_bad_owner_groups_are_refused_by_name(groups, message):
    with pytest.raises(DirectoryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalize_groups(groups)


def test_resolved_ids_cover_uids_primary_gids_and_group_gids_once_each():
    person = {"home": "/home/x", "shell": "/bin/bash"}
    ids = resolved_ids({"dana": dict(person, uid=70001, gid=70500), "erik": dict(person, uid=70002, gid=70500),
                        "ci": dict(person, uid=70003, gid=70003)},
                       {"developers": {"gid": 70500, "members": ["dana"]}})
    assert ids == [{"kind": "uid", "id": 70001, "name": "dana"},
                   {"kind": "uid", "id": 70002, "name": "erik"},
                   {"kind": "uid", "id": 70003, "name": "ci"},
                   {"kind": "gid", "id": 70003, "name": "primary group of ci"},
                   {"kind": "gid", "id": 70500, "name": "group developers; primary group of dana, erik"}]


def test_ids_in_ranges_skip_reserved_ids_and_ids_below_the_floor():
    ids = [{"kind": "uid", "id": 500, "name": "sys"}, {"kind": "uid", "id": 70001, "name": "dana"},
           {"kind": "uid", "id": 150000, "name": "erik"}]
    ranges = [IdRange(0, 1000000)]
    hits = ids_in_ranges(ids, ranges, withheld=[(0, 1000), (100000, 200000)])
    assert [(entry["name"], rng.start) for entry, rng in hits] == [("dana", 0)]


def test_a_pool_over_a_resolved_uid_is_refused_naming_the_id_the_owner_and_the_fix():
    pool = parse_pool({"ranges": [{"start": 65536, "count": 1000000}]})
    ids = [{"kind": "uid", "id": 70001, "name": "dana"}]
    with pytest.raises(RangeError) as caught:
        _refuse_pool_over_ids(pool, ids, "h1")
    message = str(caught.value)
    assert "pool range 65536-1065535 contains UID 70001 of dana (resolved on h1)" in message
    assert "nothing was allocated or written" in message and "reserved" in message
    # Reserving the directory's range makes the same pool acceptable.
    fixed = parse_pool({"ranges": [{"start": 65536, "count": 1000000}],
                        "reserved": [{"start": 10000, "count": 1990000}]})
    _refuse_pool_over_ids(fixed, ids, "h1")


def test_nsswitch_sources_ignore_actions_and_comments_and_default_to_files():
    text = "# passwd: ldap\npasswd:  files [NOTFOUND=return] sss  # directory\ngroup: files\n"
    assert nss_sources(text, "passwd") == ["files", "sss"]
    assert nss_sources(text, "group") == ["files"]
    assert nss_sources("", "passwd") == ["files"]


def test_sssd_domains_enumerate_false_by_default():
    conf = "[sssd]\ndomains = a, b\n[domain/a]\nid_provider = ldap\n[domain/b]\nenumerate = True\n"
    assert sssd_domains(conf) == {"a": False, "b": True}
    assert sssd_domains(None) is None


@pytest.mark.parametrize("nsswitch, sssd, complete, reason", [
    ("passwd: files systemd\ngroup: files systemd\n", None, True, None),
    ("passwd: files sss\ngroup: files sss\n", "[domain/example]\nenumerate = false\n", False,
     "SSSD domain example has enumerate = false"),
    ("passwd: files sss\ngroup: files sss\n", "[domain/example]\nenumerate = true\n", True, None),
    ("passwd: files sss\n", None, False, "cannot be read"),
    ("passwd: files ldap\ngroup: files\n", None, False, "passwd: ldap, a source that may not list"),
])
def test_the_host_says_when_its_id_check_cannot_see_the_whole_directory(nsswitch, sssd, complete, reason):
    report = id_source_report(nsswitch, sssd)
    assert report["complete"] is complete
    finding = not_enumerated_finding(report)
    if complete:
        assert finding is None and report["reasons"] == []
    else:
        assert finding["severity"] == "info" and finding["kind"] == "directory_not_enumerated"
        assert reason in finding["message"] and "subid_pool.reserved" in finding["message"]


POOL = parse_pool({"ranges": [{"start": 100000, "count": 10000000}]})


def blocks():
    return plan([], POOL, parse_owners(["dana", "erik"], POOL), "h1", "2026-11-28").blocks  # 100000, 165536


def info(subuid, findings=()):
    rows = [{"owner": o, "start": s, "count": c, "line": i + 1} for i, (o, s, c) in enumerate(subuid)]
    return {"subuid": rows, "subgid": [dict(r) for r in rows], "findings": list(findings)}


def resolved(owners, added=None, groups=("developers",), ids=()):
    return {"owners": owners, "added": added or {}, "groups": [{"name": g} for g in groups],
            "host_state": {"resolved_ids": list(ids)}}


def test_audit_names_a_member_without_a_block_and_a_member_who_left():
    hosts = {"h1": {"info": info([("dana", 100000, 65536), ("erik", 165536, 65536)]), "owners": [],
                    "resolved": resolved([{"name": "dana"}, {"name": "frank"}],
                                         {"dana": "developers", "frank": "developers"})}}
    report = audit(blocks(), POOL, hosts)
    got = {(f["kind"], f["owner"], f["severity"]) for f in report["findings"]}
    assert got == {("member_without_block", "frank", "warning"), ("unrequested", "erik", "warning")}
    left = next(f for f in report["findings"] if f["kind"] == "unrequested")
    assert left["message"].startswith("/etc/subuid line 2: erik has 165536+65536 and an active block")
    assert "not a member of developers" in left["message"] and "offboard.yml" in left["message"]


def test_without_owner_groups_an_unlisted_owner_is_not_called_unrequested():
    hosts = {"h1": {"info": info([("dana", 100000, 65536), ("erik", 165536, 65536)]), "owners": [],
                    "resolved": resolved(["dana"], groups=())}}
    assert audit(blocks(), POOL, hosts)["findings"] == []


def test_audit_finds_resolved_ids_in_host_ranges_and_ledger_blocks_once_each():
    ids = [{"kind": "uid", "id": 170000, "name": "dana"}, {"kind": "gid", "id": 100005, "name": "group developers"}]
    collision = {"severity": "critical", "kind": "host_id_collision", "file": "/etc/subuid", "line": 2,
                 "message": "seen by subid_info already"}
    hosts = {"h1": {"info": info([("dana", 100000, 65536), ("erik", 165536, 65536)], [collision]),
                    "owners": [], "resolved": resolved(["dana", "erik"], ids=ids)}}
    report = audit(blocks(), POOL, hosts)
    mine = sorted((f["owner"], f["file"] or "", f["line"] or 0) for f in report["findings"]
                  if f["kind"] == "resolved_id_in_range")
    # subgid line 1 holds GID 100005; subuid line 2 was reported by subid_info; the ledger's
    # blocks hold both IDs.
    assert mine == [("dana", "", 0), ("dana", "/etc/subgid", 1), ("erik", "", 0)]
    assert report["summary"]["critical"] == 4  # three here and subid_info's own


def test_info_findings_are_counted_apart_and_do_not_fail():
    note = {"severity": "info", "kind": "directory_not_enumerated", "file": None, "line": None, "message": "m"}
    hosts = {"h1": {"info": info([("dana", 100000, 65536), ("erik", 165536, 65536)], [note]),
                    "owners": ["dana", "erik"]}}
    summary = audit(blocks(), POOL, hosts)["summary"]
    assert (summary["critical"], summary["warning"], summary["info"]) == (0, 0, 1)
