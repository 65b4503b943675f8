"""The fast readers (_subid_fast, and the spliced edit of _subid_edit) against the exact
one (_subid_read), so that a divergence fails.

The module reads a big file in two fast ways: edit_text finds a listed owner's lines with
one regex search and copies the rest unread (_edit_spliced), and check_edit reads the
numbers of a file in fast_form in bulk (fast_columns). Both must give exactly what
reading every line with shadow's reader gives (shadow_records, read_line, _edit_records):
on every line the edge-case tests of test_shadow_reading.py and test_subid_file.py use,
and on random files built from those lines and from random bytes.
"""

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.module_utils import _subid_edit
from ansible_collections.fleetid.subid.plugins.module_utils import _subid_fast
from ansible_collections.fleetid.subid.plugins.module_utils import _subid_read
from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import (
    SubidError,
    check_edit,
    desired_entries,
    _edit_records,
    _edit_spliced,
    edit_text,
    other_entries,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_fast import (
    fast_columns,
    fast_form,
    fast_form_by_regex,
)
from ansible_collections.fleetid.subid.plugins.module_utils._subid_read import (
    needs_model,
    read_line,
    shadow_records,
)

import test_shadow_reading  # noqa: E402  (tests/unit is on sys.path, as for allocation_model)
import test_subid_file


def _strings_in(module):
    """Every string a parametrized test of ``module`` runs on."""
    found = set()
    for name in dir(module):
        for mark in getattr(getattr(module, name), "pytestmark", []):
            if mark.name == "parametrize":
                for value in mark.args[1]:
                    found.update(v for v in (value if isinstance(value, tuple) else (value,)) if isinstance(v, str))
    return found


EDGE_LINES = sorted(line for line in _strings_in(test_shadow_reading) | _strings_in(test_subid_file)
                    if ":" in line or line.startswith("#")) + [
    "alice:18446744073709551615:1", "alice:18446744073709551616:1", "alice:9999999999:1",
    "alice:10000000000:1", "alice:99999999999999999999:1", "alice:4294967295:1", "alice:4294967294:1",
    "alice:0:1", "alice:00:1", "alice:1:00", "alice:1:0", "alice::1", "alice:1:", ":1:2", "alice:1:2:",
    "alice:1:2:3", "#alice:1:2", " alice:1:2", "alice :1:2", "al ice:1:2", "al\x0bice:1:2", "al\x1cice:1:2",
    "ali\u00e9e:1:2", "+alice:1:2", "-alice:1:2", "a+b:1:2", "a-b:1:2", "a#b:1:2", "alice:1:2\r",
    "alice:+1:2", "alice:-1:2", "alice:0x10:2", "alice:010:2", "alice:1:\t2", "alice:\xa01:2",
    "alice:\u0661:2", "x" * 255 + ":1:2", "x" * 256 + ":1:2", "x" * 1011 + ":100000:65536",
    "x" * 1012 + ":100000:65536", "", " ", "#", "# a comment: with:colons", "\r", "alice:1:2\x00junk",
]
OWNERS = ["alice", "bob", "2001", "2002", "zed", "x" * 255]
ACCOUNTS = {"alice": "2001", "bob": "2002"}


def aliases_of(owner):
    for name, uid in ACCOUNTS.items():
        if owner in (name, uid):
            return {name, uid}
    return {owner}


def exact_entries(text):
    """(owner, start, count, line, ignored) of every entry, by the reference reader."""
    records, unreadable = shadow_records(text)
    entries = []
    for first, raws, body in records:
        joined = "joined" if len(raws) > 1 else None
        entry = read_line(body, first, first + len(raws) - 1 if joined else None, joined)
        if entry is not None:
            entries.append((entry.owner, entry.start, entry.count, entry.line, entry.ignored))
    return entries


def fast_entries(text):
    columns = fast_columns(text)
    if columns is None:
        return None
    owners, starts, counts, line_of = columns
    return [(owner, start, count, line_of(i), False) for i, (owner, start, count)
            in enumerate(zip(owners, starts, counts))]


def check_all_readers_agree(text):
    assert fast_form(text) == fast_form_by_regex(text)
    exact = exact_entries(text)
    # parse_line (the module's reader, with its canonical shortcut) is read_line.
    records, unreadable = shadow_records(text)
    assert [(e.owner, e.start, e.count, e.line, e.ignored) for e in map(_subid_read.parse_record, records)
            if e is not None] == exact
    fast = fast_entries(text)
    if fast is not None:
        assert fast == exact
        assert all(entry[1] < 1 << 34 and entry[2] >= 1 for entry in fast)  # no wrap, a range each
    for owner, wanted in itertools.product(["alice", "bob", "carol"], [[(100000, 65536)], [(7000, 1), (5000000, 10)]]):
        check_edits_agree(text, owner, wanted)


def check_edits_agree(text, owner, ranges):
    items = [{"name": owner, "start": start, "count": count} for start, count in ranges]
    wanted = desired_entries(items, 1000, "subuid")
    alias = _subid_edit._aliases(wanted, aliases_of)
    records, unreadable = shadow_records(text)
    for remove in (False, True):
        exact = _edit_records(text, records, wanted, alias, remove)
        if not needs_model(text):
            assert _edit_spliced(text, wanted, alias, remove) == exact
    try:
        edit = edit_text("/etc/subuid", text, wanted, aliases_of)
    except SubidError:
        assert needs_model(text)  # only shadow's joined lines refuse an edit outright
        return
    assert edit.new == exact_edit_new(text, records, wanted, alias)
    # check_edit on the columns of a file in fast_form, and on the exact reader's entries.
    outcomes = []
    for force_exact in (False, True):
        again = edit_text("/etc/subuid", text, wanted, aliases_of)
        if force_exact:
            again._others = other_entries(text, again.alias)
        try:
            check_edit(again, [0, 1500, 2000], "UID")
            outcomes.append(None)
        except SubidError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]


