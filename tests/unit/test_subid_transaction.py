"""The two-file write (module_utils/_subid_transaction) on real files: the journal's
format, the states it tells apart, and the repair after a run killed between the two
renames, with nothing in a journal or a kept file taken on trust."""

import collections
import hashlib
import json
import os

import pytest

from ansible_collections.fleetid.subid.plugins.module_utils._subid_edit import SubidError
from ansible_collections.fleetid.subid.plugins.module_utils._subid_transaction import (
    SubidTransaction,
    journal_bytes,
    journal_path,
    journal_state,
    old_copy_path,
    read_journal,
)

Edit = collections.namedtuple("Edit", "path old new")
OLD_UID, OLD_GID, NEW = "alice:100000:65536\n", "alice:100000:65536\n# gid\n", "bob:200000:65536\n"


def identity(path):
    st = os.lstat(path)
    return [st.st_dev, st.st_ino]


class Files:
    """subuid and subgid in a folder of their own, as a run killed between the renames
    leaves them (``split``) when asked."""

    def __init__(self, folder):
        self.folder = folder
        self.subuid, self.subgid = str(folder / "subuid"), str(folder / "subgid")
        (folder / "subuid").write_text(OLD_UID)
        (folder / "subgid").write_text(OLD_GID)
        for path in (self.subuid, self.subgid):
            os.chmod(path, 0o644)
        self.transaction = SubidTransaction(self.subuid, self.subgid)
        self.warnings = []

    def split(self, old=True):
        """Kept links, the journal, then only the subuid file replaced."""
        olds = []
        for path in (self.subuid, self.subgid):
            os.link(path, old_copy_path(path))
            olds.append(identity(path))
        new_uid = self.folder / ".subuid.fleetid-new"
        new_uid.write_text(NEW)
        new_gid_id = [0, 0]  # never renamed into place
        data = journal_bytes((self.subuid, olds[0] if old else None, identity(str(new_uid)), NEW.encode()),
                             (self.subgid, olds[1], new_gid_id, NEW.encode()))
        self.write_journal(data)
        os.replace(str(new_uid), self.subuid)

    def write_journal(self, data):
        path = journal_path(self.subuid)
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o600)

    def recover(self, check_mode=False):
        return self.transaction.recover([self.subuid, self.subgid], check_mode, self.warnings.append)

    def listing(self):
        return sorted(p.name for p in self.folder.iterdir())


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    return Files(folder)


def test_the_journal_holds_the_files_identities_and_the_new_digests():
    data = journal_bytes(("/etc/subuid", [1, 2], [1, 3], b"n"), ("/etc/subgid", None, [1, 4], b"n"))
    digest = hashlib.sha256(b"n").hexdigest()
    assert json.loads(data) == {
        "format": "fleetid.subid journal 3",
        "first": {"path": "/etc/subuid", "old": [1, 2], "new": [1, 3], "new_sha256": digest},
        "second": {"path": "/etc/subgid", "old": None, "new": [1, 4], "new_sha256": digest},
    }
    assert read_journal(data) == json.loads(data)


@pytest.mark.parametrize("data", [
    b"", b'{"format": "fleetid.subid journal 3", "first": {"path": "/etc/su',
    b'{"format": "fleetid.subid journal 9", "first": {}, "second": {}}',
    b'{"format": "fleetid.subid journal 2", "first": {"path": "/a", "old_kept": true, "new_sha256": "x"}, '
    b'"second": {"path": "/b", "old_kept": false, "new_sha256": "x"}}',
    b'{"format": "fleetid.subid journal 3", "first": {"path": "/a", "old": [1], "new": [1, 2], "new_sha256": "x"}, '
    b'"second": {"path": "/b", "old": null, "new": [1, 3], "new_sha256": "x"}}',
    b'{"format": "fleetid.subid journal 3", "first": {"path": "/a", "old": null, "new": [1, -2], "new_sha256": "x"}, '
    b'"second": {"path": "/b", "old": null, "new": [1, 3], "new_sha256": "x"}}',
])
def test_an_incomplete_or_unknown_journal_reads_as_none(data):
    assert read_journal(data) is None


