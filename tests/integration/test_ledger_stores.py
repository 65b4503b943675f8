"""One contract, two stores: the ledger service gives the same results on the YAML file
store and on a real PostgreSQL server (started by the tests), and each store keeps its
own promises (the file's memo, the database's constraints, check mode, secrets)."""

import os
import random
import subprocess
import sys

import pytest
from conftest import sealed

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as service
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import (
    AllocationError,
    parse_owners,
    parse_pool,
)
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Block, LedgerError, render
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import ID_LIMIT, find_overlaps

POOL = parse_pool({"ranges": [{"start": 100000, "count": 600000000}]})
SMALL_COUNTS = parse_pool({"ranges": [{"start": 100000, "count": 600000000}], "min_count": 1000})
TODAY = "2026-11-28"
LATER = "2026-12-01"


@pytest.fixture(params=["file", "postgresql"])
def location(request, tmp_path):
    if request.param == "file":
        return str(tmp_path / "subid-ledger.yml")
    return request.getfixturevalue("pg_ledger")


def run(location, owners, host="h1", pool=POOL, today=TODAY, check_mode=False):
    with service.open_ledger(location, lock_timeout=5, check_mode=check_mode) as store:
        return service.allocate(store, pool, parse_owners(owners, pool), host, today, check_mode)[1]


def state(location):
    with service.open_ledger(location, check_mode=True) as store:
        return [(b.owner, b.scope, b.start, b.count, b.state, b.allocated, b.released)
                for b in service.blocks_of(store)]


def entries(outcome):
    return {name: [(r.start, r.count) for r in ranges] for name, ranges in outcome.entries.items()}


def test_first_fit_aligned_then_converged(location):
    first = run(location, ["carol", "alice", "bob"])
    assert first.changed
    assert entries(first) == {"carol": [(231072, 65536)], "alice": [(100000, 65536)], "bob": [(165536, 65536)]}
    again = run(location, ["alice", "bob", "carol"], host="h2")
    assert not again.changed
    assert entries(again) == {"alice": [(100000, 65536)], "bob": [(165536, 65536)], "carol": [(231072, 65536)]}
    assert [b[:5] for b in state(location)] == [
        ("alice", "fleet", 100000, 65536, "active"),
        ("bob", "fleet", 165536, 65536, "active"),
        ("carol", "fleet", 231072, 65536, "active")]


def test_blocks_are_sticky_and_growth_adds_a_block(location):
    run(location, ["alice", "bob"])
    grown = run(location, [{"name": "alice", "count": 200000}, "bob"])
    assert [(b.start, b.count) for b in grown.added] == [(231072, 134464)]
    assert entries(grown)["alice"] == [(100000, 65536), (231072, 134464)]
    shrunk = run(location, [{"name": "alice", "count": 65536}, "bob"])
    assert not shrunk.changed and entries(shrunk)["alice"] == [(100000, 65536), (231072, 134464)]


def test_host_scope_and_the_kubelet_rules(location):
    pool = parse_pool({"ranges": [{"start": 100000, "count": 600000000}], "block_size": 10000, "min_count": 10000})
    run(location, ["alice"], pool=pool)
    k1 = run(location, ["alice", {"name": "kubelet", "scope": "host", "count": 131072}], host="node1", pool=pool)
    k2 = run(location, ["alice", {"name": "kubelet", "scope": "host", "count": 131072}], host="node2", pool=pool)
    assert entries(k1)["kubelet"] == [(131072, 131072)]  # multiples of 65536 counted from 0
    assert entries(k2)["kubelet"] == [(262144, 131072)]
    with pytest.raises(AllocationError, match="not grown"):
        run(location, [{"name": "kubelet", "scope": "host", "count": 196608}], host="node1", pool=pool)
    assert [b[:4] for b in state(location)][1:] == [
        ("kubelet", "host:node1", 131072, 131072), ("kubelet", "host:node2", 262144, 131072)]


def view(location, names, pool=POOL):
    with service.open_ledger(location, check_mode=True) as store:
        return store.view(set(names), pool, free=True), service.blocks_of(store)


