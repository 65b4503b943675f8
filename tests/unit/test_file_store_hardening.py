"""The file store against what happens to files beside a ledger: a lock file removed while
held, symbolic links, folders others can change, crash litter, undecodable text."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import allocate
from ansible_collections.fleetid.subid.plugins.plugin_utils import ledger
from ansible_collections.fleetid.subid.plugins.plugin_utils.allocator import parse_owners, parse_pool
from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import FileStore, LedgerLockTimeout
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import LedgerError

from conftest import COLLECTIONS, by_hand, wait_until_open

POOL = parse_pool({"ranges": [{"start": 100000, "count": 600000000}]})
TODAY = "2026-11-24"
NOBODY = 65534

# A second process that takes the ledger lock, says "locked", and keeps it until its
# stdin is closed. With "wait" it first says "waiting", and says "locked" only once in.
HOLDER = textwrap.dedent("""\
    import sys
    sys.path.insert(0, sys.argv[1])
    from ansible_collections.fleetid.subid.plugins.plugin_utils.file_store import FileStore
    store = FileStore(sys.argv[2], lock_timeout=30, cache_dir=sys.argv[3])
    if sys.argv[4] == "wait":
        print("waiting", flush=True)
    with store.locked():
        print("locked", flush=True)
        sys.stdin.read()
    """)


def seeded(tmp_path, owners=("alice", "bob")):
    store = FileStore(str(tmp_path / "ledger.yml"), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    allocate(store, POOL, parse_owners(list(owners), POOL), "h1", TODAY)
    return store


def start_holder(store, mode="hold"):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(COLLECTIONS), store.path, store.memo_path + ".d",
                             mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    expected = "waiting" if mode == "wait" else "locked"
    assert proc.stdout.readline().strip() == expected
    return proc


def stop(proc):
    proc.stdin.close()
    assert proc.wait(10) == 0


def is_locked(store, timeout=0.3):
    """Whether another process holds the ledger lock (we time out waiting for it)."""
    other = FileStore(store.path, lock_timeout=timeout, cache_dir=os.path.dirname(store.memo_path))
    try:
        with other.locked():
            return False
    except LedgerLockTimeout:
        return True


# 1. A lock file removed while held (git clean -fdX removes the git-ignored lock file).

def test_a_lock_file_removed_while_held_does_not_let_a_second_writer_in(tmp_path):
    store = seeded(tmp_path)
    holder = start_holder(store)
    try:
        os.unlink(store.lock_path)
        assert is_locked(store), "a second process got the lock while the first still held it"
    finally:
        stop(holder)
    assert not is_locked(store)


def test_a_waiter_whose_lock_file_was_replaced_waits_for_the_new_one(tmp_path):
    store = seeded(tmp_path)
    holder = start_holder(store)
    waiter = start_holder(store, mode="wait")
    try:
        wait_until_open(waiter.pid, store.lock_path)  # the waiter has opened the old lock file and polls it
        os.unlink(store.lock_path)
        # Another run (say an older version, which locks only the lock file) makes a new
        # lock file and holds it; then the first holder leaves.
        fd = os.open(store.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        import fcntl
        fcntl.flock(fd, fcntl.LOCK_EX)
        stop(holder)
        os.set_blocking(waiter.stdout.fileno(), False)
        time.sleep(1)
        assert waiter.stdout.readline() == "", "the waiter took the old, removed lock file"
        os.close(fd)  # the new lock file's holder leaves: now the waiter may go in
        os.set_blocking(waiter.stdout.fileno(), True)
        assert waiter.stdout.readline().strip() == "locked"
    finally:
        if waiter.poll() is None:
            stop(waiter)


# 2. Symbolic links and files or folders that someone else could swap.

def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    store = seeded(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.unlink(store.lock_path)
    os.symlink(victim, store.lock_path)
    with pytest.raises(LedgerError, match=r"ledger.yml.lock is a symbolic link"):
        allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert victim.read_text() == "precious\n"
    assert "carol" not in store.read()


def test_a_dangling_lock_symlink_creates_nothing(tmp_path):
    store = seeded(tmp_path)
    os.unlink(store.lock_path)
    os.symlink(tmp_path / "elsewhere", store.lock_path)
    with pytest.raises(LedgerError, match="is a symbolic link"):
        allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("kind", ["fifo", "directory", "hard link"])
def test_a_lock_path_that_is_not_a_regular_file_of_its_own_is_refused(tmp_path, kind):
    store = seeded(tmp_path)
    os.unlink(store.lock_path)
    if kind == "fifo":
        os.mkfifo(store.lock_path)
    elif kind == "directory":
        os.mkdir(store.lock_path)
    else:
        other = tmp_path / "other-file"
        other.write_text("precious\n")
        os.link(other, store.lock_path)
    with pytest.raises(LedgerError, match=r"ledger.yml.lock is not a regular file with a single link"):
        allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert "carol" not in store.read()


@pytest.mark.needs_root  # chown to another user: without root this fails, it does not skip
def test_a_lock_file_owned_by_someone_else_is_refused(tmp_path):
    store = seeded(tmp_path)
    os.chown(store.lock_path, NOBODY, NOBODY)
    with pytest.raises(LedgerError, match=r"ledger.yml.lock belongs to uid %d" % NOBODY):
        allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert "carol" not in store.read()


@pytest.mark.needs_root  # chown to another user: without root this fails, it does not skip
@pytest.mark.parametrize("owner, mode, refused", [
    (NOBODY, 0o755, True),    # its owner can swap the files
    (NOBODY, 0o775, True),    # and so can the group
    ("me", 0o777, True),      # anyone can
    ("me", 0o775, False),     # our own folder (user private groups make it 0775)
    ("me", 0o755, False),
])
def test_a_ledger_folder_that_others_can_change_is_refused(tmp_path, owner, mode, refused):
    folder = tmp_path / "inventory"
    folder.mkdir()
    store = seeded(folder)
    os.chown(folder, os.geteuid() if owner == "me" else owner, 0)
    os.chmod(folder, mode)
    before = store.read()
    if refused:
        trusted = "root" if os.geteuid() == 0 else "uid %d or root" % os.geteuid()
        with pytest.raises(LedgerError, match=r"folder .*inventory can be changed by someone other than %s \(owner uid"
                                              % trusted):
            allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
        assert store.read() == before
    else:
        allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
        assert "carol" in store.read()


def test_a_symlinked_ledger_is_written_through_and_shares_the_targets_lock(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    target = seeded(shared)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    link = checkout / "ledger.yml"
    os.symlink(os.path.relpath(target.path, checkout), link)

    via_link = FileStore(str(link), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    allocate(via_link, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert os.path.islink(link), "the link was replaced by a copy: the shared ledger stops being updated"
    assert sorted(b.owner for b in ledger.parse(target.read())) == ["alice", "bob", "carol"]
    assert sorted(os.listdir(checkout)) == ["ledger.yml"]  # no lock file beside the link
    with target.locked():  # one ledger, one lock, whichever path leads to it
        assert is_locked(via_link)


# 3. Temp files left by a writer that was killed.

def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_carry_the_writers_pid_and_stale_ones_are_removed_by_the_next_writer(tmp_path):
    store = seeded(tmp_path)
    gone = dead_pid()
    stale = tmp_path / (".ledger.yml.tmp%d.abcd_123" % gone)
    alive = tmp_path / (".ledger.yml.tmp%d.efgh_456" % os.getpid())  # a writer still at work
    keep = [tmp_path / ".ledger.yml.swp", tmp_path / ".ledger.yml.tmp", tmp_path / (".other.yml.tmp%d.abcd_123" % gone)]
    for path in [stale, alive] + keep:
        path.write_text("x" * 1000)
    allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert not stale.exists()
    assert alive.exists() and all(path.exists() for path in keep)


def test_stale_memo_temp_files_are_removed_too(tmp_path):
    store = seeded(tmp_path)
    memo_dir, memo_name = os.path.split(store.memo_path)
    stale = os.path.join(memo_dir, ".%s.tmp%d.abcd_123" % (memo_name, dead_pid()))
    with open(stale, "w") as handle:
        handle.write("x")
    allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert not os.path.exists(stale)
    assert sorted(os.listdir(memo_dir)) == [memo_name]


def test_a_run_that_changes_nothing_removes_stale_memo_temp_files(tmp_path):
    # Such a run finds the memo current and writes none, so the sweep cannot wait for a memo write.
    seeded(tmp_path, owners=("alice", "bob", "carol"))
    store = FileStore(str(tmp_path / "ledger.yml"), lock_timeout=1, cache_dir=str(tmp_path / "cache"))  # a new run
    memo_dir, memo_name = os.path.split(store.memo_path)
    with open(store.memo_path, "rb") as handle:
        memo = handle.read()
    stale = os.path.join(memo_dir, ".%s.tmp%d.abcd_123" % (memo_name, dead_pid()))
    with open(stale, "w") as handle:
        handle.write("x")
    before, outcome = allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    assert not outcome.changed and [b.owner for b in before] == ["carol"]
    with open(store.memo_path, "rb") as handle:
        assert handle.read() == memo
    assert sorted(os.listdir(memo_dir)) == [memo_name]


# 4. What a ledger file holds.

def test_an_absent_ledger_reads_as_none_and_an_empty_one_is_refused(tmp_path):
    store = FileStore(str(tmp_path / "ledger.yml"), cache_dir=str(tmp_path / "cache"))
    assert store.read() is None
    (tmp_path / "ledger.yml").write_text("")
    assert store.read() == ""
    with pytest.raises(LedgerError, match=r"ledger.yml line 1: the file holds no ledger"):
        allocate(store, POOL, parse_owners(["alice"], POOL), "h1", TODAY)
    assert (tmp_path / "ledger.yml").read_text() == ""


def test_a_ledger_that_is_not_utf8_is_refused_naming_file_and_line(tmp_path):
    store = seeded(tmp_path)
    with open(store.path, "rb") as handle:
        data = handle.read()
    with open(store.path, "wb") as handle:
        handle.write(by_hand(data.replace(b'"bob"', b'"b\xf6b"')))
    with pytest.raises(LedgerError, match=r"ledger.yml line %d: not valid UTF-8" % (ledger.HEADER.count("\n") + 4)):
        allocate(store, POOL, parse_owners(["alice"], POOL), "h1", TODAY)


class LockFileRemovedMidRun(FileStore):
    """Inside our lock, with no ledger yet, the lock file is removed (git clean -fdX) and
    a second controller allocates and writes the first ledger: the moment before our write."""

    def __init__(self, path, **kwargs):
        super().__init__(path, **kwargs)
        self.second = None

    def write_bytes(self, data):
        os.unlink(self.lock_path)
        self.second = FileStore(self.path, lock_timeout=1, cache_dir=os.path.dirname(self.memo_path))
        allocate(self.second, POOL, parse_owners(["bob"], POOL), "h2", TODAY)
        return super().write_bytes(data)


def test_a_first_ledger_written_by_a_run_that_got_in_is_never_overwritten(tmp_path):
    ours = LockFileRemovedMidRun(str(tmp_path / "ledger.yml"), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(LedgerError, match="another run created it while this run held the lock"):
        allocate(ours, POOL, parse_owners(["alice"], POOL), "h1", TODAY)
    assert [(b.owner, b.start) for b in ledger.parse(ours.read())] == [("bob", 100000)]
    assert sorted(os.listdir(tmp_path)) == ["cache", "ledger.yml", "ledger.yml.lock"]  # no temp file left


class LedgerReplacedMidRun(FileStore):
    """Inside our lock, the ledger (and its lock file) are removed and a second controller
    writes a new ledger: a write must not replace a ledger other than the one locked."""

    def write_bytes(self, data):
        if self._locked:
            os.unlink(self.lock_path)
            os.unlink(self.path)
            allocate(FileStore(self.path, lock_timeout=1, cache_dir=os.path.dirname(self.memo_path)), POOL,
                     parse_owners(["carol"], POOL), "h2", TODAY)
        return super().write_bytes(data)


def test_a_ledger_replaced_while_locked_is_not_overwritten(tmp_path):
    seeded(tmp_path)
    ours = LedgerReplacedMidRun(str(tmp_path / "ledger.yml"), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(LedgerError, match="it was removed or replaced while this run held its lock"):
        allocate(ours, POOL, parse_owners(["dave"], POOL), "h1", TODAY)
    assert [b.owner for b in ledger.parse(ours.read())] == ["carol"]


def test_a_fifo_or_a_folder_as_the_ledger_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo-ledger.yml"
    os.mkfifo(fifo)
    folder = tmp_path / "folder-ledger.yml"
    folder.mkdir()
    signal.alarm(20)  # opening a FIFO for reading without O_NONBLOCK waits for a writer forever
    try:
        for path, kind in ((fifo, "a FIFO"), (folder, "a folder")):
            store = FileStore(str(path), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
            for check_mode in (True, False):
                with pytest.raises(ledger.LedgerError, match=r"it is not a regular file \(%s\)" % kind):
                    allocate(store, POOL, parse_owners(["carol"], POOL), "h1", TODAY, check_mode=check_mode)
    finally:
        signal.alarm(0)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and folder.is_dir() and not list(folder.iterdir())


# 5. The seal: a ledger cut short is refused, a deliberate hand edit is accepted on request.

def test_a_ledger_cut_short_at_any_line_or_inside_one_is_refused_and_nothing_is_written(tmp_path):
    store = seeded(tmp_path, owners=("alice", "bob", "carol"))
    with open(store.path, "rb") as handle:
        whole = handle.read()
    assert whole.endswith(b"\n") and whole.splitlines()[-1].startswith(b"# end: 3 blocks, sha256 ")
    lines = whole.splitlines(keepends=True)
    first_version = next(i for i, line in enumerate(lines) if line.startswith(b"version:"))
    cuts = [len(b"".join(lines[:k])) for k in range(first_version + 1, len(lines))]  # at each line end
    cuts += [len(whole) - 10, len(b"".join(lines[:-2])) + 7]  # inside the seal, inside the last block line
    for cut in cuts:
        with open(store.path, "wb") as handle:
            handle.write(whole[:cut])
        for check_mode in (True, False):
            fresh = FileStore(store.path, lock_timeout=1, cache_dir=str(tmp_path / "cache"))
            with pytest.raises(ledger.LedgerError, match="refused, nothing was read or written: its (last line is not "
                                                         "its seal|seal counts)"):
                allocate(fresh, POOL, parse_owners(["dave"], POOL), "h1", TODAY, check_mode=check_mode)
            with open(store.path, "rb") as handle:
                assert handle.read() == whole[:cut]


def test_a_hand_edit_is_refused_until_accepted_and_the_next_write_seals_it_again(tmp_path):
    store = seeded(tmp_path, owners=("alice", "bob"))
    with open(store.path, "rb") as handle:
        whole = handle.read()
    edited = whole.replace(b'owner: "bob"', b'owner: "robert"')
    with open(store.path, "wb") as handle:
        handle.write(edited)
    fresh = FileStore(store.path, lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ledger.LedgerError, match="its content does not match its seal.*'# end: accept my edit'"):
        allocate(fresh, POOL, parse_owners(["alice"], POOL), "h1", TODAY)
    with open(store.path, "wb") as handle:
        handle.write(by_hand(edited))
    allocate(fresh, POOL, parse_owners(["carol"], POOL), "h1", TODAY)
    with open(store.path, "rb") as handle:
        resealed = handle.read()
    assert resealed == ledger.seal(ledger.render(ledger.parse(resealed.decode())).encode())
    assert [b.owner for b in ledger.parse(resealed.decode())] == ["alice", "robert", "carol"]


def test_a_ledger_from_before_seals_is_read_and_sealed_by_its_next_write(tmp_path):
    store = seeded(tmp_path, owners=("alice",))
    with open(store.path, "rb") as handle:
        body = ledger.unseal(handle.read())
    old_header = ledger.HEADER.split("# Its last line seals it", maxsplit=1)[0]
    unsealed = old_header.encode() + body[len(ledger.HEADER):]
    assert b"seal" not in unsealed
    with open(store.path, "wb") as handle:
        handle.write(unsealed)
    fresh = FileStore(store.path, lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    assert [b.owner for b in allocate(fresh, POOL, parse_owners(["alice"], POOL), "h1", TODAY, check_mode=True)[0]] \
        == ["alice"]
    allocate(fresh, POOL, parse_owners(["bob"], POOL), "h1", TODAY)
    with open(store.path, "rb") as handle:
        upgraded = handle.read()
    assert upgraded.startswith(ledger.HEADER.encode()) and upgraded.splitlines()[-1].startswith(b"# end: 2 blocks")
    assert ledger.unseal(upgraded) == ledger.render(ledger.parse(upgraded.decode())).encode()


def test_a_ledger_inside_an_installed_collection_is_refused_before_an_upgrade_deletes_it(tmp_path):
    installed = tmp_path / "collections" / "ansible_collections" / "fleetid" / "subid"
    (installed / "playbooks" / "ledger").mkdir(parents=True)
    (installed / "MANIFEST.json").write_text("{}")
    path = installed / "playbooks" / "ledger" / "subid-ledger.yml"
    with pytest.raises(ledger.LedgerError, match="lies inside the installed collection %s, which 'ansible-galaxy "
                                                 "collection install --force'" % installed):
        FileStore(str(path), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    assert not path.exists()
    (installed / "MANIFEST.json").unlink()  # a checkout of the collection (galaxy.yml, no MANIFEST.json) is fine
    store = FileStore(str(path), lock_timeout=1, cache_dir=str(tmp_path / "cache"))
    allocate(store, POOL, parse_owners(["alice"], POOL), "h1", TODAY)
    assert path.exists()