def test_a_kill_between_the_renames_is_split_and_rolled_back_to_the_old_file_itself(files):
    old_inode = identity(files.subuid)
    os.chmod(files.subuid, 0o640)  # the old file's own mode comes back with it
    files.split()
    assert journal_state(read_journal(open(journal_path(files.subuid), "rb").read())) == "split"
    assert files.recover(check_mode=True) == [
        "%s would be rolled back to its content before an interrupted run, which had replaced it but not %s"
        % (files.subuid, files.subgid)]
    assert open(files.subuid).read() == NEW  # check mode changed nothing
    repaired = files.recover()
    assert repaired == ["%s was rolled back to its content before an interrupted run, which had replaced it but "
                        "not %s" % (files.subuid, files.subgid)]
    assert open(files.subuid).read() == OLD_UID and identity(files.subuid) == old_inode
    assert os.stat(files.subuid).st_mode & 0o777 == 0o640
    assert files.listing() == ["subgid", "subuid"]


def test_the_journal_of_a_file_that_changed_since_restores_nothing(files):
    files.split()
    with open(files.subuid, "a") as handle:  # another writer, in place
        handle.write("carol:300000:10\n")
    assert files.recover() == []
    assert open(files.subuid).read() == NEW + "carol:300000:10\n"
    assert files.warnings == ["%s: an interrupted run left this journal, but %s or %s changed since; they are left "
                              "as they are, check them" % (journal_path(files.subuid), files.subuid, files.subgid)]
    assert files.listing() == ["subgid", "subuid"]


def test_a_kept_link_to_another_file_is_never_rolled_into_place(files, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret:19000:0:99999:7:::\n")
    os.chmod(str(secret), 0o600)
    files.split()
    kept = old_copy_path(files.subuid)
    os.unlink(kept)
    os.link(str(secret), kept)  # a forged journal naming that file's identity
    journal = json.loads(open(journal_path(files.subuid), "rb").read())
    journal["first"]["old"] = identity(str(secret))
    os.unlink(journal_path(files.subuid))
    files.write_journal(json.dumps(journal).encode())
    with pytest.raises(SubidError) as refused:
        files.recover()
    assert str(refused.value) == (
        "%s is not the old file of %s that the journal %s names (a regular file, that file, with no other link), so "
        "%s is not rolled back: check both files, then remove %s and %s" % (
            kept, files.subuid, journal_path(files.subuid), files.subuid, journal_path(files.subuid), kept))
    assert open(files.subuid).read() == NEW and os.stat(files.subuid).st_mode & 0o777 == 0o644
    assert secret.read_text().startswith("root:$6$") and os.stat(str(secret)).st_mode & 0o777 == 0o600


def test_a_journal_that_says_no_old_file_cannot_delete_a_file_it_did_not_write(files):
    # Forged: "the subuid file did not exist", with the digest of the file there now, but
    # that file is not the one the journal says the run renamed into place.
    data = journal_bytes((files.subuid, None, [0, 0], open(files.subuid, "rb").read()),
                         (files.subgid, identity(files.subgid), [0, 0], b"x"))
    files.write_journal(data)
    assert files.recover() == []
    assert open(files.subuid).read() == OLD_UID
    assert files.warnings and files.warnings[0].endswith("changed since; they are left as they are, check them")


@pytest.mark.parametrize("what", ["journal", "kept"])
def test_a_folder_where_a_journal_or_kept_file_belongs_is_refused_by_name(files, what):
    path = journal_path(files.subuid) if what == "journal" else old_copy_path(files.subuid)
    os.mkdir(path)
    with pytest.raises(SubidError) as refused:
        files.recover()
    assert str(refused.value).startswith("%s is not a regular file of root's that only root can write (not a regular "
                                         "file, owner UID %d" % (path, os.geteuid()))
    assert str(refused.value).endswith("check %s by hand, then remove it" % path)
    assert os.path.isdir(path) and open(files.subuid).read() == OLD_UID


def test_a_journal_others_can_write_is_not_trusted(files):
    files.split()
    os.chmod(journal_path(files.subuid), 0o622)
    with pytest.raises(SubidError, match=r"is not a regular file of root's that only root can write \(a regular "
                                         r"file, owner UID \d+, mode 0622, 1 links\)"):
        files.recover()
    assert open(files.subuid).read() == NEW


def test_install_writes_both_files_and_leaves_nothing_behind(files):
    old_uid_mode = os.stat(files.subuid).st_mode
    files.transaction.install([Edit(files.subuid, OLD_UID, NEW), Edit(files.subgid, OLD_GID, NEW)],
                              locks=collections.namedtuple("Locks", "verify")(lambda: None))
    assert open(files.subuid).read() == NEW and open(files.subgid).read() == NEW
    assert os.stat(files.subuid).st_mode == old_uid_mode
    assert files.listing() == ["subgid", "subuid"]
