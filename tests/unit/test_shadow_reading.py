"""Lines read exactly as shadow 4.13 reads them (lib/subordinateio.c, lib/commonio.c):
signed and out-of-range numbers in 64-bit unsigned long, NUL bytes that join lines, and
the lines shadow accepts but other consumers choke on.

tests/integration/test_subid_shadow_real.py checks the same lines against the real
newuidmap."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.module_utils._host_report import (
    findings,
    login_defs_findings,
    parse_login_defs,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import (
    SubidError,
    check_edit,
    desired_entries,
    edit_text,
    owners_to_remove,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import SubidFile

ACCOUNTS = {"alice": (2001, 2001), "bob": (2002, 2002)}


def aliases_of(owner):
    for name, (uid, gid) in ACCOUNTS.items():
        if owner in (name, str(uid)):
            return {name, str(uid)}
    return {owner}


def account_of(owner):
    if owner.isdigit():
        return next((acc for acc in ACCOUNTS.values() if acc[0] == int(owner)), None)
    return ACCOUNTS.get(owner)


def want(name, start, count):
    return desired_entries([{"name": name, "start": start, "count": count}], 1000, "subuid")


def apply(text, name, start, count):
    """What the module writes for owner ``name``, after its checks."""
    edit = edit_text("/etc/subuid", text, want(name, start, count), aliases_of)
    check_edit(edit, [], "UID")
    return edit.new


def remove(text, name):
    return edit_text("/etc/subuid", text, owners_to_remove([{"name": name}], "subuid"), aliases_of, remove=True).new


def granted(text, owner):
    """The IDs shadow lets ``owner`` map, by the module's reading of ``text``."""
    return [(e.range.start, e.range.last) for e in SubidFile("/etc/subuid", text).entries
            if aliases_of(e.owner) & {owner} and e.range is not None]


def kinds(text, floor=1000):
    found = findings({"subuid": SubidFile("/etc/subuid", text), "subgid": None}, account_of, [], [], floor)
    return sorted((f["kind"], f["severity"], f["line"]) for f in found)


# --- numbers: strtoul(base 0) into a 64-bit unsigned long, then start+count-1 ----------------

@pytest.mark.parametrize("line,ids", [
    ("alice:-0:65536", [(0, 65535)]),                       # -0 is 0: a range over root
    ("alice:0:0", [(0, 4294967294)]),                       # 0+0-1 wraps to ULONG_MAX: every ID
    ("alice:5:0", []),                                      # 5+0-1 = 4 < 5: none
    ("alice:-1:2", []),                                     # start ULONG_MAX, last wraps to 0: none
    ("alice:100000:4294967295", [(100000, 4294967294)]),    # past 2^32: every ID from 100000
    ("alice:4294000000:10000000", [(4294000000, 4294967294)]),
    ("alice:-18446744073709551615:65536", [(1, 65536)]),    # -(2^64-1) is 1
    ("alice:18446744073709551616:1", []),                   # ERANGE: no range at all
    ("2001:-0:10", [(0, 9)]),                               # alice by her UID
])
def test_shadow_numbers(line, ids):
    assert granted(line + "\n", "alice") == ids


@pytest.mark.parametrize("line", ["alice:-0:65536", "alice:0:0", "alice:100000:4294967295",
                                  "alice:4294000000:10000000", "2001:-0:10", "alice:5:0", "alice:100000:0"])
def test_every_line_shadow_reads_as_the_owners_is_replaced_and_removed(line):
    text = "bob:200000:10\n%s\nzed:300000:10\n" % line
    assert apply(text, "alice", 100000, 65536) == "bob:200000:10\nalice:100000:65536\nzed:300000:10\n"
    assert remove(text, "alice") == "bob:200000:10\nzed:300000:10\n"


@pytest.mark.parametrize("line,start", [
    ("bob:0:0", 100000),                    # every ID
    ("bob:100000:4294967295", 5000000),     # every ID from 100000
    ("bob:4294000000:10000000", 4294100000),
    ("bob:-0:200000", 100000),
])
def test_another_owners_line_over_the_new_range_is_an_overlap(line, start):
    with pytest.raises(SubidError) as err:
        apply("%s\n" % line, "alice", start, 10)
    assert "overlaps /etc/subuid line 1 (%s)" % line.replace("-0", "0") in str(err.value)