def test_a_view_holds_the_owners_blocks_and_exactly_the_free_ids(location):
    assert view(location, ["alice"])[0].free == [(0, ID_LIMIT)]  # no ledger yet
    run(location, ["alice"])
    run(location, [{"name": "alice", "state": "released"}], today=LATER)
    run(location, [{"name": "alice", "state": "reclaimed"}])
    assert view(location, ["alice"])[0].free == [(0, ID_LIMIT)]  # a ledger without blocks
    small = parse_pool({"ranges": [{"start": 100000, "count": 600000000}], "min_count": 1000})
    run(location, ["alice", "bob", "carol", "dave", {"name": "erin", "count": 1000}], pool=small)
    run(location, [{"name": "bob", "state": "released"}, {"name": "dave", "state": "released"}], today=LATER)
    run(location, [{"name": "bob", "state": "reclaimed"}])
    run(location, ["frank", {"name": "gus", "scope": "host"}], host="h2")
    seen, blocks = view(location, ["alice", "gus", "dave", "nobody"])
    assert seen.free == [(0, 100000), (363144, 427680), (493216, ID_LIMIT)]
    edges = [(0, 0)] + [(b.start, b.end) for b in blocks] + [(ID_LIMIT, ID_LIMIT)]
    assert seen.free == [(a[1], b[0]) for a, b in zip(edges, edges[1:]) if b[0] > a[1]]
    assert [(b.owner, b.scope, b.start, b.state) for b in seen.blocks] == [
        ("alice", "fleet", 100000, "active"), ("dave", "fleet", 296608, "quarantined"),
        ("gus", "host:h2", 427680, "active")]
    reserved = parse_pool({"ranges": [{"start": 100000, "count": 600000000}],
                           "reserved": [{"start": 363000, "count": 200}]})
    assert view(location, ["alice"], pool=reserved)[0] is None  # erin's block is reserved now: the full path names it


def test_reserved_ranges_and_floor_are_never_handed_out(location):
    pool = parse_pool({"ranges": [{"start": 600, "count": 1000000}], "floor": 600, "block_size": 1000, "min_count": 1000,
                       "reserved": [{"start": 1600, "count": 2000}]})
    out = run(location, ["a", "b", "c"], pool=pool)
    assert entries(out) == {"a": [(600, 1000)], "b": [(3600, 1000)], "c": [(4600, 1000)]}
    later = parse_pool({"ranges": [{"start": 600, "count": 1000000}], "floor": 600, "block_size": 1000, "min_count": 1000,
                        "reserved": [{"start": 1600, "count": 2000}, {"start": 4000, "count": 10}]})
    with pytest.raises(AllocationError, match=r"b \(fleet\) 3600-4599 \(1000 IDs\) overlaps the reserved range 4000-4009"):
        run(location, ["a", "b"], pool=later)


def test_release_quarantines_reclaim_frees_and_reactivated_takes_back(location):
    run(location, ["alice", "bob"])
    released = run(location, ["bob", {"name": "alice", "state": "released"}], today=LATER)
    assert [(b.owner, b.state, b.released) for b in released.released] == [("alice", "quarantined", LATER)]
    newcomer = run(location, ["carol"])
    assert entries(newcomer)["carol"] == [(231072, 65536)]  # the quarantined block stays taken
    held = run(location, ["alice"])  # still listed after the release: held, nothing written
    assert not held.changed and [owner for owner, scope, blocks in held.held] == ["alice"]
    back = run(location, [{"name": "alice", "state": "reactivated"}])
    assert [(b.owner, b.state) for b in back.reactivated] == [("alice", "active")]
    run(location, [{"name": "alice", "state": "released"}], today=LATER)
    with pytest.raises(AllocationError, match="release it before reclaiming"):
        run(location, [{"name": "bob", "state": "reclaimed"}])
    gone = run(location, [{"name": "alice", "state": "reclaimed"}])
    assert [b.owner for b in gone.reclaimed] == ["alice"]
    assert entries(run(location, ["dave"]))["dave"] == [(100000, 65536)]


