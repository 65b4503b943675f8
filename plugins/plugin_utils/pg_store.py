# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger in PostgreSQL, for fleets run from many controllers (AWX/AAP, CI, admins).

The database itself keeps the invariants, whoever writes: every block is an
``int8range`` under an exclusion constraint, so PostgreSQL refuses two blocks that share
an ID, and checks refuse ID 0 and anything past 2^32. Writers serialise on a
transaction-level advisory lock, so two controllers never plan against the same free
space; a generation counter, bumped by every commit, tells a writer whether the ledger
moved since it planned.

The schema lives in its own schema ``fleetid_subid`` (one ledger per database), is
created on first use and migrated in a transaction, and records its version. A store
opened read-only (check mode) never creates or changes anything: a database without
the schema reads as an empty ledger.

Credentials come from the URI or from libpq's own sources (``PGPASSWORD``,
``PGPASSFILE``/``~/.pgpass``, ``PGSERVICE``); the password never appears in
``location`` or in any message.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import math
import os
import socket
import urllib.parse

from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import LedgerLockTimeout
from ansible_collections.fleetid.subid.plugins.module_utils.ranges import ID_LIMIT
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Block, LedgerError, Snapshot, View, validate

SCHEMA_VERSION = 2
# One advisory lock key for every writer of the ledger (and for the first-use migration).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"fleetid.subid ledger").digest()[:8], "big", signed=True)

_MIGRATIONS = {
    1: [
        "CREATE SCHEMA IF NOT EXISTS fleetid_subid",
        """CREATE TABLE fleetid_subid.meta (
             singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
             schema_version integer NOT NULL,
             generation bigint NOT NULL DEFAULT 0)""",
        "INSERT INTO fleetid_subid.meta (schema_version) VALUES (0)",
        # Only active and quarantined blocks are stored (reclaimed ones are deleted), and
        # no two of them may share an ID: the exclusion constraint covers every row.
        r"""CREATE TABLE fleetid_subid.blocks (
             owner text NOT NULL CHECK (owner ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$'),
             scope text NOT NULL CHECK (scope = 'fleet' OR scope ~ '^host:[A-Za-z0-9_.:@\[\]-]{1,253}$'),
             ids int8range NOT NULL CHECK (
               NOT isempty(ids) AND lower_inc(ids) AND NOT upper_inc(ids)
               AND lower(ids) >= 1 AND upper(ids) <= 4294967296),
             state text NOT NULL CHECK (state IN ('active', 'quarantined')),
             allocated date NOT NULL,
             released date CHECK (state = 'active' OR released IS NOT NULL),
             allocated_by text NOT NULL DEFAULT '',
             changed_at timestamptz NOT NULL DEFAULT now(),
             CONSTRAINT blocks_never_overlap EXCLUDE USING gist (ids WITH &&))""",
        "CREATE INDEX blocks_owner ON fleetid_subid.blocks (owner)",
    ],
    # Owners as ranges.OWNER_NAME_RE has them: SSSD's user@domain too, never all digits.
    2: [
        r"""ALTER TABLE fleetid_subid.blocks DROP CONSTRAINT blocks_owner_check,
             ADD CONSTRAINT blocks_owner_check CHECK (
               owner ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?(@[A-Za-z0-9][A-Za-z0-9.-]{0,252})?$'
               AND owner !~ '^[0-9]+$')""",
    ],
}

# What keeps the rows a valid ledger, by the names PostgreSQL gives them. The login role
# owns the table and so can drop any of them: each open checks they are all still there.
_SAFEGUARDS = {
    "blocks_never_overlap": "x",  # the exclusion constraint: no ID in two blocks
    "blocks_owner_check": "c", "blocks_scope_check": "c", "blocks_ids_check": "c",
    "blocks_state_check": "c", "blocks_check": "c",  # blocks_check: a quarantined block has its release date
}
_NOT_NULL = ("owner", "scope", "ids", "state", "allocated")
_SAFEGUARDS_QUERY = """
    SELECT conname, contype, convalidated, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE conrelid = 'fleetid_subid.blocks'::regclass
    UNION ALL
    SELECT attname, 'n', true, '' FROM pg_attribute
    WHERE attrelid = 'fleetid_subid.blocks'::regclass AND attnum > 0 AND NOT attisdropped AND attnotnull"""