def test_findings_for_root_and_ids_past_2_32():
    text = "alice:-0:65536\nbob:0:0\ncarol:100000:4294967295\ndave:4294000000:10000000\nerin:5:0\n"
    found = kinds(text)
    assert ("maps_root", "critical", 1) in found and ("maps_root", "critical", 2) in found
    assert [f for f in found if f[0] == "beyond_id_space"] == [
        ("beyond_id_space", "critical", 2), ("beyond_id_space", "critical", 3), ("beyond_id_space", "critical", 4)]
    assert ("below_floor", "critical", 5) not in found  # erin:5:0 grants nothing ...
    assert ("malformed_line", "warning", 5) in found     # ... which is worth a warning


@pytest.mark.parametrize("release,severity,said", [
    ((4, 20), "critical", "as this host's shadow 4.20 does"),
    ((4, 19), "critical", "as this host's shadow 4.19 does"),
    ((4, 13), "warning", "(this host's shadow is 4.13)"),
    (None, "warning", "(this host's shadow is unknown)"),
])
def test_a_missing_final_newline_is_critical_where_shadow_refuses_the_file_for_it(release, severity, said):
    files = {"subuid": SubidFile("/etc/subuid", "alice:100000:65536\nbob:200000:10"), "subgid": None}
    found = [f for f in findings(files, account_of, [], [], 1000, release) if f["kind"] == "missing_final_newline"]
    assert [(f["severity"], f["line"]) for f in found] == [(severity, 2)]
    assert found[0]["message"].startswith("/etc/subuid line 2, the last, has no newline: shadow 4.19 and later refuse")
    assert said in found[0]["message"]
    ended = {"subuid": SubidFile("/etc/subuid", "alice:100000:65536\n"), "subgid": SubidFile("/etc/subgid", "")}
    assert not [f for f in findings(ended, account_of, [], [], 1000, (4, 20)) if f["kind"] == "missing_final_newline"]


# --- shadow 4.20: owners matched by resolved UID; the kubelet's single range -----------------

KUBELET_ACCOUNTS = dict(ACCOUNTS, kubelet=(990, 990))


def kubelet_account_of(owner):
    if owner.isdigit():
        return next((acc for acc in KUBELET_ACCOUNTS.values() if acc[0] == int(owner)), None)
    return KUBELET_ACCOUNTS.get(owner)


def of_kind(found, kind):
    return [f for f in found if f["kind"] == kind]


@pytest.mark.parametrize("release", [(4, 13), (4, 17), None])
def test_before_shadow_4_20_an_unresolved_owner_is_a_plain_warning_and_containers_needs_no_account(release):
    text = "ghost:300000:65536\ncontainers:1000000:1000000\n"
    files = {"subuid": SubidFile("/etc/subuid", text), "subgid": None}
    found = of_kind(findings(files, account_of, [], [], 1000, release), "unknown_owner")
    assert [(f["severity"], f["line"], f["message"]) for f in found] == [
        ("warning", 1, "/etc/subuid line 1 (ghost:300000:65536): owner ghost has no account on this host")]


def test_shadow_4_20_gives_an_unresolved_owner_no_range_and_containers_needs_an_account():
    text = "ghost:300000:65536\ncontainers:1000000:1000000\n"
    files = {"subuid": SubidFile("/etc/subuid", text), "subgid": None}
    found = of_kind(findings(files, account_of, [], [], 1000, (4, 20)), "unknown_owner")
    assert [(f["severity"], f["line"]) for f in found] == [("warning", 1), ("warning", 2)]
    assert "shadow 4.20 skips a name that does not resolve, so getsubids and newuidmap give ghost no range" \
        in found[0]["message"]
    assert "find no range for --userns=auto; create the account (useradd --system --no-create-home containers)" \
        in found[1]["message"]


@pytest.mark.parametrize("subuid", ["kubelet:65536000:7208960\n990:72744960:7208960\n",
                                    "kubelet:65536000:7208960\nkubelet:72744960:7208960\n"])
def test_a_second_kubelet_range_in_either_form_is_critical(subuid):
    files = {"subuid": SubidFile("/etc/subuid", subuid),
             "subgid": SubidFile("/etc/subgid", "kubelet:65536000:7208960\n")}
    found = of_kind(findings(files, kubelet_account_of, [], [], 1000, (4, 20)), "kubelet_ranges")
    assert [(f["severity"], f["file"], f["line"]) for f in found] == [("critical", "/etc/subuid", 2)]
    assert "/etc/subuid has 2 ranges for the kubelet (/etc/subuid line 1 (kubelet:65536000:7208960), " \
        "/etc/subuid line 2" in found[0]["message"]
    assert "refuses to start unless it gets exactly one" in found[0]["message"]