def test_check_mode_predicts_and_writes_nothing(location, tmp_path):
    predicted = run(location, ["alice", "bob"], check_mode=True)
    assert predicted.changed and entries(predicted)["bob"] == [(165536, 65536)]
    assert state(location) == []
    run(location, ["alice"])
    before = state(location)
    assert run(location, [{"name": "alice", "state": "released"}], check_mode=True).changed
    assert state(location) == before


def test_a_writer_that_lost_the_race_plans_again(location):
    """The plan is made without the lock; another controller commits before the lock is
    taken; the loser plans again against the new ledger and both blocks survive."""
    run(location, ["alice"])
    requests = parse_owners(["bob"], POOL)
    calls = []

    def decide(blocks):
        if not calls:  # first plan: now another controller allocates zed
            run(location, ["zed"], host="other")
        calls.append(len(blocks))
        outcome = service.plan(blocks, POOL, requests, "h1", TODAY)
        return outcome, outcome.blocks, service.plan_change(outcome)

    with service.open_ledger(location, lock_timeout=5) as store:
        service.apply(store, decide)
    assert calls == [1, 2]
    assert [b[:3] for b in state(location)] == [("alice", "fleet", 100000), ("zed", "fleet", 165536),
                                                ("bob", "fleet", 231072)]


def test_both_stores_give_the_same_results_for_the_same_requests(tmp_path, pg_ledger):
    rng = random.Random(20261128)
    names = ["u%02d" % i for i in range(30)] + ["kubelet", "containers"]
    file_ledger = str(tmp_path / "l.yml")
    for step in range(60):
        host = "h%d" % rng.randrange(4)
        owners = []
        for name in rng.sample(names, rng.randrange(1, 8)):
            if name == "kubelet":
                owners.append({"name": name, "scope": "host", "count": 65536 * rng.choice([1, 2])})
            elif name == "containers":
                owners.append({"name": name, "scope": "host", "count": 65536})
            else:
                owners.append({"name": name, "count": rng.choice([1000, 65536, 70000]),
                               "state": rng.choice(["present"] * 6 + ["released", "reclaimed"])})
        outcomes = []
        for where in (file_ledger, pg_ledger):
            try:
                outcomes.append(("ok", entries(run(where, owners, host=host, pool=SMALL_COUNTS,
                                                   today="2026-11-%02d" % (1 + step % 28)))))
            except AllocationError as exc:
                outcomes.append(("refused", str(exc)))
        assert outcomes[0] == outcomes[1], (step, owners)
        assert state(file_ledger) == state(pg_ledger), step
    assert len(state(pg_ledger)) > 20
    assert not find_overlaps(state(pg_ledger), key=lambda b: Block(*b, 0).range)


def test_ledger_copy_import_again_refuse_and_export(tmp_path, pg_ledger):
    file_ledger = str(tmp_path / "subid-ledger.yml")
    run(file_ledger, ["alice", "bob", {"name": "kubelet", "scope": "host", "count": 65536}])
    run(file_ledger, [{"name": "bob", "state": "released"}], today=LATER)
    with service.open_ledger(file_ledger) as src, service.open_ledger(pg_ledger) as dest:
        copied, changed = service.copy(src, dest, check_mode=True)
    assert changed and len(copied) == 3 and state(pg_ledger) == []
    with service.open_ledger(file_ledger) as src, service.open_ledger(pg_ledger) as dest:
        assert service.copy(src, dest)[1] is True
    assert state(pg_ledger) == state(file_ledger)
    with service.open_ledger(file_ledger) as src, service.open_ledger(pg_ledger) as dest:
        assert service.copy(src, dest)[1] is False  # copying again changes nothing

    run(pg_ledger, ["carol"])  # the database moves on
    with pytest.raises(LedgerError) as refused:
        with service.open_ledger(file_ledger) as src, service.open_ledger(pg_ledger) as dest:
            service.copy(src, dest)
    assert "only in the destination: block: carol (fleet) 362144-427679 (65536 IDs), active" in str(refused.value)

    export = tmp_path / "export.yml"
    with service.open_ledger(pg_ledger) as src, service.open_ledger(str(export)) as dest:
        assert service.copy(src, dest)[1] is True
    assert state(str(export)) == state(pg_ledger)
    with service.open_ledger(str(export), check_mode=True) as store:
        assert export.read_text() == sealed(render(service.blocks_of(store)))
    run(pg_ledger, ["dave"])
    with pytest.raises(LedgerError, match="only in the source: block: dave"):
        with service.open_ledger(pg_ledger) as src, service.open_ledger(str(export)) as dest:
            service.copy(src, dest)
    with service.open_ledger(pg_ledger) as src, service.open_ledger(str(export)) as dest:
        assert service.copy(src, dest, replace=True)[1] is True
    assert state(str(export)) == state(pg_ledger)


