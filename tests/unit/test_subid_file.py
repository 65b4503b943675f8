"""subuid/subgid text: lossless round trip, edits, refusals, findings, login.defs, caps."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import IdRange
from ansible_collections.fleetid.subid.plugins.module_utils.subid_file import (
    CAP_SETGID,
    CAP_SETUID,
    SubidError,
    SubidFile,
    check_edit,
    decode_file_caps,
    desired_entries,
    edit_text,
    findings,
    owners_to_remove,
    parse_login_defs,
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


lines = st.one_of(
    st.builds("{}:{}:{}".format, st.sampled_from(["alice", "bob", "2001", "x"]),
              st.integers(0, 5000000), st.integers(0, 70000)),
    st.sampled_from(["", "# comment", "  # indented", "garbage", "a:b:c", "a::1", "root:1:2:3", " "]),
    st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=20),
)
files = st.builds(
    lambda body, endings, final: "".join(line + end for line, end in zip(body, endings))[: None if final else -1]
    if body else "",
    st.lists(lines, max_size=15),
    st.lists(st.sampled_from(["\n", "\r\n"]), min_size=15, max_size=15),
    st.booleans(),
)


@given(files)
def test_any_file_round_trips_byte_for_byte(text):
    assert "".join(SubidFile("/f", text).lines) == text


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


def test_owner_lines_are_rewritten_in_place_and_numeric_uid_is_the_same_owner():
    text = "# head\r\nbob:300000:65536\r\n2001:100000:10\r\nzed:1:2\r\nalice:500000:65536\r\n"
    wanted = desired_entries([{"name": "alice", "start": 100000, "count": 65536},
                              {"name": "alice", "start": 4000000, "count": 65536}], 1000, "subuid")
    new = render_edit(text, wanted)
    assert new == ("# head\r\nbob:300000:65536\r\nalice:100000:65536\r\nalice:4000000:65536\r\n"
                   "zed:1:2\r\n")


def test_absent_removes_name_and_numeric_forms():
    text = "alice:1:2\nbob:3:4\n2001:5:6\n"
    assert render_edit(text, owners_to_remove([{"name": "alice"}], "subuid"), remove=True) == "bob:3:4\n"


@pytest.mark.parametrize(
    "item,message",
    [
        ({"name": "root:0:65536\nx", "start": 100000, "count": 1}, "is not allowed"),
        ({"name": "a:b", "start": 100000, "count": 1}, "is not allowed"),
        ({"name": "alice", "start": 0, "count": 65536}, "reaches below 1000: ID 0 is root"),
        ({"name": "alice", "start": 999, "count": 65536}, "reaches below 1000: IDs below the floor"),
        ({"name": "alice", "start": 4294967295, "count": 1}, "leaves the 32-bit ID space"),
        ({"name": "alice", "start": "x", "count": 1}, "must be an integer"),
        ({"name": "alice", "start": 100000, "count": 0}, "count must be at least 1"),
    ],
)
def test_bad_input_is_refused(item, message):
    with pytest.raises(SubidError, match=message):
        desired_entries([item], 1000, "subuid")


def refusal(text, items, host_ids=()):
    wanted = desired_entries(items, 1000, "subuid")
    with pytest.raises(SubidError) as err:
        check_edit(edit_text("/etc/subuid", text, wanted, aliases_of), list(host_ids), "UID")
    return str(err.value)


def test_overlap_with_another_owner_names_its_line():
    assert refusal("# x\nbob:150000:65536\n", [{"name": "alice", "start": 100000, "count": 65536}]) == (
        "/etc/subuid: refused, nothing was written: alice:100000:65536 overlaps /etc/subuid line 2 "
        "(bob:150000:65536)")


def test_overlapping_listed_ranges_are_refused():
    assert "bob:120000:10 overlaps alice:100000:65536" in refusal(
        "", [{"name": "alice", "start": 100000, "count": 65536}, {"name": "bob", "start": 120000, "count": 10}])
    assert "(the same owner twice)" in refusal(
        "", [{"name": "alice", "start": 100000, "count": 65536}, {"name": "alice", "start": 100010, "count": 10}])


def test_the_owners_own_old_lines_do_not_count_as_overlap():
    wanted = desired_entries([{"name": "alice", "start": 100000, "count": 65536}], 1000, "subuid")
    edit = edit_text("/f", "2001:100000:65536\nalice:120000:10\n", wanted, aliases_of)
    check_edit(edit, [], "UID")
    assert edit.new == "alice:100000:65536\n"


def test_overlap_between_two_unlisted_owners_is_not_this_edits_business():
    wanted = desired_entries([{"name": "alice", "start": 900000, "count": 65536}], 1000, "subuid")
    check_edit(edit_text("/f", "bob:150000:65536\nzed:160000:10\n", wanted, aliases_of), [], "UID")


def test_a_malformed_line_starting_with_the_owner_is_kept():
    wanted = desired_entries([{"name": "alice", "start": 100000, "count": 65536}], 1000, "subuid")
    assert render_edit("alice:oops\n", wanted) == "alice:oops\nalice:100000:65536\n"


def test_range_over_a_host_id_is_refused():
    assert "alice:100000:65536 contains UID 108472, which the host uses" in refusal(
        "", [{"name": "alice", "start": 100000, "count": 65536}], [0, 1000, 108472, 200000])


def test_findings_on_a_dangerous_file():
    text = "alice:100000:65536\nbob:150000:65536\nroot:0:65536\nsys:500:600\nalice2:1999:10\nghost:900000:10\nbad line\n"
    found = findings({"subuid": SubidFile("/etc/subuid", text), "subgid": None}, account_of,
                     [0, 2, 1000, 2001, 2002], [0], 1000)
    kinds = sorted((f["kind"], f["line"]) for f in found)
    assert ("overlap", 2) in kinds
    assert ("maps_root", 3) in kinds and ("owner_id_in_range", 3) in kinds
    assert ("below_floor", 4) in kinds and ("host_id_collision", 4) in kinds
    assert ("host_id_collision", 5) in kinds  # 1999..2008 holds alice's UID 2001
    assert ("unknown_owner", 6) in kinds
    assert ("malformed_line", 7) in kinds
    assert all(f["severity"] == "critical" for f in found if f["kind"] not in ("unknown_owner", "malformed_line"))


def test_login_defs_values():
    text = "# SUB_UID_MIN 5\nSUB_UID_MIN\t\t   100000\nSUB_UID_COUNT 0\nUID_MAX 60000\nSUB_GID_MAX x\n"
    assert parse_login_defs(text) == {"SUB_UID_MIN": 100000, "SUB_UID_COUNT": 0, "UID_MAX": 60000, "SUB_GID_MAX": "x"}


def test_file_capabilities_are_decoded():
    v2 = struct.pack("<IIIII", 0x02000001, (1 << CAP_SETUID), 0, 0, 0)
    v3 = struct.pack("<IIIIII", 0x03000000, (1 << CAP_SETGID), 0, 0, 0, 0)
    assert CAP_SETUID in decode_file_caps(v2) and CAP_SETGID not in decode_file_caps(v2)
    assert decode_file_caps(v3) == {CAP_SETGID}
    assert decode_file_caps(b"") == set()