def exact_edit_new(text, records, wanted, alias):
    return _edit_records(text, records, wanted, alias, False)[0]


@pytest.mark.parametrize("line", EDGE_LINES)
@pytest.mark.parametrize("ending", ["", "\n"])
def test_every_edge_case_line_alone_and_among_others(line, ending):
    check_all_readers_agree(line + ending)
    check_all_readers_agree("bob:200000:10\n%s%s" % (line, ending))
    check_all_readers_agree("# head\nbob:200000:10\n\n%s\nzed:90000:20000%s" % (line, ending))


def test_the_edge_cases_were_found():
    # The tests they come from keep them in parametrize lists; an empty harvest would make
    # the test above prove little.
    assert len(_strings_in(test_shadow_reading)) > 15 and "alice:-0:65536" in EDGE_LINES


def test_fast_form_takes_the_lines_the_module_writes_and_refuses_each_odd_one():
    assert fast_form("alice:100000:65536\n# c\n\nbob:0:1\nx" + "y" * 254 + ":4294967295:9999999999")
    for odd in ["alice:0100000:65536", "alice:+1:2", "alice:1:0", "alice:1:2\r", "+alice:1:2", " alice:1:2",
                "alice:1:2:3", "alice:10000000000:1", "x" * 256 + ":1:2", "ali\u00e9e:1:2", "alice:1:2\0",
                "alice:1", "alice", "\t"]:
        assert not fast_form("bob:1:2\n%s\nzed:3:4\n" % odd), odd
        assert not fast_form_by_regex("bob:1:2\n%s\nzed:3:4\n" % odd), odd