# PostgreSQL only: what the database itself enforces, and how failures read.


def test_the_database_refuses_an_overlapping_insert_and_root(postgres, pg_ledger):
    run(pg_ledger, ["alice"])
    database = pg_ledger.rsplit("/", 1)[1]
    with pytest.raises(RuntimeError, match="blocks_never_overlap"):
        postgres.sql(database, "INSERT INTO fleetid_subid.blocks (owner, scope, ids, state, allocated) "
                               "VALUES ('mallory', 'fleet', int8range(165000, 170000), 'active', now())")
    with pytest.raises(RuntimeError, match="violates check constraint"):
        postgres.sql(database, "INSERT INTO fleetid_subid.blocks (owner, scope, ids, state, allocated) "
                               "VALUES ('mallory', 'fleet', int8range(0, 65536), 'active', now())")
    with pytest.raises(RuntimeError, match="violates check constraint"):
        postgres.sql(database, "INSERT INTO fleetid_subid.blocks (owner, scope, ids, state, allocated) "
                               "VALUES ('mallory', 'fleet', int8range(4294900000, 4294967297), 'active', now())")
    assert [b[0] for b in state(pg_ledger)] == ["alice"]


def test_check_mode_on_a_new_database_creates_nothing(postgres, pg_ledger):
    run(pg_ledger, ["alice"], check_mode=True)
    database = pg_ledger.rsplit("/", 1)[1]
    assert postgres.sql(database, "SELECT to_regnamespace('fleetid_subid') IS NULL") == ["t"]


def test_a_newer_schema_is_refused(postgres, pg_ledger):
    run(pg_ledger, ["alice"])
    postgres.sql(pg_ledger.rsplit("/", 1)[1], "UPDATE fleetid_subid.meta SET schema_version = 7")
    with pytest.raises(LedgerError, match="has schema version 7; this collection knows up to 2"):
        run(pg_ledger, ["alice"])


def test_a_wrong_password_or_no_server_fails_clearly_without_the_password(postgres, pg_ledger):
    database = pg_ledger.rsplit("/", 1)[1]
    wrong = postgres.uri(database, password="Not-the-Pw-4711")
    with pytest.raises(LedgerError) as failed:
        run(wrong, ["alice"])
    message = str(failed.value)
    assert "password authentication failed" in message
    assert "Not-the-Pw-4711" not in message and "postgresql://fleetid@127.0.0.1:%d/%s" % (postgres.port, database) in message
    closed = "postgresql://fleetid:Not-the-Pw-4711@127.0.0.1:1/x?connect_timeout=2"
    with pytest.raises(LedgerError, match="cannot connect") as failed:
        run(closed, ["alice"])
    assert "Not-the-Pw-4711" not in str(failed.value)


def test_libpq_credentials_from_pgpassfile(postgres, pg_ledger, tmp_path, monkeypatch):
    from pg_server import PASSWORD, ROLE

    database = pg_ledger.rsplit("/", 1)[1]
    passfile = tmp_path / "pgpass"
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    passfile.write_text("127.0.0.1:%d:%s:%s:%s\n" % (postgres.port, database, ROLE, escaped))
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    no_password = postgres.uri(database, password=None)
    assert entries(run(no_password, ["alice"])) == {"alice": [(100000, 65536)]}


