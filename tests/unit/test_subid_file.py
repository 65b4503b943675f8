"""subuid/subgid text: lossless round trip, shadow-compatible parsing, edits, refusals,
findings, login.defs, capability decoding."""

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import IdRange
from ansible_collections.fleetid.subid.plugins.module_utils._host_report import (
    CAP_SETGID,
    CAP_SETUID,
    decode_file_caps,
    findings,
    nsswitch_subid_source,
    parse_login_defs,
    sort_findings,
    system_findings,
    systemd_window_findings,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import (
    SubidError,
    check_edit,
    desired_entries,
    edit_text,
    line_changes,
    owners_to_remove,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import (
    Entry,
    SubidFile,
    c_strtoul,
    parse_line,
    split_lines,
)

ACCOUNTS = {"alice": (2001, 2001), "bob": (2002, 2002), "root": (0, 0)}


def aliases_of(owner):
    for name, (uid, gid) in ACCOUNTS.items():
        if owner in (name, str(uid)):
            return {name, str(uid)}
    return {owner}


def render_edit(text, wanted, remove=False):
    return edit_text("/f", text, wanted, aliases_of, remove=remove).new


def account_of(owner):
    if owner.isdigit():
        return next((acc for acc in ACCOUNTS.values() if acc[0] == int(owner)), None)
    return ACCOUNTS.get(owner)


def want(*triples):
    return desired_entries([{"name": n, "start": s, "count": c} for n, s, c in triples], 1000, "subuid")


lines = st.one_of(
    st.builds("{}:{}:{}".format, st.sampled_from(["alice", "bob", "2001", "x", " alice", "#alice"]),
              st.one_of(st.integers(0, 5000000), st.sampled_from(["0100000", "0x186a0", " 7", "+5", "-1", ""])),
              st.integers(0, 70000)),
    st.sampled_from(["", "# comment", "  # indented", "garbage", "a:b:c", "a::1", "root:1:2:3", " ",
                     "alice:100000:65536\r", "x\x0cbob:1:2", "y\x85z", "line\u2028sep",
                     # lines shadow reads in surprising ways: root, every ID, none, past 2^32, NIS
                     "alice:-0:65536", "bob:0:0", "2001:5:0", "alice:4294967290:100", "bob:-1:2", "+alice:1:2"]),
    st.text(max_size=20).map(lambda s: s.replace("\n", "").replace("\0", "")),
)


def build_file(body, endings, final):
    return "".join(line + end for line, end in zip(body, endings))[: None if final else -1] if body else ""


files = st.builds(build_file, st.lists(lines, max_size=15),
                  st.lists(st.sampled_from(["\n", "\r\n"]), min_size=15, max_size=15), st.booleans())
# Lines with NUL bytes, which shadow joins with the next line (see shadow_records).
nul_files = st.builds(build_file, st.lists(st.one_of(lines, lines.map(lambda s: s + "\0"), st.sampled_from(
    ["\0", "alice:1\0x", "alice:100\0", "000:65536", "bob:200000:65536\0", "#\0", "zed:1:2\0junk"])), max_size=12),
    st.lists(st.sampled_from(["\n", "\r\n"]), min_size=12, max_size=12), st.booleans())


def lines_not_of(text, owners):
    """The lines of ``text`` that no owner in ``owners`` holds a range on, without endings."""
    out = []
    for number, raw in enumerate(split_lines(text), 1):
        entry = parse_line(raw.rstrip("\n"), number)
        if entry is None or not aliases_of(entry.owner) & owners:
            out.append(raw.rstrip("\n"))
    return out


# --- parsing -------------------------------------------------------------------------------

@given(files)
def test_any_file_round_trips_byte_for_byte(text):
    parsed = SubidFile("/f", text)
    assert "".join(parsed.lines) == text
    # Only \n ends a line, as for shadow's fgets (never \r, \x0c, \x85 or \u2028).
    assert len(parsed.lines) == text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    # Every line is an entry, malformed, or a comment/blank line, exactly once.
    numbers = [e.line for e in parsed.entries] + [n for n, body in parsed.malformed]
    assert len(numbers) == len(set(numbers))


def test_lines_split_only_on_newline():
    assert split_lines("a\x0cb:1:2\nc\x85d\r\ne") == ["a\x0cb:1:2\n", "c\x85d\r\n", "e"]
    assert split_lines("") == [] and split_lines("\n") == ["\n"]
    parsed = SubidFile("/f", "# note\x0cmallory:100000:65536\n")
    assert parsed.entries == [] and parsed.malformed == []  # one comment line, as shadow sees it


@pytest.mark.parametrize("text,value", [
    ("100000", 100000), ("0", 0), ("0100000", 0o100000), ("0x186a0", 100000), ("0X186A0", 100000),
    (" \t42", 42), ("+7", 7), ("", None), ("08", None), ("0x", None), ("1e5", None),
    ("1_000", None), ("42 ", None), ("+ 7", None), ("٣", None),
    # unsigned long is 64 bits: a sign wraps modulo 2**64, 2**64 and more is ERANGE.
    ("-1", 2 ** 64 - 1), ("-0", 0), ("- 1", None), ("-0x10", 2 ** 64 - 16), ("18446744073709551615", 2 ** 64 - 1),
    ("18446744073709551616", None), ("-18446744073709551615", 1), ("-18446744073709551616", None),
])
def test_numbers_are_read_like_strtoul_base_0(text, value):
    assert c_strtoul(text) == value


@pytest.mark.parametrize("raw,expected,note", [
    ("alice:100000:65536\n", ("alice", 100000, 65536), None),
    ("alice:100000:65536", ("alice", 100000, 65536), None),
    ("2001:100000:65536\n", ("2001", 100000, 65536), None),
    ("bob:0100000:65536\n", ("bob", 32768, 65536), "shadow reads it as 'bob':32768:65536"),
    ("bob:0x186a0:65536\n", ("bob", 100000, 65536), "shadow reads it as 'bob':100000:65536"),
    ("bob: 100000:65536\n", ("bob", 100000, 65536), "not plain decimal"),
    ("bob:100000:65536:x\n", ("bob", 100000, 65536), "has 4 fields"),
    ("bob:100000:65536\r\n", ("bob", 100000, 65536), "ends in CR"),
    (" bob:100000:65536\n", (" bob", 100000, 65536), "not plain decimal"),
    ("bob:100000:0\n", ("bob", 100000, 0), "grants no ID"),  # still bob's line to shadow
    ("bob:4294967290:6\n", ("bob", 4294967290, 6), None),  # reaches past the 32-bit space, still bob's
    ("bob:4294967290:5\n", ("bob", 4294967290, 5), None),
    ("bob:100000:65536 \n", None, None),  # strtoul stops at the blank
    ("#bob:100000:65536\n", None, None),
    ("bob::65536\n", None, None),
    ("bob:100000\n", None, None),
    ("x" * 1010 + ":100000:65536\n", ("x" * 1010, 100000, 65536), None),  # 1023 characters: still read
    ("x" * 1011 + ":100000:65536\n", None, None),  # 1024: over shadow's limit
])
def test_entries_are_read_as_shadow_reads_them(raw, expected, note):
    entry = parse_line(raw[:-1] if raw.endswith("\n") else raw, 3)
    if expected is None:
        assert entry is None
        return
    assert (entry.owner, entry.start, entry.count, entry.line) == expected + (3,)
    if note is None:
        assert entry.note is None
    else:
        assert note in entry.note


# --- edits ---------------------------------------------------------------------------------

@given(files, st.sampled_from(["carol", "dave"]))
def test_editing_an_absent_owner_keeps_every_other_line(text, owner):
    wanted = {owner: [IdRange(9000000, 65536)]}
    new = render_edit(text, wanted)
    assert new.startswith(text)
    assert new[len(text):].lstrip("\n") == "%s:9000000:65536\n" % owner
    # Editing again changes nothing; removing restores the original (modulo the final newline added).
    assert render_edit(new, wanted) == new
    removed = render_edit(new, owners_to_remove([{"name": owner}], "subuid"), remove=True)
    assert removed == (text if not text or text.endswith("\n") else text + "\n")


@given(files, st.lists(st.tuples(st.integers(1000, 10 ** 8), st.integers(1, 10 ** 6)), min_size=1, max_size=3))
def test_editing_a_present_owner_touches_only_its_lines(text, ranges):
    wanted = {"alice": [IdRange(s, c) for s, c in ranges]}
    edit = edit_text("/f", text, wanted, aliases_of)
    # Every line that is not alice's (name or UID 2001) survives, in order, byte for byte.
    assert lines_not_of(edit.new, {"alice"}) == lines_not_of(text, {"alice"})
    # alice has exactly the wanted ranges, in order, written canonically.
    mine = [(e.owner, e.start, e.count, e.note) for e in SubidFile("/f", edit.new).entries
            if aliases_of(e.owner) & {"alice"}]
    assert mine == [("alice", s, c, None) for s, c in ranges]
    assert [(n, r) for n, r, line in edit.listed] == [("alice", IdRange(s, c)) for s, c in ranges]
    new_lines = split_lines(edit.new)
    assert all(new_lines[line - 1].rstrip("\n") == "alice:%d:%d" % (r.start, r.count) for n, r, line in edit.listed)
    # A second edit is a no-op; removal leaves no line of alice's.
    assert edit_text("/f", edit.new, wanted, aliases_of).new == edit.new
    gone = render_edit(edit.new, {"alice": []}, remove=True)
    assert not [e for e in SubidFile("/f", gone).entries if aliases_of(e.owner) & {"alice"}]


def test_owner_lines_are_rewritten_in_place_and_numeric_uid_is_the_same_owner():
    text = "# head\r\nbob:300000:65536\r\n2001:100000:10\r\nzed:1:2\r\nalice:500000:65536\r\n"
    new = render_edit(text, want(("alice", 100000, 65536), ("alice", 4000000, 65536)))
    # Other lines keep their CRLF; alice's lines are written where 2001's was, in LF,
    # because shadow does not read a line ending in CR.
    assert new == ("# head\r\nbob:300000:65536\r\nalice:100000:65536\nalice:4000000:65536\n"
                   "zed:1:2\r\n")


def test_a_name_without_an_account_matches_only_itself():
    text = "3000:100000:10\nghost:200000:10\n"
    assert render_edit(text, want(("ghost", 300000, 10))) == "3000:100000:10\nghost:300000:10\n"


def test_a_missing_final_newline_is_always_added():
    # shadow 4.19 and later read no line of a file whose last line has no newline.
    assert render_edit("bob:1:2\nalice:5:6", want(("alice", 100000, 10))) == "bob:1:2\nalice:100000:10\n"
    assert render_edit("bob:1:2", want(("alice", 100000, 10))) == "bob:1:2\nalice:100000:10\n"
    assert render_edit("alice:5:6", want(("alice", 100000, 10), ("alice", 200000, 10))) == (
        "alice:100000:10\nalice:200000:10\n")
    assert render_edit("alice:100000:10\nbob:1:2", want(("alice", 100000, 10))) == "alice:100000:10\nbob:1:2\n"
    assert render_edit("", want(("alice", 100000, 10))) == "alice:100000:10\n"
    assert render_edit("bob:1:2\nalice:5:6", owners_to_remove([{"name": "alice"}], "subuid"), remove=True) == (
        "bob:1:2\n")


def test_absent_removes_name_and_numeric_forms():
    text = "alice:1:2\nbob:3:4\n2001:5:6\nalice:oops\n"
    assert render_edit(text, owners_to_remove([{"name": "alice"}], "subuid"), remove=True) == (
        "bob:3:4\nalice:oops\n")


def test_a_malformed_line_starting_with_the_owner_is_kept():
    assert render_edit("alice:oops\n", want(("alice", 100000, 65536))) == "alice:oops\nalice:100000:65536\n"


def test_an_unusual_line_of_the_owner_is_replaced_by_a_plain_one():
    assert render_edit("alice:0x186a0:65536\r\nbob:1:2\n", want(("alice", 100000, 65536))) == (
        "alice:100000:65536\nbob:1:2\n")


# --- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "item,message",
    [
        ({"name": "root:0:65536\nx", "start": 100000, "count": 1}, "is not allowed"),
        ({"name": "a:b", "start": 100000, "count": 1}, "is not allowed"),
        ({"name": "alice\n", "start": 100000, "count": 1}, "is not allowed"),
        ({"name": None, "start": 100000, "count": 1}, "is not allowed"),
        ({"name": "alice", "start": 0, "count": 65536}, "subuid[0]: alice:0:65536 reaches below 1000: ID 0 is root"),
        ({"name": "alice", "start": 999, "count": 65536}, "reaches below 1000: IDs below the floor"),
        ({"name": "alice", "start": 4294967295, "count": 1}, "leaves the 32-bit ID space"),
        ({"name": "alice", "start": 4294967294, "count": 2}, "leaves the 32-bit ID space"),
        ({"name": "alice", "start": "x", "count": 1}, "must be an integer"),
        ({"name": "alice", "start": 100000, "count": True}, "must be an integer"),
        ({"name": "alice", "start": 1.5, "count": 1}, "must be an integer"),
        ({"name": "alice", "start": 100000, "count": 0}, "count must be at least 1"),
        ({"name": "alice", "start": -5, "count": 10}, "leaves the 32-bit ID space"),
    ],
)
def test_bad_input_is_refused(item, message):
    with pytest.raises(SubidError) as err:
        desired_entries([item], 1000, "subuid", "/etc/subuid")
    assert str(err.value).startswith("/etc/subuid: refused, nothing was written: ")
    assert message in str(err.value)


def test_absent_refuses_unsafe_names_too():
    with pytest.raises(SubidError, match="is not allowed"):
        owners_to_remove([{"name": "x:y"}], "subgid", "/etc/subgid")


def refusal(text, items, host_ids=(), **kwargs):
    wanted = desired_entries(items, 1000, "subuid")
    with pytest.raises(SubidError) as err:
        check_edit(edit_text("/etc/subuid", text, wanted, aliases_of), list(host_ids), "UID", **kwargs)
    return str(err.value)


def test_overlap_with_another_owner_names_its_line():
    assert refusal("# x\nbob:150000:65536\n", [{"name": "alice", "start": 100000, "count": 65536}]) == (
        "/etc/subuid: refused, nothing was written: alice:100000:65536 (new line 3) overlaps /etc/subuid "
        "line 2 (bob:150000:65536)")


def test_overlaps_are_checked_against_what_shadow_would_read():
    # Octal 0400000 is 131072: shadow gives bob 131072-196607, which alice's range hits.
    assert "overlaps /etc/subuid line 1 (bob:131072:65536), which is not plain decimal" in refusal(
        "bob:0400000:65536\n", [{"name": "alice", "start": 100000, "count": 65536}])
    # A CRLF line is ignored by shadow today, but its range is still someone's: not handed out.
    assert "line 1 (bob:150000:65536), which ends in CR" in refusal(
        "bob:150000:65536\r\n", [{"name": "alice", "start": 100000, "count": 65536}])
    # Adjacent ranges do not overlap.
    wanted = want(("alice", 100000, 65536))
    check_edit(edit_text("/f", "bob:165536:10\nzed:99990:10\n", wanted, aliases_of), [], "UID")


def test_overlapping_listed_ranges_are_refused():
    assert "bob:120000:10 (new line 2) overlaps alice:100000:65536 (new line 1)" in refusal(
        "", [{"name": "alice", "start": 100000, "count": 65536}, {"name": "bob", "start": 120000, "count": 10}])
    assert "(the same owner twice)" in refusal(
        "", [{"name": "alice", "start": 100000, "count": 65536}, {"name": "alice", "start": 100010, "count": 10}])


def test_the_owners_own_old_lines_do_not_count_as_overlap():
    edit = edit_text("/f", "2001:100000:65536\nalice:120000:10\n", want(("alice", 100000, 65536)), aliases_of)
    check_edit(edit, [], "UID")
    assert edit.new == "alice:100000:65536\n"


def test_overlap_between_two_unlisted_owners_is_not_this_edits_business():
    check_edit(edit_text("/f", "bob:150000:65536\nzed:160000:10\n", want(("alice", 900000, 65536)), aliases_of),
               [], "UID")


def test_range_over_a_host_id_is_refused():
    assert "alice:100000:65536 (new line 1) contains UID 108472 (msteph), which the host uses" in refusal(
        "", [{"name": "alice", "start": 100000, "count": 65536}], [0, 1000, 108472, 200000],
        id_names={108472: "msteph"})
    # The IDs just outside the range are fine.
    check_edit(edit_text("/f", "", want(("alice", 100000, 65536)), aliases_of), [99999, 165536], "UID")


def test_range_over_the_owners_own_id_says_so():
    assert "alice:1500:1000 (new line 1) contains alice's own UID 2001" in refusal(
        "", [{"name": "alice", "start": 1500, "count": 1000}], [2001], own_ids={"alice": 2001})


def test_a_big_file_is_checked_without_quadratic_work():
    text = "".join("u%d:%d:10\n" % (i, 1000000 + i * 10) for i in range(20000))
    edit = edit_text("/f", text, want(("alice", 1000000 + 20000 * 10, 10)), aliases_of)
    check_edit(edit, list(range(0, 100000, 3)), "UID")
    assert edit.new == text + "alice:1200000:10\n"
    assert "line 20000 (u19999:1199990:10)" in refusal(text, [{"name": "alice", "start": 1199995, "count": 10}])


# --- findings ------------------------------------------------------------------------------

def test_findings_on_a_dangerous_file():
    text = ("alice:100000:65536\nbob:150000:65536\nroot:0:65536\nsys:500:600\nalice2:1999:10\n"
            "ghost:900000:10\nbad line\n2001:950000:10\nalice:955000:10\ncrlf:1000000:10\r\n")
    found = findings({"subuid": SubidFile("/etc/subuid", text), "subgid": None}, account_of,
                     [0, 2, 1000, 2001, 2002], [0], 1000)
    kinds = sorted((f["kind"], f["line"]) for f in found)
    assert ("overlap", 2) in kinds
    assert ("maps_root", 3) in kinds and ("owner_id_in_range", 3) in kinds
    assert ("below_floor", 4) in kinds and ("host_id_collision", 4) in kinds
    assert ("host_id_collision", 5) in kinds  # 1999..2008 holds alice's UID 2001
    assert ("unknown_owner", 6) in kinds
    assert ("malformed_line", 7) in kinds
    assert ("malformed_line", 10) in kinds  # CRLF: shadow ignores it
    # 2001 is alice: her two lines may touch without an overlap finding.
    assert not [k for k in kinds if k[0] == "overlap" and k[1] in (8, 9)]
    assert ("consumer_compat", 8) in kinds  # a numeric owner
    assert all(f["severity"] == "critical" for f in found
               if f["kind"] not in ("unknown_owner", "malformed_line", "consumer_compat"))
    overlap = next(f for f in found if f["kind"] == "overlap" and f["line"] == 2)
    assert overlap["message"].startswith("/etc/subuid line 2 (bob:150000:65536) overlaps /etc/subuid line 1 "
                                         "(alice:100000:65536)")


def test_the_containers_entry_needs_no_account():
    text = "containers:2147483648:16777216\nghost:1000000:65536\n"
    found = findings({"subuid": SubidFile("/etc/subuid", text), "subgid": None}, lambda owner: None, [0], [0], 1000)
    assert [(f["kind"], f["line"]) for f in found] == [("unknown_owner", 2)]


def test_findings_in_subgid_use_gids():
    found = findings({"subuid": None, "subgid": SubidFile("/etc/subgid", "alice:2000:10\nbob:5000:10\n")},
                     account_of, [5005], [2001], 1000)
    assert [(f["kind"], f["line"]) for f in found] == [("owner_id_in_range", 1)]
    assert "own GID 2001" in found[0]["message"]


def test_system_findings():
    ok = {"name": "newuidmap", "path": "/usr/bin/newuidmap", "exists": True, "setuid": True,
          "capability": "cap_setuid", "capability_ok": False}
    caps = dict(ok, name="newgidmap", path="/usr/bin/newgidmap", setuid=False, capability_ok=True)
    assert system_findings([ok, caps], {"user.max_user_namespaces": 100}, "files") == []
    missing = dict(ok, exists=False, path=None)
    weak = dict(caps, capability_ok=False)
    found = system_findings([missing, weak], {"user.max_user_namespaces": 0, "kernel.unprivileged_userns_clone": 0,
                                              "kernel.apparmor_restrict_unprivileged_userns": 1}, "sss")
    assert [(f["severity"], f["kind"]) for f in found] == [
        ("critical", "helper_missing"), ("critical", "helper_not_privileged"), ("critical", "userns_disabled"),
        ("warning", "userns_disabled"), ("warning", "nsswitch_subid")]
    assert "kernel.unprivileged_userns_clone=0, user.max_user_namespaces=0" in found[2]["message"]
    # Critical first, then by file (none before a path) and line; stable otherwise.
    assert [(f["severity"], f["kind"]) for f in sort_findings(found[::-1])] == [
        ("critical", "userns_disabled"), ("critical", "helper_missing"), ("critical", "helper_not_privileged"),
        ("warning", "userns_disabled"), ("warning", "nsswitch_subid")]


def test_systemd_window_findings_only_where_systemd_allocates_ids():
    text = ("low:100000:424288\n"            # ends at 524287, just below the container range
            "edge:524287:2\n"                # its last ID is the range's first
            "top:1879048191:1\n"             # the range's last ID
            "above:1879048192:65536\n"       # just above
            "foreign:2147418111:10\n")       # the foreign range's last ID
    files = {"subuid": SubidFile("/etc/subuid", text), "subgid": None}
    assert systemd_window_findings(files, []) == []
    found = systemd_window_findings(files, ["/usr/lib/systemd/systemd-nsresourced", "/usr/bin/systemd-nspawn"])
    assert [(f["kind"], f["severity"], f["line"]) for f in found] == [
        ("systemd_window", "warning", 2), ("systemd_window", "warning", 3), ("systemd_window", "warning", 5)]
    assert "systemd-nspawn and systemd-nsresourced on this host" in found[0]["message"]
    assert "systemd's foreign UID range 2147352576-2147418111" in found[2]["message"]


def test_nsswitch_subid_source():
    assert nsswitch_subid_source("passwd: files\n# subid: ldap\nsubid:   sss  # comment\n") == "sss"
    assert nsswitch_subid_source("passwd: files\n") is None
    assert nsswitch_subid_source(None) is None


# --- login.defs and capabilities -----------------------------------------------------------

def test_login_defs_values():
    text = ("# SUB_UID_MIN 5\nSUB_UID_MIN\t\t   100000\nSUB_UID_COUNT 0\nUID_MAX 60000\nSUB_GID_MAX x\n"
            "SUB_GID_MIN 0x186a0\nSUB_UID_COUNT 65536\nUID_MIN\n")
    assert parse_login_defs(text) == {"SUB_UID_MIN": 100000, "SUB_UID_COUNT": 65536, "UID_MAX": 60000,
                                      "SUB_GID_MAX": "x", "SUB_GID_MIN": 100000}


def test_file_capabilities_are_decoded():
    v1 = struct.pack("<III", 0x01000001, 1 << CAP_SETUID, 0)
    v2 = struct.pack("<IIIII", 0x02000001, (1 << CAP_SETUID), 0, 1, 0)
    v3 = struct.pack("<IIIIII", 0x03000000, (1 << CAP_SETGID), 0, 0, 0, 100000)
    assert decode_file_caps(v1)["permitted"] == {CAP_SETUID}
    assert decode_file_caps(v2)["permitted"] == {CAP_SETUID, 32}  # bit 0 of the high word is capability 32
    assert decode_file_caps(v3)["permitted"] == {CAP_SETGID}
    full = decode_file_caps(v3)
    assert full["revision"] == 3 and full["effective"] is False and full["rootid"] == 100000
    assert decode_file_caps(v2)["effective"] is True
    assert decode_file_caps(b"") is None
    assert decode_file_caps(b"\x00" * 20) is None  # unknown revision
    assert decode_file_caps(v2[:12]) is None  # revision 2 needs 20 bytes


@pytest.fixture
def root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (it is marked needs_root; deselect with -m 'not needs_root')")


@pytest.mark.needs_root
def test_real_getcap_output_decodes_like_getcap(tmp_path, root):
    """setcap writes the xattr; our decoding agrees with what setcap was told."""
    setcap = shutil.which("setcap") or "/usr/sbin/setcap"  # libcap2-bin, installed by scripts/setup
    target = tmp_path / "helper"
    target.write_bytes(b"#!/bin/sh\n")
    subprocess.run([setcap, "cap_setuid,cap_setgid+ep", str(target)], check=True)
    caps = decode_file_caps(os.getxattr(str(target), "security.capability"))
    assert caps["permitted"] == {CAP_SETUID, CAP_SETGID} and caps["effective"] is True


def test_entry_str():
    assert str(Entry("alice", 1, 2, 3)) == "alice:1:2"


def test_a_listed_owners_line_beyond_the_id_space_is_still_hers_and_replaced():
    """shadow reads alice:4294967290:100 as alice's range up to ID 4294967389 (64-bit
    arithmetic): newuidmap lets her map 4294967290-4294967294. It is her line."""
    text = "alice:4294967290:100\nalice:5:6\n"
    assert render_edit(text, want(("alice", 100000, 10))) == "alice:100000:10\n"


def test_line_changes_reports_only_real_changes():
    edit = edit_text("/f", "alice:100000:10\nbob:1:2\n2001:300000:5\n",
                     want(("alice", 100000, 10), ("alice", 200000, 10)), aliases_of)
    assert line_changes(edit) == (["alice:200000:10"], ["2001:300000:5"])
    assert line_changes(edit_text("/f", edit.new, want(("alice", 100000, 10), ("alice", 200000, 10)),
                                  aliases_of)) == ([], [])


def test_an_over_long_line_is_no_range_with_or_without_its_newline():
    """shadow ignores lines of 1024 characters or more, also the last one without a newline:
    such a line takes no IDs, so a new range over it is no overlap."""
    other = "x" * 1011  # with ":100000:65536" the line is 1024 characters long
    for ending in ("\n", ""):
        edit = edit_text("/f", "%s:100000:65536%s" % (other, ending), want(("alice", 100000, 65536)), aliases_of)
        assert edit.others == []
        check_edit(edit, [], "UID")
        assert edit.new.endswith("\nalice:100000:65536\n")