_COLUMNS = "owner, scope, lower(ids), upper(ids) - lower(ids), state, allocated::text, released::text"

# The IDs no block holds, as (start, end) pairs: the space between each block and the
# next, in one ordered pass. A row before every block (-1, 0) gives the gap below the
# first block; the last block's gap reaches ID_LIMIT. Planning from these (few, on a
# ledger filled first-fit) instead of from every row is what keeps a 200,000-row ledger's
# new owners from costing a read of all rows.
_FREE = """SELECT lo, hi FROM (
             SELECT e AS lo, lead(s, 1, %(limit)s::int8) OVER (ORDER BY s) AS hi
             FROM (SELECT lower(ids) AS s, upper(ids) AS e FROM fleetid_subid.blocks
                   UNION ALL SELECT -1, 0) spans) gaps
           WHERE hi > lo ORDER BY lo"""


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise LedgerError(
            "a postgresql:// ledger needs the Python package psycopg (version 3) on the controller: "
            "pip install 'psycopg[binary]' (it is listed in this collection's requirements.txt "
            "for execution environments)")
    return psycopg


MALFORMED = "postgresql://(a malformed URI, not shown)"


def _credentials_end(rest):
    """Where two readers of ``rest`` (a URI after its ``scheme://``) end the user name and
    password: (libpq's, Python's), each the index of the ``@`` or None for no credentials.

    libpq ends them at the first ``@`` unless a ``/`` comes first; Python's urlsplit ends
    the host part at the first ``/``, ``?`` or ``#`` and the credentials at its last ``@``.
    """
    first = min((i for i in (rest.find("@"), rest.find("/")) if i >= 0), default=-1)
    by_libpq = first if first >= 0 and rest[first] == "@" else None
    netloc_end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, netloc_end)
    return by_libpq, (at if at >= 0 else None)


def is_malformed(uri):
    """Whether the URI's user name or password holds a character a URI reserves (/ ? # @)
    unencoded, or it cannot be parsed: readers then disagree on where the password ends,
    so no part of the URI can be shown as safe."""
    rest = uri.partition("://")[2]
    by_libpq, by_python = _credentials_end(rest)
    if by_libpq != by_python:
        return True
    path = rest[by_python + 1 if by_python is not None else 0:].split("?", 1)[0].split("#", 1)[0]
    if "@" in path:  # user:pa/ss@host: a password cut at its "/", the rest taken for a path
        return True
    try:
        dummy = urllib.parse.urlsplit(uri).port  # a bad port or IPv6 host raises here
    except ValueError:
        return True
    return False


