# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger service: the one way controller code reads and changes the ledger.

    with open_ledger(location, lock_timeout=60, check_mode=False) as store:
        current, outcome = allocate(store, pool, requests, host, today)

``location`` is a file path (the YAML file store) or a libpq URI, ``postgresql://...``
or ``postgres://...`` (the PostgreSQL store). Nothing outside the stores knows how a
store keeps its blocks. A store offers:

- ``location``: how to name the ledger in results and messages (never a password);
- ``view(names, pool, free=False)``: a ``ledger.View`` with the blocks of ``names``
  (and with ``free`` the IDs no block holds) when the store can answer without reading
  every block and no block conflicts with ``pool``; None otherwise (the caller then
  takes the full path, which names the blocks at fault);
- ``snapshot()``: every block, validated and sorted by start, plus a token that changes
  whenever the ledger does;
- ``transaction()``: a context manager that serialises writers and yields an object
  with ``token()``, ``snapshot()``, ``view(names, pool, free)`` and
  ``commit(before, after, change)``, where ``before`` is the Snapshot or View planned
  against and ``after`` its blocks afterwards.

Every change is planned once against a snapshot (or a view) taken without the lock.
Under the lock, the plan is committed as it is when the token did not move; only a
writer that lost a race reads and plans again. Check mode never takes the lock and
never writes. A host's allocation reads through a view: a ledger of 200,000 blocks is
then never read whole, neither to answer a converged host nor to place new owners.
"""

from __future__ import annotations

import contextlib
import math
import os

from ansible_collections.fleetid.subid.plugins.plugin_utils.adoption import plan_adoption
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import check_blocks_against_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Change, LedgerError, View

URI_SCHEMES = ("postgresql://", "postgres://")


def is_uri(location):
    return isinstance(location, str) and location.startswith(URI_SCHEMES)


def describe(location):
    """How to name ``location`` in a message: a URI without its password, an absolute path."""
    if is_uri(location):
        from ansible_collections.fleetid.subid.plugins.plugin_utils.pg_store import redact

        return redact(location)
    return os.path.abspath(os.path.expanduser(str(location)))


@contextlib.contextmanager
def open_ledger(location, lock_timeout=60.0, check_mode=False, cache_dir=None):
    """The store behind ``location``; closed (its connection dropped) on exit."""
    if not isinstance(location, str) or not location.strip():
        raise LedgerError("ledger must be a file path or a postgresql:// URI")
    numeric = isinstance(lock_timeout, (int, float)) and not isinstance(lock_timeout, bool)
    if not numeric or math.isnan(lock_timeout) or lock_timeout < 0:
        raise LedgerError("lock_timeout must be a number of seconds, 0 or more (inf: wait as long as it takes), "
                          "not %r; nothing was read or written" % (lock_timeout,))
    if is_uri(location):
        from ansible_collections.fleetid.subid.plugins.plugin_utils.pg_store import PostgresStore

        store = PostgresStore(location, lock_timeout=lock_timeout, read_only=check_mode)
    else:
        from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import FileStore

        store = FileStore(location, lock_timeout=lock_timeout, cache_dir=cache_dir, read_only=check_mode)
    try:
        yield store
    finally:
        store.close()


def apply(store, decide, check_mode=False, names=None, pool=None):
    """Plan with ``decide(blocks) -> (result, after_blocks, Change)`` and commit.

    With ``names`` (and ``pool``), plan against the store's view of those owners where it
    gives one, as ``decide(blocks, free)`` with the ledger's free IDs; else against every
    block. Returns ``(blocks before, result)``: the blocks the committed plan was made
    against (with a view: the view's blocks).
    """

    def read(source):
        view = source.view(names, pool, free=True) if names is not None else None
        return view if view is not None else source.snapshot()

    def decide_on(snap):
        return decide(snap.blocks, snap.free) if isinstance(snap, View) else decide(snap.blocks)

    snap = read(store)
    result, after, change = decide_on(snap)
    if not change or check_mode:
        return snap.blocks, result
    with store.transaction() as txn:
        if txn.token() != snap.token:  # another writer came first: plan against its ledger
            snap = read(txn)
            result, after, change = decide_on(snap)
        if change:
            txn.commit(snap if isinstance(snap, View) else snap.blocks, after, change)
    return snap.blocks, result


def plan_change(outcome):
    """The Change a Plan of the allocator makes."""
    return Change(outcome.added, outcome.reactivated + outcome.released, outcome.reclaimed)


def allocate(store, pool, requests, host, today, check_mode=False):
    """Serve one host's requests: ``(blocks before, Plan)``; with a view, the blocks
    before are the requested owners' (every block a change touches is among them).

    A converged call (nothing to change) reads the requested owners' blocks only; a
    change is planned against those blocks and the ledger's free IDs, where the store
    can say them without reading every block, else against the whole ledger.
    """
    names = {req.name for req in requests}
    view = store.view(names, pool)
    if view is not None:
        outcome = plan(view.blocks, pool, requests, host, today, known_only=True)
        if outcome is not None and not outcome.changed:
            return view.blocks, outcome

    def decide(blocks, free=None):
        outcome = plan(blocks, pool, requests, host, today, free=free)
        return outcome, outcome.blocks, plan_change(outcome)

    return apply(store, decide, check_mode, names, pool)


def adopt(store, pool, hosts, remap, today, check_mode=False):
    """Record the fleet's agreeing entries: ``adoption.plan_adoption``'s decision."""

    def decide(blocks):
        check_blocks_against_pool(blocks, pool)
        decision = plan_adoption(blocks, pool, hosts, remap, today)
        return decision, blocks + decision["adopt"], Change(decision["adopt"], [], [])

    return apply(store, decide, check_mode)[1]


def blocks_of(store):
    """Every block of the ledger, validated row by row whatever the store, sorted by start."""
    return store.snapshot(verify=True).blocks


def owners_blocks(store, names, pool):
    """The blocks of ``names``, sorted by start: through the store's view where it can
    answer without reading every block, else from the whole ledger."""
    view = store.view(set(names), pool)
    blocks = view.blocks if view is not None else store.snapshot().blocks
    return [b for b in blocks if b.owner in names]


def _key(block):
    return (block.owner, block.scope, block.start, block.count, block.state, block.allocated, block.released)


def copy(source, dest, check_mode=False, replace=False):
    """Copy every block of ``source`` into ``dest``: ``(copied blocks, changed)``.

    ``dest`` must be empty or already hold exactly the same blocks (then nothing
    changes); anything else is refused with the disagreeing blocks named, because
    merging two ledgers is a decision for a person, not for a copy. With ``replace``
    (only for a file destination: an export for review) the file is made to mirror
    ``source`` whatever it held.
    """
    if replace and is_uri(dest.location):
        raise LedgerError("replace is only for a file destination (an export); %s is a database" % dest.location)
    wanted = source.snapshot(verify=True).blocks  # a copy must not carry a broken ledger on

    def decide(have):
        differ = _disagreement(wanted, have)
        if not differ:
            return False, have, Change([], [], [])
        if have and not replace:
            raise LedgerError(
                "%s already holds blocks that disagree with %s, nothing was copied:\n  %s"
                % (dest.location, source.location, "\n  ".join(differ)))
        return True, wanted, Change(list(wanted), [], list(have))

    changed = apply(dest, decide, check_mode)[1]
    return wanted, changed


def _disagreement(wanted, have, limit=20):
    want_keys = {_key(b): b for b in wanted}
    have_keys = {_key(b): b for b in have}
    lines = ["only in the source: %s, %s" % (b.where(), b.state) for k, b in sorted(want_keys.items(), key=_by_start)
             if k not in have_keys]
    lines += ["only in the destination: %s, %s" % (b.where(), b.state) for k, b in sorted(have_keys.items(), key=_by_start)
              if k not in want_keys]
    if len(lines) > limit:
        lines = lines[:limit] + ["... and %d more" % (len(lines) - limit)]
    return lines


def _by_start(item):
    return item[1].start
