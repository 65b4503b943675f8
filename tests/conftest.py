"""Shared pytest set-up: the checkout importable as ansible_collections.fleetid.subid,
and helpers that run the collection's modules through a real ansible-playbook."""

import json
import os
import time
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: on a loaded 2-core machine Hypothesis's
# deadline and "generation too slow" checks fail runs whose every assertion held.
settings.register_profile("fleetid", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fleetid")

TOP = Path(__file__).resolve().parent.parent
COLLECTIONS = TOP / ".collections"
sys.path.insert(0, str(COLLECTIONS))


def ansible_env(**extra):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    env.update(extra)
    return env


def run_playbook(path, *args, inventory="localhost,", env=None, check=True):
    """Run ansible-playbook; return the CompletedProcess (output in .stdout)."""
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory, str(path), *args]
    proc = subprocess.run(cmd, env=ansible_env(**(env or {})), capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("ansible-playbook failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr))
    return proc


def by_hand(text):
    """A ledger file's text (str or bytes) as a person leaves it after changing it on
    purpose: its seal line replaced by the line that accepts the edit (see ledger.unseal)."""
    from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import ACCEPT_EDIT

    data = text.encode() if isinstance(text, str) else text
    cut = data.rfind(b"\n", 0, len(data) - 1) + 1
    assert data[cut:].startswith(b"# end: "), "not a sealed ledger"
    data = data[:cut] + ACCEPT_EDIT
    return data.decode() if isinstance(text, str) else data


def sealed(text):
    """The file text the store writes for the ledger text ``text`` (ledger.render's)."""
    from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger import seal

    return seal(text.encode()).decode()


class Run:
    """What a recorded playbook run did (tests/callback/fleetid_record.py): ``recap[host]``
    holds the recap's counts, ``status(task, host)`` what one task did there."""

    def __init__(self, proc, record):
        self.proc, self.stdout, self.stderr, self.returncode = proc, proc.stdout, proc.stderr, proc.returncode
        self.tasks, self.recap = record["tasks"], record["recap"]

    def status(self, task, host="localhost"):
        """ok, changed, skipped, failed, ignored or unreachable; KeyError if it did not run."""
        found = [t["status"] for t in self.tasks if task in (t["task"], t["name"]) and t["host"] == host]
        if len(found) != 1:
            raise KeyError("task %r ran %d times on %s" % (task, len(found), host))
        return found[0]


def run_recorded(path, *args, env=None, **kwargs):
    """run_playbook, with what each task did and the recap recorded as data: a Run."""
    record = Path(str(path) + ".record.json")
    record.unlink(missing_ok=True)
    proc = run_playbook(path, *args, env=dict(env or {}, FLEETID_RECORD=str(record),
                                              ANSIBLE_CALLBACK_PLUGINS=str(TOP / "tests" / "callback"),
                                              ANSIBLE_CALLBACKS_ENABLED="fleetid_record"), **kwargs)
    return Run(proc, json.loads(record.read_text()))


@pytest.fixture
def run_module(tmp_path):
    """Run one module (or action) task on localhost through ansible-playbook.

    Returns the registered result as a dict, failures included (result["failed"]).
    """

    def run(name, args, check_mode=False, diff=False, env=None):
        out = tmp_path / ("result-%d.json" % len(list(tmp_path.glob("result-*.json"))))
        playbook = tmp_path / "play.yml"
        playbook.write_text(textwrap.dedent("""\
            - hosts: localhost
              connection: local
              gather_facts: false
              tasks:
                - name: Module under test
                  {name}: "{{{{ module_args }}}}"
                  register: result
                  ignore_errors: true
                - name: Save the result
                  ansible.builtin.copy:
                    content: "{{{{ result | to_json }}}}"
                    dest: {out}
                  check_mode: false
                  diff: false
            """).format(name=name, out=out))
        extra = tmp_path / "args.json"
        extra.write_text(json.dumps({"module_args": args}))
        flags = ["-e", "@%s" % extra]
        if check_mode:
            flags.append("--check")
        if diff:
            flags.append("--diff")
        run_playbook(playbook, *flags, env=env)
        return json.loads(out.read_text())

    return run


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for this test session (tests/pg_server.py), stopped at the end."""
    from pg_server import Server

    server = Server()
    yield server
    server.stop()


@pytest.fixture
def pg_ledger(postgres):
    """The URI (with password) of an empty database of its own, owned by an unprivileged role."""
    return postgres.uri(postgres.new_database())


def wait_until_open(pid, path, seconds=10.0):
    """Return once process ``pid`` holds ``path`` open (one of its /proc/PID/fd links names
    it): the handshake with a child that must have opened a lock file before the test goes on."""
    deadline = time.monotonic() + seconds
    target = os.path.realpath(str(path))
    while time.monotonic() < deadline:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except FileNotFoundError:
            raise AssertionError("process %d ended before it opened %s" % (pid, target))
        for fd in fds:
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return
            except OSError:
                continue
        time.sleep(0.01)
    raise AssertionError("process %d did not open %s within %gs" % (pid, target, seconds))


def sleep_in_user_namespace(user, env):
    """A process of ``user`` in a rootless Podman user namespace (``podman unshare sleep``),
    returned once the namespace is made: what a leaver's running container leaves behind."""
    sleeper = subprocess.Popen(["runuser", "-u", user, "--", "env", "-u", "XDG_RUNTIME_DIR", "podman", "unshare",
                                "sleep", "300"], cwd="/", env=dict(os.environ, **env))
    for dummy in range(100):
        if subprocess.run(["pgrep", "-u", user, "-x", "sleep"], capture_output=True, check=False).returncode == 0:
            break
        time.sleep(0.1)
    return sleeper