def test_without_the_driver_a_uri_names_the_package(pg_ledger):
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger_service as s\n"
        "try:\n"
        "    with s.open_ledger(sys.argv[1]) as store: pass\n"
        "except s.LedgerError as exc: print(exc)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code, pg_ledger], capture_output=True, text=True, env=env, check=True)
    assert "needs the Python package psycopg (version 3)" in out.stdout and "pip install 'psycopg[binary]'" in out.stdout


def test_adoption_records_agreeing_entries_on_either_store(location):
    def info(entries):
        rows = [{"owner": o, "start": s, "count": c, "line": i + 1} for i, (o, s, c) in enumerate(entries)]
        return {"subuid": rows, "subgid": [dict(r) for r in rows], "findings": []}

    run(location, ["zed"])  # zed: 100000+65536
    hosts = {"h1": info([("alice", 300000, 65536), ("bob", 120000, 10)]), "h2": info([("alice", 300000, 65536)])}
    with service.open_ledger(location, check_mode=True) as store:
        predicted = service.adopt(store, POOL, hosts, [], TODAY, check_mode=True)
    assert [b.owner for b in predicted["adopt"]] == ["alice"] and state(location)[1:] == []
    with service.open_ledger(location) as store:
        decision = service.adopt(store, POOL, hosts, [], TODAY)
    assert decision["held"] == ["bob"] and "overlaps zed's block" in decision["conflicts"][0]["message"]
    assert [b[:4] for b in state(location)] == [("zed", "fleet", 100000, 65536), ("alice", "fleet", 300000, 65536)]
    with service.open_ledger(location) as store:
        assert service.adopt(store, POOL, hosts, [], TODAY)["adopt"] == []  # recorded once


def test_check_mode_leaves_no_memo_behind(tmp_path):
    location = str(tmp_path / "subid-ledger.yml")
    run(location, ["alice"])
    memo_dir = tmp_path / "memo"
    with service.open_ledger(location, check_mode=True, cache_dir=str(memo_dir)) as store:
        service.allocate(store, POOL, parse_owners(["alice", "bob"], POOL), "h1", TODAY, check_mode=True)
    assert not memo_dir.exists()
    with service.open_ledger(location, cache_dir=str(memo_dir)) as store:
        service.allocate(store, POOL, parse_owners(["alice"], POOL), "h1", TODAY)
    assert len(list(memo_dir.iterdir())) == 1  # a real run does remember the validated ledger


def test_a_refused_commit_is_surfaced_as_a_bug_and_writes_nothing(pg_ledger):
    """Should a plan ever propose an overlap, the database refuses it and the caller hears so."""
    from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Change

    run(pg_ledger, ["alice"])
    before = state(pg_ledger)
    rogue = Block("mallory", "fleet", 130000, 10, "active", TODAY, None, 0)
    fine = Block("bob", "fleet", 900000, 10, "active", TODAY, None, 0)
    with pytest.raises(LedgerError, match="the database refused the change \\(a bug: please report it\\); "
                                          "nothing was written.*blocks_never_overlap"):
        with service.open_ledger(pg_ledger) as store, store.transaction() as txn:
            txn.commit([], [], Change([fine, rogue], [], []))
    assert state(pg_ledger) == before


def test_lock_timeout_inf_waits_without_limit_and_a_timeout_that_is_no_number_is_refused(location):
    with service.open_ledger(location, lock_timeout=float("inf")) as store:
        outcome = service.allocate(store, POOL, parse_owners(["alice"], POOL), "h1", TODAY)[1]
    assert entries(outcome) == {"alice": [(100000, 65536)]}
    for bad in (float("nan"), -1, "60", True):
        with pytest.raises(LedgerError, match=r"lock_timeout must be a number of seconds, 0 or more .*not "):
            with service.open_ledger(location, lock_timeout=bad):
                pass
    assert [b[0] for b in state(location)] == ["alice"]


