"""The ledger text: canonical rendering, strict parsing, errors that name the lines."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Block, LedgerError


def block(owner, start, count=65536, scope="fleet", state="active", released=None):
    if state == "quarantined" and released is None:
        released = "2026-11-30"
    return Block(owner, scope, start, count, state, "2026-11-24", released, 0)


def strip_lines(blocks):
    return sorted(b._replace(line=0) for b in blocks)


# The first block line of render(SAMPLE): after the header, "version: 1" and "blocks:".
FIRST = ledger.HEADER.count("\n") + 3

SAMPLE = [
    block("alice", 100000),
    block("bob", 165536, 4194304),
    block("kubelet", 4359840, 7208960, scope="host:node1.example.com"),
    block("carol", 20000000, state="quarantined"),
]


def test_render_is_one_sorted_block_a_line():
    text = ledger.render(list(reversed(SAMPLE)))
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert lines == [
        '- {owner: "alice", scope: "fleet", start: 100000, count: 65536, state: active, allocated: 2026-11-24}',
        '- {owner: "bob", scope: "fleet", start: 165536, count: 4194304, state: active, allocated: 2026-11-24}',
        '- {owner: "kubelet", scope: "host:node1.example.com", start: 4359840, count: 7208960, '
        "state: active, allocated: 2026-11-24}",
        '- {owner: "carol", scope: "fleet", start: 20000000, count: 65536, state: quarantined, '
        "allocated: 2026-11-24, released: 2026-11-30}",
    ]


def test_round_trip_and_line_numbers():
    text = ledger.render(SAMPLE)
    parsed = ledger.parse(text)
    assert strip_lines(parsed) == strip_lines(SAMPLE)
    lines = text.splitlines()
    for b in parsed:
        assert '"%s"' % b.owner in lines[b.line - 1]


def test_canonical_text_is_valid_yaml_with_the_same_content():
    # The fast line parser and the YAML parser must agree on what render writes.
    text = ledger.render(SAMPLE)
    assert ledger._parse_canonical(text) is not None
    assert strip_lines(ledger._parse_yaml(text, "ledger")) == strip_lines(ledger.parse(text))


def test_empty_ledgers():
    assert ledger.parse(None) == []  # no file: no blocks yet
    assert ledger.parse(ledger.render([])) == []
    assert ledger.render([]).endswith("version: 1\nblocks: []\n")


@pytest.mark.parametrize("text", ["", "  \n\n", "# only a comment\n# and another\n", "---\n"])
def test_a_ledger_file_without_a_version_is_refused(text):
    # Read as "no blocks yet", the next run would hand out the pool's first IDs again.
    with pytest.raises(LedgerError, match=r"^inv/subid-ledger.yml line 1: the file holds no ledger"):
        ledger.parse(text, "inv/subid-ledger.yml")


@pytest.mark.parametrize(
    "text,message",
    [
        # Everything under the first 'blocks:' would be dropped: alice's IDs handed out again.
        ("version: 1\nblocks:\n- {owner: alice, scope: fleet, start: 100000, count: 65536, state: active, "
         "allocated: 2026-11-24}\nblocks:\n- {owner: bob, scope: fleet, start: 165536, count: 65536, "
         "state: active, allocated: 2026-11-24}\n",
         "L line 4: duplicate key 'blocks' (first at line 2)"),
        ("version: 1\nversion: 1\nblocks: []\n", "L line 2: duplicate key 'version' (first at line 1)"),
        ("version: 1\nblocks:\n- owner: alice\n  scope: fleet\n  start: 100000\n  count: 65536\n"
         "  state: active\n  allocated: 2026-11-24\n  start: 900000\n",
         "L line 9: duplicate key 'start' (first at line 5)"),
        ("version: 1\nblocks:\n- {owner: alice, scope: fleet, start: 100000, count: 65536, owner: bob, "
         "state: active, allocated: 2026-11-24}\n",
         "L line 3: duplicate key 'owner' (first at line 3)"),
    ],
)
def test_duplicate_keys_are_refused_naming_both_lines(text, message):
    with pytest.raises(LedgerError) as err:
        ledger.parse(text, "L")
    assert message in str(err.value)


@pytest.mark.parametrize(
    "edit,line",
    [
        (("start: 100000,", "start: \u0661\u0660\u0660\u0660\u0660\u0660,"), FIRST),  # Arabic-Indic 100000
        (("count: 65536, state: active, allocated: 2026-11-24}", "count: 6553\u00b2, state: active, "
          "allocated: 2026-11-24}"), FIRST),  # superscript two
        (("allocated: 2026-11-24}", "allocated: \uff12026-11-24}"), FIRST),  # fullwidth digit in a date
    ],
)
def test_numbers_and_dates_are_ascii_digits_only(edit, line):
    text = ledger.render(SAMPLE).replace(*edit, 1)
    assert text != ledger.render(SAMPLE)
    with pytest.raises(LedgerError, match=r"L(:| refused.*\n.*)? ?line %d: " % line):
        ledger.parse(text, "L")


@pytest.mark.parametrize(
    "text,line",
    [
        ("version: 1\n? [a, b]\n: 1\nblocks: []\n", 2),
        ("version: 1\nblocks:\n- {owner: alice, scope: fleet, start: 100000, count: 65536,\n"
         "   {x: 1}: 2, state: active, allocated: 2026-11-24}\n", 4),
        ("version: 1\nblocks:\n- owner: alice\n  ? [1]\n  : 2\n", 4),
    ],
)
def test_keys_that_are_not_plain_names_are_refused_with_their_line(text, line):
    with pytest.raises(LedgerError, match=r"^L line %d: " % line):
        ledger.parse(text, "L")


def test_hand_written_block_style_yaml_is_accepted():
    text = """version: 1