def test_fast_form_across_chunks():
    # Lines across the regex's chunks, and an odd line right after a chunk boundary.
    lines = ["user%06d:%d:4096" % (i, 100000 + i * 4096) for i in range(20000)]
    text = "\n".join(lines) + "\n"
    assert fast_form(text) and fast_form_by_regex(text) and fast_entries(text) == exact_entries(text)
    cut = text.rfind("\n", 0, _subid_fast._FAST_CHUNK) + 1
    for odd in (text[:cut] + "bob:01:2\n" + text[cut:], text[:cut - 1] + "\r" + text[cut - 1:]):
        assert not fast_form(odd) and not fast_form_by_regex(odd)


# Texts on which the bulk decision of fast_form (fast_fields) could part from its
# definition, the regex _FAST_FILE: lines with one, two, three or four fields next to each
# other, owners at and past 255 characters or starting with "#", "+" or "-", numbers with
# leading zeros or past 10 digits, non-ASCII digits and letters, control characters,
# spaces, NUL, CR, DEL, a last line with or without a newline, the empty file.
BULK_EDGES = [
    "", "\n", "\n\n", "#", "#\n", "# a:1:2:3", "#\x00", "a:1:2", "a:1:2\n", "a:1:2:3\nb:4", "a:1:2:3\nb:4\n",
    "a:1\nb:2:3:4", "a:1:2\nb:3:4:5\nc:6", "a:1:2\n\nb:3:4", "a:1:2\n#c:1\nb:3:4", "a:1:2\n \nb:3:4",
    "a:0:1", "a:00:1", "a:01:1", "a:0:0", "a:1:0", "a:1:01", "a:0:10", "a:10:10", "a:1000000000:1",
    "a:9999999999:9999999999", "a:10000000000:1", "a:1:10000000000", "a:\u0661:1", "a:1:\u00b2",
    "x" * 255 + ":1:2", "x" * 256 + ":1:2", "+a:1:2", "-a:1:2", "a+:1:2", "a-:1:2", "#a:1:2", "!a:1:2",
    "\"a:1:2", "a#:1:2", "a b:1:2", " a:1:2", "a:1:2 ", "a\t:1:2", "a\x7f:1:2", "\u00e9:1:2", "a\x00:1:2",
    "a:1:2\r", "a\r:1:2", "\r", "a:1:2\x00", ":1:2", "a::2", "a:1:", "a", "a:1", "a:1:2:", "::", "a:1:2\n:",
    # what int() takes besides digits: a sign, underscores, blanks
    "a:+1:2", "a:1:+2", "a:-1:2", "a:1:-2", "a:-0:2", "a:1_0:2", "a:1:2_0", "a:0_1:2", "a_b:1:2", "_:1:2",
    "a: 1:2", "a:1:2 ", "a:1:\t2", "a:1\x0b:2", "a:0:0", "a:0:00", "a:0:1:", "a:1:0\n",
]
bulk_piece = st.one_of(
    st.sampled_from(BULK_EDGES),
    st.text(alphabet=":0123456789ax#+-_ \t\r\n\x00\x7f\u00e9\u0661", max_size=16),
    st.builds(lambda n, s, c: "%s:%s:%s" % (n, s, c),
              st.one_of(st.sampled_from(["a", "#a", "+a", "-a", "a b", "x" * 255, "x" * 256, "", "\u00e9"]),
                        st.text(alphabet="ax:#+-", min_size=1, max_size=4)),
              st.sampled_from(["0", "00", "01", "1", "9999999999", "10000000000", "", "\u0661", "1:2", "+1", "1_0"]),
              st.sampled_from(["0", "01", "1", "9999999999", "10000000000", "", "1:2", "2\r", "1 ", "-1", "2_0"])),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(bulk_piece, max_size=8), st.sampled_from(["\n", ""]), st.booleans())
@example(["a:1:2:3", "b:4"], "\n", True)
@example(["a:1:2", "", "b:3:4"], "\n", False)
def test_the_bulk_fast_form_decides_as_the_regex(pieces, separator, final_newline):
    text = separator.join(pieces) + ("\n" if final_newline and pieces else "")
    assert fast_form(text) == fast_form_by_regex(text), text