def test_a_fully_qualified_sssd_name_is_an_owner_on_either_store(location):
    assert entries(run(location, ["dev@corp.example", "alice"])) == {
        "alice": [(100000, 65536)], "dev@corp.example": [(165536, 65536)]}
    assert [b[0] for b in state(location)] == ["alice", "dev@corp.example"]


def test_the_database_refuses_an_owner_of_digits_or_an_odd_name(postgres, pg_ledger):
    run(pg_ledger, ["alice"])  # creates the schema, at its latest version
    database = pg_ledger.rsplit("/", 1)[1]
    for owner in ("2001", "John Smith", "a@"):
        with pytest.raises(RuntimeError, match="blocks_owner_check"):
            postgres.sql(database, "INSERT INTO fleetid_subid.blocks (owner, scope, ids, state, allocated) "
                                   "VALUES ('%s', 'fleet', int8range(900000, 900010), 'active', now())" % owner)
    assert [b[0] for b in state(pg_ledger)] == ["alice"]


def test_a_dropped_constraint_stops_every_write_and_every_read_checks_the_rows(postgres, pg_ledger, tmp_path):
    """The login role owns the table, so it can drop the exclusion constraint and insert an
    overlapping row: the store notices on open, writes nothing, and no reader trusts the rows."""
    overlap = r"blocks overlap: block: alice \(fleet\) 100000-165535 .* and block: mallory \(fleet\) 150000-159999"
    run(pg_ledger, ["alice"])
    database = pg_ledger.rsplit("/", 1)[1]
    postgres.sql(database, "SET ROLE fleetid; ALTER TABLE fleetid_subid.blocks DROP CONSTRAINT blocks_never_overlap")
    with pytest.raises(LedgerError, match=r"refused, nothing was written: .*constraint blocks_never_overlap is missing"):
        run(pg_ledger, ["bob"])
    assert [b[0] for b in state(pg_ledger)] == ["alice"]  # no overlap yet: the rows still read
    postgres.sql(database, "INSERT INTO fleetid_subid.blocks (owner, scope, ids, state, allocated) "
                           "VALUES ('mallory', 'fleet', int8range(150000, 160000), 'active', now())")
    for reader in (lambda: state(pg_ledger), lambda: run(pg_ledger, ["alice"], check_mode=True)):
        with pytest.raises(LedgerError, match=overlap):
            reader()
    export = tmp_path / "export.yml"
    with service.open_ledger(pg_ledger, check_mode=True) as source, service.open_ledger(str(export)) as dest:
        with pytest.raises(LedgerError, match=overlap):
            service.copy(source, dest, replace=True)
    assert not export.exists()


def test_a_database_of_an_older_schema_is_read_as_it_is_and_migrated_by_the_next_write(postgres, pg_ledger):
    run(pg_ledger, ["alice"])
    database = pg_ledger.rsplit("/", 1)[1]
    postgres.sql(database, "UPDATE fleetid_subid.meta SET schema_version = 1")
    # Check mode, the audit and ledger_info never migrate: they still see every block.
    assert [b[0] for b in state(pg_ledger)] == ["alice"]
    assert entries(run(pg_ledger, ["alice", "bob"], check_mode=True)) == {
        "alice": [(100000, 65536)], "bob": [(165536, 65536)]}
    assert postgres.sql(database, "SELECT schema_version FROM fleetid_subid.meta") == ["1"]
    run(pg_ledger, ["bob"])
    assert postgres.sql(database, "SELECT schema_version FROM fleetid_subid.meta") == ["2"]
    assert [b[0] for b in state(pg_ledger)] == ["alice", "bob"]


def test_a_block_reclaimed_and_given_again_in_one_call(location):
    """The reclaimed rows go before the new ones: the database's overlap guard sees no clash."""
    run(location, ["alice"])
    run(location, [{"name": "alice", "state": "released"}], today=LATER)
    both = run(location, [{"name": "alice", "state": "reclaimed"}, "bob"])
    assert [b.owner for b in both.reclaimed] == ["alice"] and entries(both)["bob"] == [(100000, 65536)]
