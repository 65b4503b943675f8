"""The controller-side store: atomic writes, the lock, and the memo of validated text."""

import os
import threading
import time
import urllib.parse

import pytest
from allocation_model import expected_refusal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate
from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import (
    AllocationError,
    Request,
    parse_owners,
    parse_pool,
    plan,
    pool_admits,
)
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import LedgerError, SpanIndex
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import LedgerLockTimeout, FileStore
from ansible_collections.fleetid.subid.plugins.plugin_utils.pg_store import MALFORMED, PostgresStore, redact

POOL = parse_pool({"ranges": [{"start": 100000, "count": 600000000}]})
TODAY = "2026-11-24"


def seeded(tmp_path, owners=("alice", "bob", "carol")):
    store = FileStore(str(tmp_path / "ledger.yml"), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    allocate(store, POOL, parse_owners(list(owners), POOL), "h1", TODAY)
    return store


def test_write_is_atomic_keeps_mode_and_leaves_no_temp_files(tmp_path):
    store = seeded(tmp_path)
    os.chmod(store.path, 0o640)
    store.write("version: 1\nblocks: []\n")
    assert oct(os.stat(store.path).st_mode & 0o777) == "0o640"
    assert sorted(os.listdir(tmp_path)) == ["cache", "ledger.yml", "ledger.yml.lock"]


def test_memo_recognises_only_the_exact_text(tmp_path):
    store = seeded(tmp_path)
    data = store.read_bytes()
    index = FileStore(store.path, cache_dir=store.memo_path.rsplit("/", 1)[0]).validated_index(data)
    assert index is not None
    assert list(index.spans.starts) == [100000, 165536, 231072]
    assert list(index.spans.ends) == [165536, 231072, 296608]
    fresh = FileStore(store.path, cache_dir=store.memo_path.rsplit("/", 1)[0])  # nothing known in-process
    assert fresh.validated_index(data.replace(b"165536", b"165537")) is None
    assert fresh.validated_index(data + b"\n") is None
    assert fresh.validated_index(data[:-1] + b"}") is None  # same length, last byte differs
    assert fresh.validated_index(data) is not None


def test_hand_edit_after_a_memo_is_still_validated_in_full(tmp_path):
    store = seeded(tmp_path)
    edited = store.read().replace("start: 165536", "start: 165000")
    with open(store.path, "w") as handle:
        handle.write(edited + "# end: accept my edit\n")  # a hand edit made on purpose
    with pytest.raises(LedgerError, match="blocks overlap: line %d: alice" % (ledger.HEADER.count("\n") + 3)):
        allocate(store, POOL, parse_owners(["alice"], POOL), "h1", TODAY)


def test_a_new_reserved_range_is_caught_on_the_quick_path_too(tmp_path):
    store = seeded(tmp_path)
    pool = parse_pool({"ranges": [{"start": 100000, "count": 600000000}],
                       "reserved": [{"start": 200000, "count": 1}]})
    assert not pool_admits(store.validated_index(store.read_bytes()).spans, pool)
    with pytest.raises(AllocationError, match=r"bob \(fleet\) 165536-231071 .* overlaps the reserved range 200000-200000"):
        allocate(store, pool, parse_owners(["alice"], pool), "h1", TODAY)


def test_span_index_touches():
    spans = SpanIndex([10, 30], [20, 40])
    assert [spans.touches(s, e) for s, e in [(0, 10), (0, 11), (19, 30), (20, 30), (39, 50), (40, 50)]] == [
        False, True, True, False, True, False]


def test_owner_blocks_finds_every_line_of_an_owner_and_no_prefix_match(tmp_path):
    store = seeded(tmp_path, owners=("al", "alice", {"name": "al", "scope": "host"}))
    data = store.read_bytes()
    found = store.validated_index(data).owner_blocks(data, {"al"})
    first = ledger.HEADER.count("\n") + 3  # the first block line
    assert sorted((b.scope, b.start, b.line) for b in found) == [("fleet", 100000, first), ("host:h1", 165536, first + 1)]


class WriterComesFirst(FileStore):
    """A store where another controller writes ``theirs`` just before our lock is granted:
    the moment between the lock-free plan and the locked write."""

    def __init__(self, path, theirs, **kwargs):
        super().__init__(path, **kwargs)
        self.theirs = theirs

    def locked(self):
        if self.theirs is not None:
            self.write(self.theirs)
            self.theirs = None
        return super().locked()


def test_a_ledger_changed_before_the_lock_is_planned_again(tmp_path):
    store = seeded(tmp_path)
    blocks = ledger.load(store.read(), store.path)[0]
    theirs = plan(blocks, POOL, parse_owners(["zed"], POOL), "h2", TODAY).blocks
    racing = WriterComesFirst(store.path, ledger.render(theirs), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    before, outcome = allocate(racing, POOL, parse_owners(["dave"], POOL), "h1", TODAY)
    written = {b.owner: (b.start, b.count) for b in ledger.load(store.read(), store.path)[0]}
    assert sorted(written) == ["alice", "bob", "carol", "dave", "zed"]  # zed's block was not lost
    assert written["dave"] != written["zed"] and outcome.entries["dave"][0].start == written["dave"][0]


def test_lock_is_exclusive_and_times_out_with_the_holder(tmp_path):
    store = seeded(tmp_path)
    other = FileStore(store.path, lock_timeout=0.3)
    inside = threading.Event()
    release = threading.Event()

    def hold():
        with store.locked():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(5)
    started = time.monotonic()
    # flock locks belong to open file descriptions, so a second open in one process
    # conflicts like a second process would.
    with pytest.raises(LedgerLockTimeout, match=r"within 0.3s: .*ledger.yml.lock is held by pid %d" % os.getpid()):
        with other.locked():
            pass
    assert time.monotonic() - started >= 0.3
    release.set()
    thread.join()
    with other.locked():
        pass


names = st.sampled_from(["alice", "bob", "carol", "dave", "kubelet", "dev@corp.example"])
request_lists = st.lists(
    st.builds(Request, name=names, count=st.sampled_from([1, 65536, 131072]),
              scope=st.sampled_from(["fleet", "host"]),
              state=st.sampled_from(["present", "present", "released", "reclaimed"])),
    max_size=5, unique_by=lambda r: (r.name, r.scope))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["h1", "h2"]), request_lists), max_size=6))
