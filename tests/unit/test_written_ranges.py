"""written_ranges says what edit_text would find already written: an owner's ranges when
its lines are exactly as edit_text writes them. It must agree with edit_text on every
text: a write changes nothing exactly when every wanted owner is reported with its wanted
ranges in order."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import (
    SubidError,
    edit_text,
    written_ranges,
)

from ansible_collections.fleetid.subid.plugins.plugin_utils.host_rules import in_step

# tests/unit is on sys.path: alice is UID 2001 and bob 2002, as in the fast reader's tests.
from test_subid_file_fast import aliases_of, wanted_ranges as wanted_of


def says_unchanged(held, wanted):
    """What allocate concludes from written_ranges' answer (``held``, read the same from
    both files): host_rules.in_step itself, not a copy of its rule."""
    entries = [{"name": owner, "start": rng.start, "count": rng.count} for owner, ranges in wanted.items()
               for rng in ranges]
    return in_step({"subuid": held, "subgid": held, "interrupted_write": False}, entries)


field = st.sampled_from(["alice", "bob", "2001", "2002", "carol", "zed", "#alice", " alice"])
number = st.sampled_from(["100000", "165536", "65536", "0", "007", "+5", "-1", "4294967295", "x", ""])
line = st.one_of(
    st.builds(lambda o, s, c: "%s:%s:%s" % (o, s, c), field, number, number),
    st.sampled_from(["", "# comment", "alice:100000:65536", "alice:165536:65536", "bob:300000:65536",
                     "alice:100000:65536:extra", "alice:100000", "\0", "alice:100000:65536\r"]),
)
wanted_owner = st.tuples(st.sampled_from(["alice", "bob", "carol", "2001"]),
                         st.sampled_from([100000, 165536, 300000]), st.sampled_from([65536]))


@settings(max_examples=500, deadline=None)
@given(st.lists(line, max_size=8), st.booleans(), st.lists(wanted_owner, min_size=1, max_size=3))
@example(["alice:100000:65536", "alice:165536:65536"], True,
         [("alice", 100000, 65536), ("alice", 165536, 65536)])
@example(["alice:100000:65536", "bob:300000:65536", "alice:165536:65536"], True,
         [("alice", 100000, 65536), ("alice", 165536, 65536), ("bob", 300000, 65536)])
@example(["alice:100000:65536"], False, [("alice", 100000, 65536)])
@example(["2001:100000:65536"], True, [("alice", 100000, 65536)])
def test_it_says_unchanged_exactly_when_edit_text_changes_nothing(lines, final_newline, wanted):
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    want = wanted_of(wanted)
    if want is None:  # desired_entries refuses overlapping wanted ranges: nothing to compare
        return
    try:
        unchanged = edit_text("/etc/subuid", text, want, aliases_of).new == text
    except SubidError:  # a text edit_text refuses is never one to skip a write for
        unchanged = False
    held = written_ranges(text, list(want), aliases_of)
    if held is None:  # "nothing known": shadow's lines are not the physical lines, or the newline is missing
        assert "\0" in text or (text and not text.endswith("\n"))
        assert not unchanged or "\0" in text  # a missing final newline is always added
    else:
        assert says_unchanged(held, want) == unchanged


@pytest.mark.parametrize("text, held", [
    ("", {}),
    ("alice:100000:65536\nbob:300000:65536\n", {"alice": [[100000, 65536]], "bob": [[300000, 65536]]}),
    ("alice:100000:65536\nzed:1:2\nalice:165536:65536\n", {"alice": None}),
    ("2001:100000:65536\n", {"alice": None}),
    ("alice:100000:65536", None),  # edit_text adds the missing final newline, whatever the ranges
    ("alice:0100000:65536\n", {"alice": None}),
    ("alice:100000:65536\0\n", None),
])
def test_what_it_reports(text, held):
    assert written_ranges(text, ["alice", "bob"], aliases_of) == held