@pytest.mark.parametrize("text", BULK_EDGES + ["\n".join(BULK_EDGES), "a:1:2\n" * 3 + "x" * 4095])
def test_the_bulk_fast_form_decides_each_edge_case_as_the_regex(text):
    assert fast_form(text) == fast_form_by_regex(text)
    if "\n" not in text:
        for around in ("b:1:2\n%s", "%s\nb:1:2", "b:1:2\n%s\nc:3:4\n", "# c\n%s\n\n"):
            assert fast_form(around % text) == fast_form_by_regex(around % text), around % text


def test_the_bulk_fast_form_rejects_misaligned_fields():
    # Six fields that split into two owner:start:count triples, from lines of four and two.
    assert not fast_form("a:1:2:3\n4:5") and not fast_form("a:1:2:3\n4:5\n")
    assert fast_form("a:1:2\n3:4:5")


# Files of one count, the case fast_fields confirms with one count of ":c\n" and reads
# without splitting the owners off: the count taken from the first line, the lines around
# an odd one, the last line with and without its newline.
one_count_owner = st.sampled_from(["a", "bob", "x" * 255, "x" * 256, "", "#a", "+a", "-a", "a_b", "\u00e9", "a\r",
                                   "a\x00", "a:1", "7", "4096"])
one_count_start = st.sampled_from(["0", "00", "01", "1", "4096", "9999999999", "10000000000", "", "+1", "1_0", " 1",
                                   "1:2", "\u0661"])
one_count_line = st.builds(lambda owner, start, count: "%s:%s:%s" % (owner, start, count),
                           one_count_owner, one_count_start,
                           st.sampled_from(["4096", "4096", "4096", "04096", "409", "40960", "4096:", "4096 ", "",
                                            "+4096", "4_096", "0", "1", "10000000000"]))


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["4096", "1", "9999999999", "10000000000", "04096", "", "0", "4_096", "+1", "4096\r"]),
       st.lists(st.tuples(st.sampled_from(["a", "bob", "7", "x" * 255]), st.integers(0, 10 ** 10).map(str)),
                min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, 6), st.one_of(one_count_line, st.sampled_from(BULK_EDGES))), max_size=2),
       st.booleans())
@example("4096", [("a", "1"), ("b", "2")], [(1, "c:3:4096:")], False)
@example("4096", [("a", "1"), ("b", "2")], [(2, "c:3:409")], False)
@example("4096", [("a", "1")], [(0, "b:2:4096\nc:3:40960")], True)
@example("1", [("a", "1"), ("b", "2")], [(1, "x" * 256 + ":3:1")], True)
def test_files_of_one_count_read_as_the_exact_reader_reads_them(count, lines, odd, final_newline):
    rows = ["%s:%s:%s" % (owner, start, count) for owner, start in lines]
    for at, row in odd:
        rows.insert(at, row)
    text = "\n".join(rows) + ("\n" if final_newline else "")
    assert fast_form(text) == fast_form_by_regex(text), text
    fast = fast_entries(text)
    if fast is not None:
        assert fast == exact_entries(text), text


def test_a_file_of_one_count_reads_its_owners_only_when_asked():
    text = "# c\nalice:1:4096\n\nbob:5000:4096\n" + "x" * 255 + ":9000:4096"
    owners, starts, counts, line_of = fast_columns(text)
    assert (starts, counts) == ([1, 5000, 9000], [4096] * 3)
    assert isinstance(owners, _subid_fast._Owners) and owners._owners is None
    assert (owners[2], len(owners), list(owners)) == ("x" * 255, 3, ["alice", "bob", "x" * 255])
    assert [line_of(i) for i in range(3)] == [2, 4, 5]


name = st.sampled_from(OWNERS + ["carol", "#c", "+x", " alice"])
number = st.one_of(st.integers(0, 5000000).map(str),
                   st.sampled_from(["0", "00", "-0", "+5", "0x10", "010", "", "18446744073709551616", "4294967295"]))
