"""kill -9 the process that writes the ledger, at random moments of its call: the ledger is
always the old or the new version byte for byte, and the next run leaves no temp file.

The killed process is the writer itself, forked from this one: an ansible-playbook process
group would not do, Ansible's workers setsid() and finish the write on their own.
"""

import os
import random
import signal
import time

from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool, plan
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import FileStore

POOL = parse_pool({"ranges": [{"start": 100000, "count": 4294000000 - 100000}]})
TODAY = "2026-11-24"
BLOCKS = 20000
KILLS = 100


def allocate_function():
    from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate

    return allocate


def litter(store):
    """Every file beside the ledger and its memo but them and the lock file."""
    memo_dir = os.path.dirname(store.memo_path)
    found = {os.path.join(memo_dir, name) for name in os.listdir(memo_dir)} if os.path.isdir(memo_dir) else set()
    folder = os.path.dirname(store.path)
    found.update(os.path.join(folder, name) for name in os.listdir(folder))
    return sorted(found - {store.path, store.lock_path, store.memo_path, memo_dir})


def kill_at_rename(path, moment):
    """In a forked writer: SIGKILL this process just before or just after the rename
    that puts ``path`` in place."""
    rename = os.replace

    def replace(source, target, *args, **kwargs):
        if target == path and moment == "before rename":
            os.kill(os.getpid(), signal.SIGKILL)
        rename(source, target, *args, **kwargs)
        if target == path and moment == "after rename":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


def test_allocate_killed_at_any_moment_leaves_the_old_or_the_new_ledger_and_no_litter(tmp_path):
    allocate = allocate_function()
    seed = plan([], POOL, parse_owners(["user%05d" % i for i in range(BLOCKS)], POOL), "seed", TODAY).blocks
    old_text = ledger.render(seed)
    old = ledger.seal(old_text.encode())  # the file as the store writes it
    request = parse_owners(["newcomer"], POOL)
    new = ledger.seal(ledger.render(plan(seed, POOL, request, "h1", TODAY).blocks).encode())
    cache = tmp_path / "cache"
    store = FileStore(str(tmp_path / "ledger.yml"), lock_timeout=10, cache_dir=str(cache))

    def current():
        with open(store.path, "rb") as handle:
            return handle.read()

    def restore_old():
        if current() != old:
            store.write(old_text)

    def writer(kill_after=None, in_write=False, die=None):
        """Run allocate() in a child process, SIGKILLed ``kill_after`` seconds after it
        starts or, ``in_write``, after its temp file appears, or killing itself ``die``
        ("before rename", "after rename") the ledger's rename; True if the kill came
        before it had finished."""
        earlier = litter(store)
        pid = os.fork()
        if pid == 0:
            try:
                if die:
                    kill_at_rename(store.path, die)
                allocate(store, POOL, request, "h1", TODAY)
                os._exit(0)
            finally:
                os._exit(1)
        if kill_after is not None:
            if in_write:
                deadline = time.monotonic() + 10
                while litter(store) == earlier and time.monotonic() < deadline:
                    time.sleep(0.0005)
            time.sleep(kill_after)
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
        if os.WIFSIGNALED(status):
            return True
        assert os.WEXITSTATUS(status) == 0, "the writer failed on its own"
        return False

    # Kills land from a little before the lock is taken to the end of the call: how long
    # the lock-free read and plan take (a check-mode call), and the whole call.
    # The first call validates the ledger in full and remembers it; the writers below take
    # the remembered path, so the second call is the one timed.
    store.write(old_text)
    allocate(store, POOL, request, "h1", TODAY, check_mode=True)
    started = time.monotonic()
    allocate(store, POOL, request, "h1", TODAY, check_mode=True)
    planning = time.monotonic() - started
    started = time.monotonic()
    assert not writer()
    duration = time.monotonic() - started
    assert current() == new

    # Kills at the two moments that matter most, whatever this machine's timing: with the
    # temp file complete but not yet renamed, and with the rename done but not yet synced.
    for _round in range(3):
        restore_old()
        assert writer(die="before rename")
        assert current() == old
        assert litter(store), "the killed writer's temp file is not where the next run looks"
        restore_old()
        assert writer(die="after rename")
        assert current() == new

    outcomes = {"old": 0, "new": 0}
    killed = left_litter = 0
    started = time.monotonic()
    for i in range(KILLS):
        restore_old()
        if i % 2:  # anywhere from a little before the lock to the end of the call
            killed += writer(kill_after=random.uniform(0.8 * planning, duration))
        else:  # while the temp file is written, or just after its rename
            killed += writer(kill_after=random.uniform(0, 0.03), in_write=True)
        data = current()
        assert data in (old, new), "the ledger is neither the old nor the new version"
        outcomes["old" if data == old else "new"] += 1
        left_litter += bool(litter(store))
    elapsed = time.monotonic() - started

    assert not writer()  # one more run, not killed
    assert current() == new
    assert litter(store) == []
    print("%d kills in %.1f s (one call: %.0f ms, %.0f ms of it before the lock): %d killed mid-call, "
          "ledger old %d, new %d; %d kills left temp files, none after the next run"
          % (KILLS, elapsed, duration * 1000, planning * 1000, killed, outcomes["old"], outcomes["new"],
             left_litter))
    assert killed > KILLS // 4, "the kills must land before the call has finished"