def test_the_kubelet_needs_the_same_range_in_both_files():
    one = "kubelet:65536000:7208960\n"
    same = {"subuid": SubidFile("/etc/subuid", one), "subgid": SubidFile("/etc/subgid", one)}
    assert of_kind(findings(same, kubelet_account_of, [], [], 1000, (4, 17)), "kubelet_ranges") == []
    differ = {"subuid": SubidFile("/etc/subuid", one),
              "subgid": SubidFile("/etc/subgid", "990:72744960:7208960\n")}
    found = of_kind(findings(differ, kubelet_account_of, [], [], 1000, (4, 17)), "kubelet_ranges")
    assert [(f["severity"], f["file"]) for f in found] == [("critical", "/etc/subgid")]
    assert found[0]["message"] == ("the kubelet's subuid range 65536000-72744959 (7208960 IDs) and subgid range "
                                   "72744960-79953919 (7208960 IDs) differ: the kubelet requires them equal")


@pytest.mark.parametrize("release,severity,said", [
    ((4, 17), "critical", "lets its owner map every ID from 100000"),
    ((4, 20), "warning", "this host's shadow 4.20 skips the line, so bob gets no range from it"),
])
def test_a_range_past_2_32_is_a_hole_before_shadow_4_20_and_a_lost_line_after(release, severity, said):
    files = {"subuid": SubidFile("/etc/subuid", "bob:100000:4294967295\n"), "subgid": None}
    found = of_kind(findings(files, account_of, [], [], 1000, release), "beyond_id_space")
    assert [(f["severity"], f["line"]) for f in found] == [(severity, 1)]
    assert said in found[0]["message"]


def test_the_deterministic_switches_of_login_defs_are_reported():
    values = parse_login_defs("SUB_UID_DETERMINISTIC\tyes\nSUB_GID_DETERMINISTIC YES\n"
                              "UNSAFE_SUB_GID_DETERMINISTIC_WRAP yes\nSUB_UID_STORE_BY_UID yes\n"
                              "#SUB_GID_STORE_BY_UID yes\n")
    assert values == {"SUB_UID_DETERMINISTIC": "yes", "SUB_GID_DETERMINISTIC": "YES",
                      "UNSAFE_SUB_GID_DETERMINISTIC_WRAP": "yes", "SUB_UID_STORE_BY_UID": "yes"}
    found = login_defs_findings(values)
    assert [(f["severity"], f["kind"]) for f in found] == [
        ("warning", "login_defs_deterministic"), ("critical", "login_defs_deterministic")]
    assert "SUB_UID_DETERMINISTIC yes: useradd and usermod compute each new user's subuid range" in found[0]["message"]
    assert "UNSAFE_SUB_GID_DETERMINISTIC_WRAP yes lets ranges wrap around" in found[1]["message"]
    assert login_defs_findings(parse_login_defs("SUB_UID_DETERMINISTIC no\nUNSAFE_SUB_UID_DETERMINISTIC_WRAP yes\n")) == []


# --- NUL bytes: fgets() and strrchr() join the line with the next one ------------------------

def test_a_nul_byte_joins_a_line_with_the_next():
    parsed = SubidFile("/etc/subuid", "alice:100\0junk\n000:65536\nbob:1:2\n")
    assert [(e.owner, e.start, e.count, e.line) for e in parsed.entries] == [
        ("alice", 100000, 65536, 1), ("bob", 1, 2, 3)]
    assert "shadow joins lines 1-2" in parsed.entries[0].note


def test_an_owner_hidden_behind_a_nul_byte_is_not_taken_for_present():
    # shadow reads "# note" + "alice:100000:65536" as one comment line: alice has no range.
    text = "# note\0\nalice:100000:65536\n"
    assert granted(text, "alice") == []
    new = apply(text, "alice", 100000, 65536)
    assert new != text and granted(new, "alice") == [(100000, 165535)]


def test_appending_after_a_nul_byte_is_refused_when_it_changes_another_owner():
    # bob's last line ends the file; a newline after the NUL would make shadow read
    # "bob:200000:65536alice:100000:65536": bob and alice would both lose their range.
    text = "bob:200000:65536\0"
    assert granted(text.replace("bob", "alice"), "alice") == [(200000, 265535)]
    with pytest.raises(SubidError, match="line 1 holds a NUL byte"):
        apply(text, "alice", 100000, 65536)