random_line = st.one_of(
    st.sampled_from(EDGE_LINES),
    st.builds(lambda n, s, c: "%s:%s:%s" % (n, s, c), name, number, number),
    st.text(alphabet=":0123456789abx#+- \t\r\x0b\u00e9", max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(random_line, max_size=12), st.booleans())
@example(["alice:1:2", "alice:3:4"], False)
@example(["bob:1:2", "", "alice:100000:65536"], True)
def test_random_files(lines, final_newline):
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    check_all_readers_agree(text)


def canonical_file(lines):
    """A subuid text of ``(owner, start, count)`` lines, which must be in fast_form."""
    text = "".join("%s:%d:%d\n" % line for line in lines)
    assert fast_form(text)
    return text


def wanted_ranges(wanted):
    """desired_entries of ``(owner, start, count)`` triples; None when it refuses them."""
    items = [{"name": owner, "start": start, "count": count} for owner, start, count in wanted]
    try:
        return desired_entries(items, 1000, "subuid")
    except SubidError:
        return None


def bulk_and_brute_overlaps(text, want):
    """``(edit, _overlap_count, the same count over the exact reader's entries)``, or None
    when the listed ranges overlap each other (check_edit refuses those before counting)."""
    edit = edit_text("/etc/subuid", text, want, aliases_of)
    listed = sorted((rng.start, rng.end) for name, rng, line in edit.listed)
    if any(b[0] < a[1] for a, b in zip(listed, listed[1:])):
        return None
    brute = sum(entry.range.start < end and entry.range.end > start
                for entry in other_entries(text, edit.alias) for start, end in listed)
    return edit, _subid_edit._overlap_count(edit, [s for s, e in listed], [e for s, e in listed]), brute


def refusals_by_both_readers(text, want):
    """check_edit's refusal (None for none) with the bulk reading of a text in fast_form,
    then with the exact per-line reader."""
    outcomes = []
    for force_exact in (False, True):
        edit = edit_text("/etc/subuid", text, want, aliases_of)
        if force_exact:
            edit._others = other_entries(text, edit.alias)
        try:
            check_edit(edit, [], "UID")
            outcomes.append(None)
        except SubidError as exc:
            outcomes.append(str(exc))
    return outcomes


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OWNERS), st.integers(0, 6000000), st.integers(1, 70000)), max_size=30),
       st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]), st.integers(1000, 6000000),
                          st.integers(1, 70000)), min_size=1, max_size=3))
def test_random_canonical_files_give_the_same_refusals(lines, wanted):
    # Files in fast_form, where check_edit reads columns: the same overlaps, in the same order.
    text, want = canonical_file(lines), wanted_ranges(wanted)
    if want is None:
        return
    outcomes = refusals_by_both_readers(text, want)
    assert outcomes[0] == outcomes[1]


# Multiples of 1000 make lines that touch a listed range end to end, the boundary cases.
big_number = st.one_of(st.integers(0, 20).map(lambda k: 1000 * k), st.integers(0, 6000000),
                       st.integers(4294960000, 4294967296), st.integers(1, 9999999999))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OWNERS), big_number, big_number.filter(bool)), max_size=30),
       st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]),
                          st.one_of(st.integers(1, 20).map(lambda k: 1000 * k), st.integers(1000, 6000000),
                                    st.integers(4294960000, 4294967294)),
                          st.one_of(st.integers(1, 5).map(lambda k: 1000 * k), st.integers(1, 70000))),
                min_size=1, max_size=3),
       st.booleans())
