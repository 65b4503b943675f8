"""Range primitives: merge, subtract, overlap search, checked construction."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.module_utils.ranges import (
    ID_LIMIT,
    IdRange,
    RangeError,
    check_owner_name,
    owner_name_problem,
    find_overlaps,
    make_range,
    merge,
    subtract,
)

intervals = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(1, 300)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=30,
)


def as_set(pairs):
    return {i for s, e in pairs for i in range(s, e)}


@given(intervals)
def test_merge_covers_same_ids_sorted_and_disjoint(pairs):
    merged = merge(pairs)
    assert as_set(merged) == as_set(pairs)
    for (s1, e1), (s2, e2) in zip(merged, merged[1:]):
        assert e1 < s2  # touching intervals are merged too


@given(intervals, intervals)
def test_subtract_is_set_difference(base, holes):
    assert as_set(subtract(base, holes)) == as_set(base) - as_set(holes)


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(1, 100)), max_size=25))
def test_find_overlaps_matches_brute_force(raw):
    items = [IdRange(s, c) for s, c in raw]
    found = {frozenset((a, b)) if a != b else frozenset([a]) for a, b in find_overlaps(items)}
    expected = set()
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if a.overlaps(b):
                expected.add(frozenset((a, b)) if a != b else frozenset([a]))
    assert found == expected


def test_idrange_text_names_first_and_last_id():
    assert str(IdRange(100000, 65536)) == "100000-165535 (65536 IDs)"


@pytest.mark.parametrize(
    "start,count,message",
    [
        (100000, 0, "count must be at least 1"),
        (-1, 10, "leaves the 32-bit ID space"),
        (ID_LIMIT - 10, 11, "leaves the 32-bit ID space"),
        ("12x", 10, "must be an integer"),
        (True, 10, "must be an integer"),
    ],
)
def test_make_range_refuses(start, count, message):
    with pytest.raises(RangeError, match=message):
        make_range(start, count)


def test_make_range_accepts_the_last_usable_id():
    assert make_range(ID_LIMIT - 1, 1).last == 4294967294
    assert make_range("100000", "65536") == IdRange(100000, 65536)


@pytest.mark.parametrize("name", ["alice", "bob.smith", "svc_1", "1001x", "machine$", "a" * 32,
                                  "jdoe@ad.example.com", "svc$@corp", "a" * 32 + "@" + "d" * 253])
def test_owner_names_accepted(name):
    assert check_owner_name(name) == name
    assert owner_name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", "root:0:65536", "a\nroot", "bob smith", "-x", ".hidden", "a" * 33, None, 1001, 'q"uote',
             "@corp", "a@", "a@@b", "a@-corp", "a@b c", "a@b/c"]
)
def test_owner_names_that_could_break_the_file_are_refused(name):
    with pytest.raises(RangeError, match="is not allowed"):
        check_owner_name(name)


@pytest.mark.parametrize("name,reason", [
    ("0", "all digits: shadow takes a numeric owner for a UID"),
    ("1001", "all digits"),
    ("John Smith", "holds whitespace"),
    ("jos\u00e9", "not ASCII"),
    ("\u0661\u0662", "not ASCII"),  # Arabic-Indic digits: isdigit() says yes, the rule says not ASCII
    ("-rf", "not starting with '.' or '-'"),
])
def test_each_odd_name_is_refused_with_its_own_reason(name, reason):
    assert reason in owner_name_problem(name)
    with pytest.raises(RangeError, match="owner name %r is not allowed: " % name):
        check_owner_name(name)