blocks:
  - owner: dave
    scope: fleet
    start: 300000
    count: 65536
    state: active
    allocated: 2026-01-02
  - {owner: dev@corp.example, scope: fleet, start: 400000, count: 10, state: active, allocated: 2026-01-02}
"""
    parsed = ledger.parse(text)
    assert [(b.owner, b.start, b.line) for b in parsed] == [("dave", 300000, 3), ("dev@corp.example", 400000, 9)]


def test_overlap_from_a_hand_edit_names_both_lines():
    text = ledger.render(SAMPLE).replace("start: 165536", "start: 150000")
    with pytest.raises(LedgerError) as err:
        ledger.parse(text, "inv/subid-ledger.yml")
    msg = str(err.value)
    assert "inv/subid-ledger.yml refused, nothing was written" in msg
    assert "blocks overlap: line %d: alice (fleet) 100000-165535 (65536 IDs) and line %d: bob (fleet) 150000-" % (FIRST, FIRST + 1) in msg


def test_syntax_error_names_the_line():
    text = ledger.render(SAMPLE).replace("count: 4194304,", "count: 4194304,,{")
    with pytest.raises(LedgerError, match=r"is not valid YAML at line %d" % (FIRST + 1)):
        ledger.parse(text)


@pytest.mark.parametrize(
    "edit,message",
    [
        (("state: active, allocated: 2026-11-24}", "state: gone, allocated: 2026-11-24}"),
         "line %d: state must be active or quarantined, got 'gone'" % FIRST),
        (('owner: "alice"', 'owner: "root:0:65536"'), "line %d: owner name 'root:0:65536' is not allowed" % FIRST),
        (('scope: "fleet"', 'scope: "world"'), "line %d: scope must be 'fleet' or 'host:NAME'" % FIRST),
        (("start: 100000,", "start: 0,"), r"line %d: 0-65535 \(65536 IDs\) leaves the ID space" % FIRST),
        (("count: 65536, state: active, allocated: 2026-11-24}", "count: 65536, state: active}"),
         "line %d: block is missing allocated" % FIRST),
        (("allocated: 2026-11-24}", "allocated: 2026-11-24, colour: red}"), "line %d: unknown field" % FIRST),
        (("start: 100000,", "start: 1e5,"), "line %d: start must be a whole number" % FIRST),
        (("released: 2026-11-30", "released: soon"), "line %d: released must be a date" % (FIRST + 3)),
        (("released: 2026-11-30", "released: 2026-13-45"), "line %d: released must be a date YYYY-MM-DD, not '2026-13-45'" % (FIRST + 3)),
        (("allocated: 2026-11-24}", "allocated: 2026-02-30}"), "line %d: allocated must be a date YYYY-MM-DD, not '2026-02-30'" % FIRST),
    ],
)
def test_bad_fields_are_refused_with_their_line(edit, message):
    text = ledger.render(SAMPLE).replace(*edit, 1)
    assert text != ledger.render(SAMPLE)
    with pytest.raises(LedgerError, match=message):
        ledger.parse(text)


def test_wrong_version_and_shape_are_refused():
    with pytest.raises(LedgerError, match="'version: 1' is required"):
        ledger.parse("version: 2\nblocks: []\n")
    with pytest.raises(LedgerError, match="'blocks' must be a list"):
        ledger.parse("version: 1\nblocks: {}\n")
    with pytest.raises(LedgerError, match="must be a mapping"):
        ledger.parse("- just a list\n")


LETTERS = "abcdefghijklmnopqrstuvwxyz"
owners = st.builds(lambda a, b: a + b, st.sampled_from(LETTERS + "_"),
                   st.text(LETTERS + "0123456789_.-", max_size=12))
scopes = st.one_of(st.just("fleet"), st.text(LETTERS + "0123456789.-", min_size=1, max_size=20).map(
    lambda h: "host:" + h))


@st.composite
def ledgers(draw):
    sizes = draw(st.lists(st.integers(1, 1 << 20), max_size=40))
    gaps = draw(st.lists(st.integers(0, 1 << 20), min_size=len(sizes), max_size=len(sizes)))
    blocks, start = [], 1000
    for size, gap in zip(sizes, gaps):
        start += gap
        state = draw(st.sampled_from(["active", "quarantined"]))
        blocks.append(block(draw(owners), start, size, scope=draw(scopes), state=state))
        start += size
    return blocks


@given(ledgers())
def test_any_valid_ledger_round_trips_through_both_parsers(blocks):
    text = ledger.render(blocks)
    assert strip_lines(ledger.parse(text)) == strip_lines(blocks)
    assert strip_lines(ledger._parse_yaml(text, "ledger")) == strip_lines(blocks)
    assert ledger.render(ledger.parse(text)) == text


def test_a_ledger_with_many_problems_names_the_first_fifty_and_counts_the_rest():
    blocks = [ledger.Block("u%04d" % i, "fleet", 100000 + i * 10, 1000, "active", "2026-12-07", None, None)
              for i in range(200)]
    with pytest.raises(LedgerError) as refused:
        ledger.validate(blocks, "the ledger")
    lines = str(refused.value).splitlines()
    assert lines[0] == "the ledger refused, nothing was written:"
    assert len(lines) == 52 and lines[1].startswith("  blocks overlap: ") and lines[-1] == "  and 149 more problems"