@example([("zed", 4294967294, 9999999999), ("bob", 4294967295, 5)], [("carol", 4294967290, 5)], False)
@example([("alice", 100000, 65536), ("zed", 300000, 1)], [("alice", 100000, 131072)], False)
@example([("zed", 1000, 1000), ("bob", 3000, 1000), ("zed", 2999, 1)], [("carol", 2000, 1000)], False)
@example([("alice", 1000, 1000), ("alice", 3000, 5)], [("alice", 2000, 1000)], False)
@example([("zed", 1000, 1000), ("bob", 3000, 1000), ("2001", 2000, 1000)], [("carol", 2000, 1000)], True)
@example([("zed", 1000, 1000), ("alice", 2000, 1000), ("bob", 2500, 1000)], [("alice", 2000, 500)], True)
@example([("zed", 1001, 1000), ("bob", 5000, 1000)], [("carol", 2000, 1000)], True)
def test_the_bulk_overlap_count_is_the_number_of_overlapping_pairs(lines, wanted, same_count):
    # _overlap_count (sorted starts and ends, two binary searches a listed range, the listed
    # owners' own lines taken off) against a count over the exact reader's entries, with
    # lines reaching past 2^32 - 1 (clipped by shadow) and 10-digit numbers; with
    # ``same_count`` every line has the first line's count (ends are then shifted starts).
    if same_count and lines:
        lines = [(owner, start, lines[0][2]) for owner, start, count in lines]
    text, want = canonical_file(lines), wanted_ranges(wanted)
    if want is None:
        return
    counts = bulk_and_brute_overlaps(text, want)
    if counts is not None:
        assert counts[1] == counts[2]


# Files of one count keep their starts as digit strings, compared by length and then as
# strings (_OneCount): numbers on both sides of each digit-length boundary, at 0 and near
# 2^32 - 1, and listed ranges across those boundaries.
AROUND_POWERS = sorted({0, 1, 2, 8, 9, 2 ** 32 - 2, 2 ** 32 - 1, 2 ** 32, 9999999999}
                       | {10 ** k + d for k in range(1, 10) for d in (-2, -1, 0, 1)})
digit_boundary = st.one_of(st.sampled_from(AROUND_POWERS),
                           st.builds(lambda k, d: max(0, 10 ** k + d), st.integers(1, 9), st.integers(-5000, 5000)),
                           st.integers(0, 9999999999))


@settings(max_examples=300, deadline=None)
@given(st.lists(digit_boundary, min_size=1, max_size=40),
       st.lists(st.one_of(digit_boundary, st.integers(-3, 0), st.integers(10 ** 10 - 2, 10 ** 10 + 2)), max_size=20),
       st.sampled_from([1, 7, 4096, 9999999999]))
@example([10, 9, 0, 100, 99, 1000000000, 999999999], [10, 100, 1000000000], 1)
def test_a_file_of_one_count_counts_the_starts_below_a_bound_as_numbers_do(starts, bounds, count):
    text = "# c\n" + "".join("u%d:%d:%d\n" % (i, start, count) for i, start in enumerate(starts))
    owners, skipped, numbers = _subid_fast.fast_fields(text)
    assert isinstance(numbers, _subid_fast._OneCount)
    for bound in bounds + AROUND_POWERS:
        assert numbers.below(bound) == sum(start < bound for start in starts), bound
    assert numbers.columns() == (starts, [count] * len(starts))


listed_start = st.one_of(st.sampled_from([n for n in AROUND_POWERS if 1000 <= n <= 2 ** 32 - 2]),
                         st.builds(lambda k, d: 10 ** k + d, st.integers(3, 9), st.integers(-3000, 3000)),
                         st.integers(4294960000, 4294967294))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(OWNERS), digit_boundary), min_size=1, max_size=30),
       st.one_of(st.sampled_from([1, 2, 9, 10, 11, 999, 1000, 1001, 65536, 10 ** 9, 9999999999]),
                 st.integers(1, 10 ** 6)),
       st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]), listed_start,
                          st.one_of(st.sampled_from([1, 2, 9, 10, 11, 1000]), st.integers(1, 100000))),
                min_size=1, max_size=3))