def test_quick_path_answers_exactly_like_a_full_parse(tmp_path, calls):
    folder = tmp_path / str(time.monotonic_ns())
    folder.mkdir()
    store = FileStore(str(folder / "ledger.yml"), cache_dir=str(folder / "cache"))
    for host, reqs in calls:
        text = store.read()
        refusal = expected_refusal(ledger.parse(text), POOL, reqs, host)
        event("refused" if refusal else "served")
        if refusal:  # reclaim before release, a kubelet grown: refused, nothing written
            with pytest.raises(AllocationError, match=refusal):
                allocate(store, POOL, reqs, host, TODAY)
            assert store.read() == text
            continue
        allocate(store, POOL, reqs, host, TODAY)
        assert not plan(ledger.parse(store.read()), POOL, reqs, host, TODAY).changed
        quick = allocate(store, POOL, [r for r in reqs if r.state == "present"], host, TODAY)[1]
        assert not quick.changed
        assert quick.entries == plan(ledger.parse(store.read()), POOL,
                                     [r for r in reqs if r.state == "present"], host, TODAY).entries


@pytest.mark.parametrize("reserved", ["/", "?", "#", "@"])
def test_a_uri_whose_password_holds_an_unencoded_reserved_character_is_refused_unshown(reserved):
    # libpq and Python's urlsplit then end the password at different places, so whatever
    # either takes for the host, port or path may be part of the password.
    uri = "postgresql://fleetid:Head-Pw%sTail-Pw@db.example:5432/ledger?sslmode=require" % reserved
    assert redact(uri) == MALFORMED
    with pytest.raises(LedgerError) as refused:
        PostgresStore(uri)
    message = str(refused.value)
    assert "malformed" in message and "percent-encoded" in message and "%40" in message
    for piece in ("Head-Pw", "Tail-Pw", "db.example", "fleetid:"):
        assert piece not in message
    encoded = "postgresql://fleetid:Head-Pw%sTail-Pw@db.example:5432/ledger?sslmode=require" % (
        urllib.parse.quote(reserved, safe=""))
    assert redact(encoded) == "postgresql://fleetid@db.example:5432/ledger?sslmode=require"


@pytest.mark.parametrize("uri,shown", [
    ("postgresql://fleetid:a:b@db/ledger", "postgresql://fleetid@db/ledger"),  # ':' is fine in a password
    ("postgresql://db/ledger?user=me%40corp&password=Query-Pw", "postgresql://db/ledger?user=me%40corp"),
    ("postgresql:///ledger?host=/run/postgresql", "postgresql:///ledger?host=%2Frun%2Fpostgresql"),
    ("postgresql://fleetid:pw@db:port/ledger", MALFORMED),  # not a port: a password cut short?
    ("postgresql://fleetid:pw@[::1/ledger", MALFORMED),
])
def test_redact_shows_the_uri_without_any_password(uri, shown):
    assert redact(uri) == shown
