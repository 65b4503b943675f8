"""The project layout the README shows works: a folder inventory, the ledger (and its lock)
in ledger/ beside it, the audit reports in reports/ by default. Ansible must never read
any of those files as inventory: no warning about them, no extra hosts, run after run."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import TOP, ansible_env, run_playbook

HOSTS = {"node1", "node2"}

PLAYBOOK = """\
- name: Allocate
  hosts: all
  gather_facts: false
  tasks:
    - name: Allocate this host's blocks
      fleetid.subid.allocate:
        ledger: "{{ subid_ledger }}"
        pool: "{{ subid_pool }}"
        owners: "{{ subid_owners }}"

- name: Audit
  ansible.builtin.import_playbook: %s
""" % (TOP / "playbooks" / "audit.yml")


def make_project(root):
    """The README's layout: inventory/, ledger/ beside it, a playbook at the top."""
    inventory = root / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "host_vars").mkdir()
    (root / "ledger").mkdir()
    (inventory / "hosts.yml").write_text(textwrap.dedent("""\
        all:
          hosts:
            node1:
            node2:
          vars:
            ansible_connection: local
            ansible_python_interpreter: %s
        """ % sys.executable))
    (inventory / "group_vars" / "all.yml").write_text(textwrap.dedent("""\
        subid_ledger: "{{ inventory_dir }}/../ledger/subid-ledger.yml"
        subid_pool:
          ranges:
            - {start: 100000, count: 500000000}
          block_size: 65536
        subid_owners:
          - alice
          - {name: bob, count: 4194304}
        """))
    (inventory / "host_vars" / "node2.yml").write_text(
        "subid_owners: [alice, {name: bob, count: 4194304}, {name: containers, count: 1048576, scope: host}]\n")
    (root / "site.yml").write_text(PLAYBOOK)
    return inventory


def inventory_hosts(inventory):
    proc = subprocess.run([str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(inventory), "--list"],
                          env=ansible_env(ANSIBLE_INVENTORY_UNPARSED_WARNING="true"), capture_output=True,
                          text=True, check=True)
    assert "[WARNING]" not in proc.stderr + proc.stdout, proc.stderr
    return set(json.loads(proc.stdout)["_meta"]["hostvars"])


def test_ledger_lock_and_reports_stay_out_of_the_inventory(tmp_path):
    inventory = make_project(tmp_path)
    for run in range(2):
        proc = run_playbook(tmp_path / "site.yml", "-e", "subid_audit_fail_on_critical=false",
                            inventory=str(inventory), env={"ANSIBLE_INVENTORY_UNPARSED_WARNING": "true"})
        output = proc.stdout + proc.stderr
        assert "[WARNING]" not in output, "run %d:\n%s" % (run, output)
        recap = proc.stdout.split("PLAY RECAP")[1].splitlines()[1:]
        assert {line.split()[0] for line in recap if line.strip()} == HOSTS, proc.stdout
        assert inventory_hosts(inventory) == HOSTS

    ledger = (tmp_path / "ledger" / "subid-ledger.yml").read_text()
    assert 'owner: "alice"' in ledger and 'scope: "host:node2"' in ledger
    assert (tmp_path / "ledger" / "subid-ledger.yml.lock").exists()
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "subid-audit.json", "subid-audit.md", "subid-idspace.svg"]
    assert sorted(p.name for p in inventory.iterdir()) == ["group_vars", "host_vars", "hosts.yml"]


TYPO_PLAYBOOK = """\
- name: Audit
  ansible.builtin.import_playbook: %s

- name: Allocate as the subids role does
  hosts: all
  gather_facts: false
  tasks:
    - name: Allocate this host's blocks
      fleetid.subid.allocate:
        ledger: "{{ subid_ledger }}"
        pool: "{{ subid_pool }}"
        owners: "{{ subid_owners | default([]) }}"
""" % (TOP / "playbooks" / "audit.yml")


def test_a_misspelt_variable_and_a_host_without_owners_are_warned_about(tmp_path):
    inventory = make_project(tmp_path)
    (inventory / "host_vars" / "node1.yml").write_text("subid_owner: [alice]\nmy_own: 1\n")
    (inventory / "group_vars" / "all.yml").write_text(
        (inventory / "group_vars" / "all.yml").read_text().split("subid_owners:")[0]
        + "rootless_podman_test_imge: localhost/x\nsubid_site_label: mine\n")
    (tmp_path / "typo.yml").write_text(TYPO_PLAYBOOK)
    proc = run_playbook(tmp_path / "typo.yml", "-e", "subid_audit_fail_on_critical=false",
                        "-e", '{"subid_known_vars": ["subid_site_label"]}', inventory=str(inventory))
    output = " ".join((proc.stdout + proc.stderr).split())  # warnings wrap
    assert proc.returncode == 0, output
    assert ("subid_owner (set for node1) is read by no role or playbook of fleetid.subid, so it has no effect: "
            "did you mean subid_owners?") in output, output
    assert ("rootless_podman_test_imge (set for node1, node2) is read by no role or playbook of fleetid.subid, so "
            "it has no effect: did you mean rootless_podman_test_image?") in output, output
    assert "subid_site_label" not in output and "my_own" not in output
    assert output.count("is read by no role or playbook") == 2  # once per name, not once per host
    assert ("node1 gets no subordinate ID ranges: no owner is requested for it (see subid_owners and "
            "subid_owner_groups in this host's variables)") in output, output
    assert "node2 gets no subordinate ID ranges" not in output