def redact(uri):
    """The URI without its password (nor a password= parameter), for results and messages;
    a malformed URI (is_malformed) is not shown at all."""
    if is_malformed(uri):
        return MALFORMED
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, dummy, hostport = netloc.rpartition("@")
        netloc = userinfo.partition(":")[0] + "@" + hostport
    query = urllib.parse.urlencode([(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
                                    if k != "password"])
    return "%s://%s%s%s" % (parts.scheme, netloc, parts.path, "?" + query if query else "")


def _passwords(uri):
    """The URI's passwords as given and decoded, to scrub from the driver's messages."""
    if is_malformed(uri):
        return set()  # never connected to: refused first
    parts = urllib.parse.urlsplit(uri)
    found = set()
    if parts.password:
        found.update({parts.password, urllib.parse.unquote(parts.password)})
    found.update(v for k, v in urllib.parse.parse_qsl(parts.query) if k == "password")
    return {p for p in found if p}


class PostgresStore:
    def __init__(self, uri, lock_timeout=60.0, read_only=False):
        if is_malformed(uri):
            raise LedgerError(
                "PostgreSQL ledger %s: the URI is malformed, so it is not shown and nothing was read or written: "
                "a character of its user name or password that URIs reserve must be percent-encoded "
                "(/ as %%2F, ? as %%3F, # as %%23, @ as %%40; or give the password as PGPASSWORD or in ~/.pgpass), "
                "or its host or port cannot be parsed" % MALFORMED)
        self._psycopg = _psycopg()
        self._uri = uri
        self._secrets = _passwords(uri)
        self.location = redact(uri)
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        self._conn = None
        self._has_schema = False
        self._lost_safeguards = []  # what _safeguards_lost found on open: then no write, rows checked

    # Errors: the driver's message, never the password, always the ledger named.

    def _scrub(self, text):
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text

    def _fail(self, what, exc):
        message = " ".join(str(exc).split())
        return LedgerError("PostgreSQL ledger %s: %s: %s" % (self.location, what, self._scrub(message)))

    def _connection(self):
        if self._conn is None:
            psycopg = self._psycopg
            # Defaults only: what the URI or libpq's environment says wins.
            given = dict(self._conninfo())
            extra = {}
            if "connect_timeout" not in given and "PGCONNECT_TIMEOUT" not in os.environ:
                extra["connect_timeout"] = 10
            if "application_name" not in given and "PGAPPNAME" not in os.environ:
                extra["application_name"] = "fleetid.subid"
            try:
                self._conn = psycopg.connect(self._uri, autocommit=True, **extra)
            except psycopg.Error as exc:
                raise self._fail("cannot connect", exc) from None
            self._has_schema = self._prepare_schema()
            if self._has_schema:
                try:
                    self._lost_safeguards = self._safeguards_lost(self._conn)
                except psycopg.Error as exc:
                    raise self._fail("cannot read the ledger schema", exc) from None
        return self._conn

    @staticmethod
    def _safeguards_lost(conn):
        """The constraints and NOT NULLs of the blocks table that are missing or not
        validated, one catalog query: [] when the schema is as this collection made it."""
        found = {name: (kind, valid, definition) for name, kind, valid, definition in conn.execute(_SAFEGUARDS_QUERY)}
        lost = []
        for name, kind in sorted(_SAFEGUARDS.items()):
            have = found.get(name)
            if have is None or have[0] != kind:
                lost.append("constraint %s is missing" % name)
            elif not have[1]:
                lost.append("constraint %s is not validated (NOT VALID)" % name)
        overlap = found.get("blocks_never_overlap")
        if overlap and overlap[0] == "x" and "gist (ids WITH &&)" not in overlap[2]:
            lost.append("constraint blocks_never_overlap is not the exclusion on ids WITH &&: %s" % overlap[2])
        lost.extend("column %s may be NULL" % column for column in _NOT_NULL if column not in found)
        return lost

    def _refuse_if_unsafe(self):
        if self._lost_safeguards:
            raise LedgerError(
                "PostgreSQL ledger %s refused, nothing was written: its table fleetid_subid.blocks has lost what "
                "keeps it a valid ledger (%s). Export it with fleetid.subid.ledger_copy (replace=true; the "
                "export checks every row), drop the schema fleetid_subid and copy the export back: the next run "
                "creates the schema with all of them (README, the PostgreSQL ledger)"
                % (self.location, "; ".join(self._lost_safeguards)))

    def _conninfo(self):
        try:
            return self._psycopg.conninfo.conninfo_to_dict(self._uri)
        except self._psycopg.Error as exc:
            raise self._fail("the URI cannot be used", exc) from None

    def _prepare_schema(self):
        """Whether the blocks can be read afterwards: the schema exists, at this collection's
        version (a writer migrates an older one first) or, for a reader, at any version."""
        psycopg = self._psycopg
        conn = self._conn
        try:
            # Every wait for a lock (the writers' advisory lock too) gives up in time; for
            # PostgreSQL 0 means no limit, so inf is 0 and any finite timeout at least 1 ms.
            wait = "0" if math.isinf(self.lock_timeout) else "%dms" % max(1, self.lock_timeout * 1000)
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (wait,))
            with conn.transaction():
                version = self._schema_version(conn)
            if version == SCHEMA_VERSION:
                return True
            if self.read_only:  # the blocks table exists from version 1 on; later ones only tighten checks
                return version >= 1
            # First use, or an older schema: migrate in one transaction under the writers'
            # lock. The lock is taken before the transaction starts, so the transaction sees
            # the catalog as another controller that migrated first left it.
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            except psycopg.errors.LockNotAvailable:
                raise LedgerLockTimeout("could not lock the PostgreSQL ledger %s within %gs to create its schema"
                                        % (self.location, self.lock_timeout)) from None
            try:
                with conn.transaction():
                    for step in range(self._schema_version(conn) + 1, SCHEMA_VERSION + 1):
                        for statement in _MIGRATIONS[step]:
                            conn.execute(statement)
                        conn.execute("UPDATE fleetid_subid.meta SET schema_version = %s", (step,))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
            return True
        except psycopg.Error as exc:
            raise self._fail("cannot create or read the ledger schema", exc) from None

    def _schema_version(self, conn):
        exists = conn.execute("SELECT to_regclass('fleetid_subid.meta') IS NOT NULL").fetchone()[0]
        version = conn.execute("SELECT schema_version FROM fleetid_subid.meta").fetchone()[0] if exists else 0
        if version > SCHEMA_VERSION:
            raise LedgerError(
                "PostgreSQL ledger %s has schema version %d; this collection knows up to %d: "
                "upgrade fleetid.subid on this controller" % (self.location, version, SCHEMA_VERSION))
        return version

    @contextlib.contextmanager
    def _reading(self):
        """A read-only transaction on one snapshot of the database."""
        conn = self._connection()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    @staticmethod
    def _blocks(rows):
        return [Block(owner, scope, start, count, state, allocated, released, None)
                for owner, scope, start, count, state, allocated, released in rows]

    # The store interface of plugin_utils.ledger_service.

    def view(self, names, pool, free=False):
        psycopg = self._psycopg
        try:
            with self._reading() as conn:
                return self._view(conn, names, pool, free)
        except psycopg.Error as exc:
            raise self._fail("cannot read", exc) from None

    def _view(self, conn, names, pool, free):
        """The rows of ``names`` (and the free IDs) on one snapshot; None if a block lies
        below the floor or in a reserved range, or the schema lost a safeguard: the full
        path then names it."""
        if not self._has_schema:
            return View([], [(0, ID_LIMIT)] if free else None, 0, None)
        if self._lost_safeguards:
            return None
        # Each test is one lookup in the exclusion constraint's index.
        bad = pool.withheld()
        probe = " OR ".join(["EXISTS (SELECT 1 FROM fleetid_subid.blocks WHERE ids && int8range(%s, %s))"] * len(bad))
        if conn.execute("SELECT " + probe, [n for pair in bad for n in pair]).fetchone()[0]:
            return None
        generation = conn.execute("SELECT generation FROM fleetid_subid.meta").fetchone()[0]
        rows = conn.execute("SELECT %s FROM fleetid_subid.blocks WHERE owner = ANY(%%s) ORDER BY lower(ids)"
                            % _COLUMNS, (sorted(names),)).fetchall()
        gaps = None
        if free:
            # Sorting 200,000 spans takes about 6 MB: in memory, not in temporary files (the
            # default work_mem of 4 MB spills it to disk), for this transaction only.
            conn.execute("SET LOCAL work_mem = '64MB'")
            gaps = [tuple(gap) for gap in conn.execute(_FREE, {"limit": ID_LIMIT}).fetchall()]
        return View(self._blocks(rows), gaps, generation, None)

    def snapshot(self, verify=False):
        """Every block; ``verify``: checked as a file's are (the audit and ledger_copy
        trust no store), as they also are whenever the schema has lost a safeguard."""
        psycopg = self._psycopg
        try:
            with self._reading() as conn:
                return self._snapshot(conn, verify)
        except psycopg.Error as exc:
            raise self._fail("cannot read", exc) from None

    def _snapshot(self, conn, verify=False):
        if not self._has_schema:
            return Snapshot([], 0)
        generation = conn.execute("SELECT generation FROM fleetid_subid.meta").fetchone()[0]
        rows = conn.execute("SELECT %s FROM fleetid_subid.blocks ORDER BY lower(ids)" % _COLUMNS).fetchall()
        blocks = self._blocks(rows)
        # With its constraints in place the table makes the checks ``ledger.validate``
        # makes on a file (names, scopes, states, dates, the ID space, no overlap).
        if verify or self._lost_safeguards:
            blocks = validate(blocks, "PostgreSQL ledger %s" % self.location)
        return Snapshot(blocks, generation)

    @contextlib.contextmanager
    def transaction(self):
        """A write transaction holding the writers' advisory lock until it ends."""
        if self.read_only:
            raise RuntimeError("a read-only ledger store cannot be changed")
        psycopg = self._psycopg
        conn = self._connection()
        try:
            with conn.transaction():
                try:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                except psycopg.errors.LockNotAvailable:
                    raise LedgerLockTimeout("could not lock the PostgreSQL ledger %s within %gs: another controller "
                                            "is writing to it" % (self.location, self.lock_timeout)) from None
                self._refuse_if_unsafe()
                yield _Transaction(self, conn)
        except psycopg.Error as exc:
            # Had the connection broken while committing, the ledger may hold the change:
            # either way a new run sees the truth and converges.
            raise self._fail("the transaction failed, so the ledger is as it was (or, had the connection "
                             "broken while committing, as planned); run again", exc) from None

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _Transaction:
    """Inside the lock: the token is the generation counter."""

    def __init__(self, store, conn):
        self.store = store
        self.conn = conn

    def token(self):
        return self.conn.execute("SELECT generation FROM fleetid_subid.meta").fetchone()[0]

    def snapshot(self):
        return self.store._snapshot(self.conn)

    def view(self, names, pool, free=False):
        return self.store._view(self.conn, names, pool, free)

    def commit(self, before, after, change):
        """Apply ``change`` as rows; the database checks every invariant it can.

        ``before`` and ``after`` are not needed: every row is named by the change."""
        del before, after
        store = self.store
        psycopg = store._psycopg
        conn = self.conn
        by = "%s@%s" % (getpass.getuser(), socket.gethostname())
        try:
            with conn.cursor() as cur:
                # Reclaimed rows go first: a block added in the same call may reuse their IDs.
                for b in change.removed:
                    cur.execute("DELETE FROM fleetid_subid.blocks WHERE ids = int8range(%s, %s) AND owner = %s "
                                "AND scope = %s AND state = 'quarantined'", (b.start, b.end, b.owner, b.scope))
                    self._one(cur, "delete", b)
                if change.added:
                    with cur.copy("COPY fleetid_subid.blocks (owner, scope, ids, state, allocated, released, "
                                  "allocated_by) FROM STDIN") as copy:
                        for b in change.added:
                            copy.write_row((b.owner, b.scope, "[%d,%d)" % (b.start, b.end), b.state,
                                            b.allocated, b.released, by))
                for b in change.updated:
                    cur.execute("UPDATE fleetid_subid.blocks SET state = %s, released = %s, changed_at = now() "
                                "WHERE ids = int8range(%s, %s) AND owner = %s AND scope = %s",
                                (b.state, b.released, b.start, b.end, b.owner, b.scope))
                    self._one(cur, "update", b)
                cur.execute("UPDATE fleetid_subid.meta SET generation = generation + 1")
        except psycopg.errors.IntegrityError as exc:
            # The planner never proposes an overlap: a refusal here is a bug, surfaced.
            raise store._fail("the database refused the change (a bug: please report it); nothing was written",
                              exc) from None
        except psycopg.Error as exc:
            raise store._fail("cannot write; nothing was written", exc) from None

    @staticmethod
    def _one(cur, what, block):
        if cur.rowcount != 1:
            raise LedgerError("PostgreSQL ledger: cannot %s %s: the row changed under the lock (a bug: please "
                              "report it); nothing was written" % (what, block.where()))
