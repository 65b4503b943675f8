"""The file store's index of a validated ledger text: lookups by owner, spliced writes,
and a memo that is only believed for the text it was made from."""

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from conftest import by_hand, sealed

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger
from ansible_collections.fleetid.subid.plugins.plugin_utils._file_index import LedgerIndex
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import AllocationError, Request, parse_owners, parse_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import _MEMO_MAGIC, FileStore
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Change, LedgerError
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate

FIRST = ledger.HEADER.count("\n") + 3  # the line of a rendered ledger's first block

POOL = parse_pool({"ranges": [{"start": 100000, "count": 600000000}], "block_size": 1000, "min_count": 1000})
TODAY = "2026-11-28"


def store_at(folder):
    return FileStore(str(folder / "ledger.yml"), lock_timeout=1, cache_dir=str(folder / "cache"))


def serve(folder, owners, host="h1", today=TODAY):
    """One host's call as the action plugin makes it: a new store each time."""
    return allocate(store_at(folder), POOL, parse_owners(owners, POOL), host, today)[1]


def entries(outcome):
    return {name: [(r.start, r.count) for r in ranges] for name, ranges in outcome.entries.items()}


def full_answer(folder, owners, host="h1"):
    """What a full parse of the ledger file says the call should return."""
    text = (folder / "ledger.yml").read_text()
    return entries(plan(ledger.parse(text), POOL, parse_owners(owners, POOL), host, TODAY))


def assert_index_is_the_texts(folder):
    """The memo holds exactly the index a full parse of the file builds."""
    store = store_at(folder)
    data = store.read_bytes()
    memo = store.validated_index(data)
    assert memo is not None, "no memo for the text just written"
    fresh = LedgerIndex.build(data.decode(), ledger.load(data.decode())[0])
    assert (list(memo.spans.starts), list(memo.spans.ends), list(memo.offsets), list(memo.by_owner),
            memo.first_line) == (list(fresh.spans.starts), list(fresh.spans.ends), list(fresh.offsets),
                                 list(fresh.by_owner), fresh.first_line)


def test_two_blocks_of_one_owner_and_host_blocks_are_found_after_spliced_writes(tmp_path):
    serve(tmp_path, ["alice", "bob", "carol"])
    serve(tmp_path, [{"name": "bob", "count": 2500}])  # grown: a second block
    serve(tmp_path, [{"name": "bob", "scope": "host"}, "dave"], host="h2")
    serve(tmp_path, ["erin", "aaron", "zoe"])  # new owners sorting before, between and after
    assert_index_is_the_texts(tmp_path)
    owners = ["bob", {"name": "bob", "scope": "host"}, "aaron", "zoe"]
    on_h2 = serve(tmp_path, owners, host="h2")
    assert not on_h2.changed
    assert entries(on_h2) == full_answer(tmp_path, owners, host="h2")
    assert entries(on_h2)["bob"] == [(101000, 1000), (103000, 1500), (105000, 1000)]
    on_h1 = serve(tmp_path, ["bob"])  # bob's host block belongs to h2 only
    assert entries(on_h1)["bob"] == [(101000, 1000), (103000, 1500)]


def test_an_owner_renamed_by_hand_is_found_under_the_new_name_only(tmp_path):
    serve(tmp_path, ["alice", "bob", "carol"])
    path = tmp_path / "ledger.yml"
    path.write_text(by_hand(path.read_text().replace('owner: "bob"', 'owner: "robert"')))
    assert entries(serve(tmp_path, ["robert"])) == {"robert": [(101000, 1000)]}
    moved = serve(tmp_path, ["bob"])
    assert moved.changed and entries(moved) == {"bob": [(103000, 1000)]}  # a new block, the old one is robert's
    assert_index_is_the_texts(tmp_path)


def test_a_hand_edit_that_breaks_the_ledger_is_refused_on_the_write_path_too(tmp_path):
    serve(tmp_path, ["alice", "bob", "carol"])
    path = tmp_path / "ledger.yml"
    path.write_text(by_hand(path.read_text().replace("start: 101000", "start: 100500")))
    before = path.read_text()
    with pytest.raises(LedgerError, match="blocks overlap: line %d: alice" % FIRST):
        serve(tmp_path, ["newcomer"])
    assert path.read_text() == before


def test_a_memo_of_another_text_is_never_believed(tmp_path):
    one, other = tmp_path / "one", tmp_path / "other"
    one.mkdir()
    other.mkdir()
    serve(one, ["alice", "bob", "carol"])
    serve(other, ["a", "bob-the-builder", {"name": "yves", "count": 3000}])  # other lines, other lengths
    # The other ledger's memo, whole, in place of ours: it holds the other text.
    store = store_at(one)
    (one / "cache").joinpath(store.memo_path.rsplit("/", 1)[1]).write_bytes(
        (other / "cache").joinpath(store_at(other).memo_path.rsplit("/", 1)[1]).read_bytes())
    assert store_at(one).validated_index(store.read_bytes()) is None
    assert entries(serve(one, ["alice", "bob", "carol"])) == full_answer(one, ["alice", "bob", "carol"])
    # The other text's index with our text: every line read through it is checked, so
    # the lie is noticed and the full path answers (and mends the memo).
    other_text = (other / "ledger.yml").read_text()
    forged = LedgerIndex.build(other_text, ledger.load(other_text)[0])
    memo = (one / "cache").joinpath(store.memo_path.rsplit("/", 1)[1])

    def forge():
        data = store_at(one).read_bytes()
        packed = forged.to_bytes()
        memo.write_bytes(_MEMO_MAGIC + len(packed).to_bytes(8, "little") + packed + data)
        assert store_at(one).validated_index(data) is not None  # believed to be this text's index...
        assert forged.owner_blocks(data, {"bob"}) is None  # ...but its lines do not fit the text

    forge()
    assert entries(serve(one, ["alice", "bob", "carol"])) == full_answer(one, ["alice", "bob", "carol"])
    forge()
    assert entries(serve(one, ["bob", "newcomer"])) == {"bob": [(101000, 1000)], "newcomer": [(103000, 1000)]}
    assert_index_is_the_texts(one)


