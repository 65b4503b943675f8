"""The Debian-based execution environment of docs/docsite/rst/execution_environment.rst,
built with the real ansible-builder and Podman, then a PostgreSQL-ledger playbook run
inside it against a real server this test starts (tests/pg_server.py).

Run by scripts/compat (it builds the base image first). The definition is the one in the
guide; only the collection's source (the checkout's tarball, not Galaxy) and the CA bundle
pip trusts during the build (this machine's) are changed here.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import TOP
from pg_server import PASSWORD

GUIDE = TOP / "docs" / "docsite" / "rst" / "execution_environment.rst"
IMAGE = "localhost/fleetid-ee-test:latest"
CONTAINERS_CONF = str(TOP / "tests" / "podman" / "containers.conf")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"

PLAY = """\
- name: Allocate from a PostgreSQL ledger inside the execution environment
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Allocate
      fleetid.subid.allocate:
        ledger: "{{ ledger }}"
        pool: {ranges: [{start: 100000, count: 10000000}]}
        owners: [alice, bob]
      register: allocation

    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ allocation | to_json }}"
        dest: /runner/out/allocation.json
        mode: "0644"
"""


def guide_definitions():
    """The YAML blocks of the guide, parsed."""
    blocks = re.findall(r"\.\. code-block:: yaml\n\n((?:    .*\n|\n)+)", GUIDE.read_text())
    return [yaml.safe_load("\n".join(line[4:] for line in block.splitlines())) for block in blocks]


def podman(*args, **kwargs):
    return subprocess.run(["podman", *args], env=dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF),
                          capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    work = tmp_path_factory.mktemp("ee")
    subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(work), str(TOP)],
                   check=True, capture_output=True, text=True)
    tarball, = work.glob("fleetid-subid-*.tar.gz")
    definition, = [d for d in guide_definitions() if d["images"]["base_image"]["name"].startswith("localhost/")]
    definition["dependencies"]["galaxy"] = {
        "collections": [{"name": "/build/files/%s" % tarball.name, "type": "file"}]}
    definition["additional_build_files"] = [{"src": str(tarball), "dest": "files"},
                                            {"src": HOST_CA, "dest": "ca"}]
    definition["additional_build_steps"] = {"prepend_base": [
        "COPY _build/ca/ca-certificates.crt /etc/fleetid-build-ca.crt",
        "ENV PIP_CERT=/etc/fleetid-build-ca.crt"]}
    path = work / "execution-environment.yml"
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    builder = str(Path(sys.executable).with_name("ansible-builder"))
    proc = subprocess.run(
        [builder, "build", "--file", str(path), "--context", str(work / "context"), "--tag", IMAGE,
         "--container-runtime", "podman", "--extra-build-cli-args=--network host", "-v", "2"],
        env=dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF), capture_output=True, text=True, check=False,
        timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    yield IMAGE
    podman("rmi", "--force", IMAGE)


def test_the_guide_shows_both_definitions_and_lists_the_collection():
    definitions = guide_definitions()
    assert [d["images"]["base_image"]["name"].split("/")[0] for d in definitions] == [
        "registry.redhat.io", "localhost"]
    for definition in definitions:
        assert definition["version"] == 3
        assert definition["dependencies"]["galaxy"] == {"collections": [{"name": "fleetid.subid"}]}


def test_the_ee_holds_the_collection_and_psycopg(image):
    proc = podman("run", "--rm", image, "bash", "-c",
                  "ansible-galaxy collection list fleetid.subid && python3 -c 'import psycopg; print(psycopg.__version__)'"
                  " && ansible --version")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^fleetid\.subid\s+\d+\.\d+\.\d+", proc.stdout, re.M), proc.stdout
    assert re.search(r"^3\.\d+", proc.stdout, re.M), proc.stdout
    assert "ansible [core 2." in proc.stdout


def test_a_postgresql_ledger_playbook_runs_inside_the_ee(image, postgres, tmp_path):
    project, out = tmp_path / "project", tmp_path / "out"
    project.mkdir()
    out.mkdir()
    (project / "play.yml").write_text(PLAY)
    tmp_path.chmod(0o755)
    out.chmod(0o777)  # the EE runs as an unprivileged user
    ledger = postgres.uri(postgres.new_database(), password=None)
    # As AWX does: the password comes in PGPASSWORD, not in the URI; --network host reaches
    # the server on 127.0.0.1.
    proc = podman("run", "--rm", "--network", "host", "-e", "PGPASSWORD=" + PASSWORD,
                  "-e", "ANSIBLE_LOCALHOST_WARNING=false",
                  "-v", "%s:/runner/project:ro" % project, "-v", "%s:/runner/out" % out, image,
                  "ansible-playbook", "-i", "localhost,", "-e", "ledger=" + ledger, "/runner/project/play.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    allocation = json.loads((out / "allocation.json").read_text())
    assert allocation["changed"] is True
    assert sorted(entry["name"] for entry in allocation["subuid"]) == ["alice", "bob"]
    assert PASSWORD not in proc.stdout + proc.stderr
    # The blocks are in the database, as any controller sees them.
    info = podman("run", "--rm", "--network", "host", "-e", "PGPASSWORD=" + PASSWORD, image,
                  "ansible", "localhost", "-m", "fleetid.subid.ledger_info", "-a", "ledger=" + ledger)
    assert info.returncode == 0, info.stdout + info.stderr
    assert sorted(block["owner"] for block in json.loads(info.stdout.split("=>", 1)[1])["blocks"]) == [
        "alice", "bob"]
