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
- ``owner_blocks(names, pool)``: the blocks of ``names`` when the store can answer
  without reading every block and no block conflicts with ``pool``; None otherwise
  (the caller then takes the full path, which names the blocks at fault);
- ``snapshot()``: every block, validated and sorted by start, plus a token that changes
  whenever the ledger does;
- ``transaction()``: a context manager that serialises writers and yields an object
  with ``token()``, ``snapshot()`` and ``commit(before, after, change)``.

Every change is planned once against a snapshot taken without the lock. Under the lock,
the plan is committed as it is when the token did not move; only a writer that lost a
race reads and plans again. Check mode never takes the lock and never writes.
"""

from __future__ import annotations

import contextlib
import os

from ansible_collections.fleetid.subid.plugins.plugin_utils.adoption import plan_adoption
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import check_blocks_against_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import Change, LedgerError

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


def apply(store, decide, check_mode=False):
    """Plan with ``decide(blocks) -> (result, after_blocks, Change)`` and commit.

    Returns ``(blocks before, result)``: the blocks the committed plan was made against.
    """
    snap = store.snapshot()
    result, after, change = decide(snap.blocks)
    if not change or check_mode:
        return snap.blocks, result
    with store.transaction() as txn:
        if txn.token() != snap.token:  # another writer came first: plan against its ledger
            snap = txn.snapshot()
            result, after, change = decide(snap.blocks)
        if change:
            txn.commit(snap.blocks, after, change)
    return snap.blocks, result


def plan_change(outcome):
    """The Change a Plan of the allocator makes."""
    return Change(outcome.added, outcome.reactivated + outcome.released, outcome.reclaimed)


def allocate(store, pool, requests, host, today, check_mode=False):
    """Serve one host's requests: ``(blocks before, Plan)``.

    A converged call (nothing to change) asks the store for the requested owners' blocks
    only; anything else goes through ``apply``.
    """
    mine = store.owner_blocks({req.name for req in requests}, pool)
    if mine is not None:
        outcome = plan(mine, pool, requests, host, today, known_only=True)
        if outcome is not None and not outcome.changed:
            return mine, outcome

    def decide(blocks):
        outcome = plan(blocks, pool, requests, host, today)
        return outcome, outcome.blocks, plan_change(outcome)

    return apply(store, decide, check_mode)


def adopt(store, pool, hosts, remap, today, check_mode=False):
    """Record the fleet's agreeing entries: ``adoption.plan_adoption``'s decision."""

    def decide(blocks):
        check_blocks_against_pool(blocks, pool)
        decision = plan_adoption(blocks, pool, hosts, remap, today)
        return decision, blocks + decision["adopt"], Change(decision["adopt"], [], [])

    return apply(store, decide, check_mode)[1]


def blocks_of(store):
    """Every block of the ledger, validated, sorted by start."""
    return store.snapshot().blocks


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
    wanted = source.snapshot().blocks

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
