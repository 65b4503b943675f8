"""Fixtures and helpers for tests that change this machine's real /etc/subuid and
/etc/subgid and create real users; every change is undone in a finalizer.

(Not a conftest.py: the tests here import helpers from the top-level tests/conftest.py by
the name ``conftest``.)
"""

import subprocess
import uuid
from pathlib import Path

import pytest

REAL = ("/etc/subuid", "/etc/subgid")


@pytest.fixture
def real_files():
    """The real files, restored byte for byte (or removed again) afterwards."""
    saved = {p: (Path(p).read_bytes() if Path(p).exists() else None) for p in REAL}
    yield REAL
    for path, data in saved.items():
        if data is None:
            Path(path).unlink(missing_ok=True)
        else:
            Path(path).write_bytes(data)


@pytest.fixture
def users(real_files):
    """``make()`` creates a user with a unique name (and no subordinate IDs of useradd's own);
    all are removed with their homes afterwards."""
    created = []

    def make(prefix="fr"):
        name = prefix + uuid.uuid4().hex[:8]
        subprocess.run(["useradd", "--create-home", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name],
                       check=True)
        created.append(name)
        return name

    yield make
    for name in created:
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def as_user(name, *cmd):
    return subprocess.run(["runuser", "-u", name, "--", *cmd], check=True, capture_output=True, text=True,
                          cwd="/").stdout