def test_a_damaged_memo_is_ignored(tmp_path):
    serve(tmp_path, ["alice", "bob"])
    memo = tmp_path / "cache" / store_at(tmp_path).memo_path.rsplit("/", 1)[1]
    memo.write_bytes(memo.read_bytes()[:-5])
    assert store_at(tmp_path).validated_index(store_at(tmp_path).read_bytes()) is None
    assert entries(serve(tmp_path, ["carol"])) == {"carol": [(102000, 1000)]}
    assert_index_is_the_texts(tmp_path)


def test_a_ledger_with_a_header_of_its_own_is_rendered_whole_as_before(tmp_path):
    serve(tmp_path, ["alice"])
    path = tmp_path / "ledger.yml"
    path.write_text(by_hand("# our fleet\n" + path.read_text()))
    serve(tmp_path, ["bob"])
    assert path.read_text() == sealed(ledger.render(ledger.parse(path.read_text())))  # the standard header again
    assert [b.owner for b in ledger.parse(path.read_text())] == ["alice", "bob"]


def test_splice_refuses_an_overlap_and_a_change_to_a_line_that_is_not_there(tmp_path):
    serve(tmp_path, ["alice", "bob"])
    store = store_at(tmp_path)
    text = store.read_bytes()
    index = store.validated_index(text)
    rogue = ledger.Block("mallory", "fleet", 101500, 10, "active", TODAY, None, 0)
    with pytest.raises(LedgerError, match=r"new block: mallory .* overlaps line %d: bob" % (FIRST + 1)):
        index.splice(text, Change([rogue], [], []))
    wrong = ledger.Block("carol", "fleet", 101000, 1000, "quarantined", TODAY, TODAY, FIRST + 1)
    with pytest.raises(LedgerError, match="no line for line %d: carol" % (FIRST + 1)):
        index.splice(text, Change([], [wrong], []))
    bad_name = ledger.Block("no way", "fleet", 900000, 10, "active", TODAY, None, 0)
    with pytest.raises(LedgerError, match="the ledger's new lines refused, nothing was written"):
        index.splice(text, Change([bad_name], [], []))


def test_splice_into_a_reclaimed_blocks_ids_in_one_change(tmp_path):
    serve(tmp_path, ["alice", "bob", "carol"])
    serve(tmp_path, [{"name": "bob", "state": "released"}])
    outcome = serve(tmp_path, [{"name": "bob", "state": "reclaimed"}, "dave"])
    assert [b.start for b in outcome.reclaimed] == [101000] and entries(outcome) == {"dave": [(101000, 1000)]}
    assert [(b.owner, b.start) for b in ledger.parse((tmp_path / "ledger.yml").read_text())] == [
        ("alice", 100000), ("dave", 101000), ("carol", 102000)]
    assert_index_is_the_texts(tmp_path)


names = st.sampled_from(["alice", "bob", "carol", "dave", "kubelet", "dev@corp.example", "a", "zz"])
request_lists = st.lists(
    st.builds(Request, name=names, count=st.sampled_from([1, 1000, 2500, 65536]),
              scope=st.sampled_from(["fleet", "host"]),
              state=st.sampled_from(["present", "present", "present", "released", "reclaimed"])),
    max_size=5, unique_by=lambda r: (r.name, r.scope))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["h1", "h2"]), request_lists), min_size=1, max_size=8))
def test_spliced_writes_are_exactly_what_a_full_render_writes(tmp_path, calls):
    folder = tmp_path / str(time.monotonic_ns())
    folder.mkdir()
    path = folder / "ledger.yml"
    for host, reqs in calls:
        before = path.read_text() if path.exists() else None
        blocks = ledger.parse(before)
        try:
            expected = plan(blocks, POOL, reqs, host, TODAY)
        except AllocationError as exc:  # refused: the store must refuse it the same way, writing nothing
            with pytest.raises(AllocationError, match=re.escape(str(exc))):
                allocate(store_at(folder), POOL, reqs, host, TODAY)
            assert (path.read_text() if path.exists() else None) == before
            continue
        got = allocate(store_at(folder), POOL, reqs, host, TODAY)[1]
        assert got.entries == expected.entries and got.added == expected.added
        if expected.changed:
            assert path.read_text() == sealed(ledger.render(expected.blocks))
        if path.exists() and ledger.parse(path.read_text()):
            assert_index_is_the_texts(folder)
