"""Role fleetid.subid.uidmap on this machine: the real newuidmap passes; one that lost its
setuid bit is a clear failure naming the helper and the fix."""

import os
import stat

import pytest

from conftest import run_playbook, run_recorded

pytestmark = pytest.mark.needs_root

PLAY = """\
- name: Check the ID-map helpers
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: fleetid.subid.uidmap
      vars:
        uidmap_install: false
"""


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "uidmap.yml"
    path.write_text(PLAY)
    return path


def test_intact_helpers_pass(playbook):
    run = run_recorded(playbook)
    assert run.status("fleetid.subid.uidmap : Check that newuidmap and newgidmap can write ID maps") == "ok"
    assert run.recap["localhost"]["failures"] == 0


def test_a_helper_without_setuid_or_caps_fails_clearly(playbook):
    helper = "/usr/bin/newuidmap"
    mode = os.stat(helper).st_mode
    assert mode & stat.S_ISUID, "the test expects Debian's setuid newuidmap"
    os.chmod(helper, stat.S_IMODE(mode) & ~stat.S_ISUID)
    try:
        proc = run_playbook(playbook, check=False)
    finally:
        os.chmod(helper, stat.S_IMODE(mode))
    assert proc.returncode != 0
    assert "newuidmap at /usr/bin/newuidmap carries neither the setuid bit nor the cap_setuid file" in proc.stdout
    assert "chmod u+s /usr/bin/newuidmap" in proc.stdout
    assert os.stat(helper).st_mode & stat.S_ISUID


def test_intact_helpers_need_no_package_manager_and_no_facts(tmp_path):
    """A converged host costs one module run: no fact gathering, no apt."""
    path = tmp_path / "install.yml"
    path.write_text(PLAY.replace("uidmap_install: false", "uidmap_install: true"))
    run = run_recorded(path)
    assert run.status("fleetid.subid.uidmap : Inspect the ID-map helpers") == "ok"
    assert run.status("Set platform variables for fleetid.subid.uidmap") == "skipped"
    assert run.status("fleetid.subid.uidmap : Install newuidmap and newgidmap") == "skipped"
    assert not [t for t in run.tasks if t["name"].startswith("Gather the facts")]
    assert run.recap["localhost"]["changed"] == 0 and run.recap["localhost"]["failures"] == 0