@example([("zed", 999), ("bob", 1000), ("zed", 9999)], 2, [("carol", 995, 10)])
@example([("zed", 999999990), ("bob", 1000000000), ("alice", 999999999)], 10, [("alice", 999999995, 10)])
@example([("zed", 4294967294), ("bob", 4294967295), ("zed", 9999999999)], 9999999999, [("carol", 4294967290, 5)])
@example([("zed", 99990), ("2001", 100000), ("bob", 100010)], 11, [("alice", 100000, 5), ("carol", 99999, 1)])
def test_one_count_overlaps_across_digit_lengths_as_brute_force_counts_them(lines, count, wanted):
    # _overlap_count on a file of one count (starts compared as strings of one length),
    # against a count over the exact reader's entries; lines of the listed owners (and of
    # 2001, alice's alias) are in the file and must be taken off. And check_edit refuses
    # as it does on the exact reader's entries, with the same message.
    text, want = canonical_file([(owner, start, count) for owner, start in lines]), wanted_ranges(wanted)
    if want is None:
        return
    counts = bulk_and_brute_overlaps(text, want)
    if counts is None:
        return
    edit, bulk, brute = counts
    assert isinstance(edit._fields()[2], _subid_fast._OneCount)
    assert bulk == brute
    outcomes = refusals_by_both_readers(text, want)
    assert outcomes[0] == outcomes[1]
    assert (outcomes[0] is None) == (brute == 0)


def test_a_second_edit_of_the_same_text_shares_the_bulk_reading_and_refuses_alike():
    text = "bob:100000:65536\nzed:300000:10\n"
    wanted = desired_entries([{"name": "alice", "start": 150000, "count": 10}], 1000, "subgid")
    first = edit_text("/etc/subuid", text, wanted, aliases_of)
    same = edit_text("/etc/subgid", text, wanted, aliases_of)
    other = edit_text("/etc/subgid", text.replace("zed", "amy"), wanted, aliases_of)
    same.share_reading(first)
    other.share_reading(first)
    assert same.columns is first.columns and other.columns is not first.columns
    assert other.columns[0] == ["bob", "amy"]
    for edit in (first, same, other):
        with pytest.raises(SubidError, match=r"alice:150000:10 \(new line 3\) overlaps %s line 1 \(bob:100000:65536\)"
                           % edit.path):
            check_edit(edit, [], "GID")


def test_an_edit_of_the_same_text_takes_the_other_files_lines_and_edits_alike():
    text = "# c\nalice:1:5\nbob:10:5\n2001:20:5\nzed:30:5"
    items = [{"name": "alice", "start": 100000, "count": 10}, {"name": "carol", "start": 200000, "count": 10}]
    wanted = desired_entries(items, 1000, "subuid")
    first = edit_text("/etc/subuid", text, wanted, aliases_of)
    assert first.spans == _subid_edit._alias_lines(text, first.alias) and len(first.spans) == 2
    alone = edit_text("/etc/subgid", text, wanted, aliases_of)
    second = edit_text("/etc/subgid", "".join(text), wanted, aliases_of, previous=first)
    assert second.spans is first.spans
    assert (second.new, second.listed, second.removed) == (alone.new, alone.listed, alone.removed)
    # Another text, or other owners: searched again.
    other = edit_text("/etc/subgid", text + "\nalice:40:5\n", wanted, aliases_of, previous=first)
    assert other.spans is not first.spans and len(other.spans) == 3 and "alice:40:5" in other.removed
    bob = desired_entries([{"name": "bob", "start": 300000, "count": 10}], 1000, "subuid")
    assert edit_text("/etc/subgid", text, bob, aliases_of, previous=first).removed == ["bob:10:5"]
    # A text shadow reads with its own model has no spans to share.
    nul = edit_text("/etc/subuid", "zed:1:2\x00\nalice:1:5\n", wanted, aliases_of)
    assert nul.spans is None