def test_a_nul_byte_in_the_last_line_makes_the_whole_file_unreadable():
    text = "alice:100000:65536\nbob:200000:65536\0\n"
    assert ("unreadable", "critical", 2) in kinds(text)
    with pytest.raises(SubidError, match="shadow cannot read /etc/subuid at all"):
        apply(text, "carol", 300000, 10)


nul_lines = st.lists(st.one_of(
    st.sampled_from(["alice:100000:65536", "bob:200000:65536", "2001:300000:10", "# c", "", "x", "000:10",
                     "alice:1", "bob:2", ":3", "zed:400000:10"]),
    st.sampled_from(["alice:100000:65536", "bob:200000:65536", "alice:1", "bob:", "# c", "", "x"]).map(
        lambda s: s + "\0" + "junk")), max_size=8)


@given(nul_lines, st.booleans(), st.booleans())
def test_with_nul_bytes_shadow_reads_exactly_what_was_asked_or_the_edit_is_refused(lines, final, absent):
    text = "\n".join(lines) + ("\n" if final and lines else "")
    before = SubidFile("/etc/subuid", text)
    try:
        new = remove(text, "alice") if absent else apply(text, "alice", 5000000, 10)
    except SubidError as refused:
        # Only the refusals a NUL byte can cause, each where it applies: a file shadow
        # cannot read; new lines shadow would read otherwise; or the new range overlaps a
        # range shadow reads from lines a NUL byte joined (bob:200000:65536\0junk and
        # 2001:300000:10 read as bob:200000:655362001).
        message = str(refused)
        if before.unreadable is not None:
            assert "shadow cannot read /etc/subuid at all" in message
        else:
            assert "\0" in text
            assert "shadow would not read the new lines as written" in message or (
                not absent and "overlaps" in message and "which holds a NUL byte" in message), message
        return
    after = SubidFile("/etc/subuid", new)
    assert after.unreadable is None

    def others(parsed):
        return [(e.owner, e.start, e.count) for e in parsed.entries if not aliases_of(e.owner) & {"alice"}]

    assert others(after) == others(before)
    assert granted(new, "alice") == ([] if absent else [(5000000, 5000009)])


# --- what shadow accepts and other consumers do not ------------------------------------------

@pytest.mark.parametrize("line,what", [
    ("#alice:100000:65536", "is a comment"),
    ("alice:100000: 65536", "holds whitespace"),
    ("alice:0100000:65536", "not plain decimal"),
    ("alice:0x186a0:65536", "not plain decimal"),
    ("alice:+100000:65536", "not plain decimal"),
    ("2001:100000:65536", "numeric UID"),
    ("alice:4294901760:65536", "ends at ID 4294967295"),
])
def test_consumer_compat_warnings_name_file_and_line(line, what):
    found = findings({"subuid": SubidFile("/etc/subuid", "bob:1:2\n%s\n" % line), "subgid": None},
                     account_of, [], [], 1)
    compat = [f for f in found if f["kind"] == "consumer_compat"]
    assert [(f["severity"], f["file"], f["line"]) for f in compat] == [("warning", "/etc/subuid", 2)]
    assert compat[0]["message"].startswith("/etc/subuid line 2 ") and what in compat[0]["message"]


def test_plain_lines_have_no_consumer_warnings():
    text = "alice:100000:65536\nbob:165536:65536\n\nzed:4294901759:65536\n"
    assert [k for k in kinds(text) if k[0] == "consumer_compat"] == []


def test_the_module_never_writes_a_numeric_owner():
    with pytest.raises(SubidError, match="numeric"):
        want("2001", 100000, 65536)
    # Removing by numeric UID stays possible.
    assert remove("2001:100000:10\n", "2001") == ""


@given(st.sampled_from(["alice", "bob", "carol"]), st.integers(1000, 4294967295 - 65536), st.integers(1, 65536))
def test_lines_the_module_writes_draw_no_warning(name, start, count):
    new = edit_text("/etc/subuid", "", want(name, start, count), aliases_of).new
    assert [k for k in kinds(new, floor=1000) if k[0] in ("consumer_compat", "malformed_line", "beyond_id_space")] == []
    assert granted(new, name) == [(start, start + count - 1)]
