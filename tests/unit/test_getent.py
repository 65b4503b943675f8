"""The one runner for getent (module_utils/_getent), against the machine's real getent."""

import grp
import pwd
import shutil
import subprocess

import pytest

from ansible_collections.fleetid.subid.plugins.module_utils._getent import GetentError, getent, host_ids, id_column


class Host:
    """What the runner uses of AnsibleModule, backed by the real programs."""

    def __init__(self, path=None):
        self.path = path

    def get_bin_path(self, name, required=False):
        found = shutil.which(name, path=self.path)
        if found is None and required:
            raise SystemExit("%s is missing" % name)
        return found

    def run_command(self, argv, environ_update=None):
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(environ_update or {}, PATH="/usr/bin:/bin"))
        return done.returncode, done.stdout, done.stderr


def test_host_ids_list_every_account_and_group_with_its_first_name():
    uids, uid_names = host_ids(Host(), "passwd")
    assert uids == sorted({e.pw_uid for e in pwd.getpwall()})
    assert uid_names[0] == "root"
    gids, gid_names = host_ids(Host(), "group")
    assert gids == sorted({e.gr_gid for e in grp.getgrall()})
    assert gid_names[0] == "root"


def test_without_getent_the_files_are_read_instead(tmp_path):
    assert host_ids(Host(path=str(tmp_path)), "passwd") == host_ids(Host(), "passwd")


def test_a_key_that_finds_nothing_is_no_failure():
    assert getent(Host(), "passwd", ["root", "no-such-account-x"]).startswith("root:x:0:0:")


def test_a_key_that_starts_with_a_dash_is_a_key_not_an_option():
    # getent would read "-x" as an option and fail for every key.
    assert getent(Host(), "passwd", ["-x", "root"]).startswith("root:x:0:0:")


def test_a_failing_getent_is_an_error_naming_the_command():
    with pytest.raises(GetentError, match=r"\Agetent nosuchdb failed \(rc=1\): Unknown database: nosuchdb"):
        getent(Host(), "nosuchdb")


def test_id_column_keeps_only_lines_with_a_numeric_id():
    text = "root:x:0:0:root:/root:/bin/bash\nbroken\nodd:x:notanumber:5\nshort:x:7\n"
    assert id_column(text) == [("root", 0, "0"), ("short", 7, "")]
