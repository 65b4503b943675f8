"""A throwaway PostgreSQL server for the tests: Debian's postgresql package, initdb in a
temporary folder as an unprivileged user, 127.0.0.1 only, password authentication.

Started once per test session (tests/conftest.py) and stopped, its folder removed, at the
end. Each test gets a database of its own, owned by an unprivileged login role.
"""

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

ROLE = "fleetid"
# Distinctive, so a test can search any output for it; needs URI escaping.
PASSWORD = "Pw-fleetid/9x#q@z"
ADMIN_PASSWORD = "admin-Pw-7c1e"


def _bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: install Debian's postgresql package "
                           "(scripts/setup does)")
    return found[-1]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="fleetid-pg-")
        self.port = _free_port()
        self.data = os.path.join(self.base, "data")
        self.sock = os.path.join(self.base, "sock")
        self.log = os.path.join(self.base, "log")
        self._names = itertools.count(1)
        self._user = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            self._user = "postgres"
            owner = pwd.getpwnam(self._user)
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        os.mkdir(self.sock)
        if self._user:
            os.chown(self.sock, owner.pw_uid, owner.pw_gid)
        pwfile = os.path.join(self.base, "pw")
        with open(pwfile, "w") as handle:
            handle.write(ADMIN_PASSWORD + "\n")
        if self._user:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(_bin("initdb"), "-D", self.data, "-A", "scram-sha-256", "-U", "postgres", "--pwfile", pwfile,
                  "--no-sync", "-E", "UTF8")
        os.unlink(pwfile)
        self._run(_bin("pg_ctl"), "-D", self.data, "-w", "-l", self.log, "-o",
                  "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.sock), "start")
        self.sql("postgres", "CREATE ROLE %s LOGIN PASSWORD '%s'" % (ROLE, PASSWORD))

    def _run(self, *cmd):
        if self._user:
            cmd = ("runuser", "-u", self._user, "--") + cmd
        subprocess.run(cmd, check=True, capture_output=True, cwd=self.base)

    def admin_uri(self, database):
        return "postgresql://postgres:%s@127.0.0.1:%d/%s" % (ADMIN_PASSWORD, self.port, database)

    def uri(self, database, password=PASSWORD):
        auth = ROLE if password is None else "%s:%s" % (ROLE, urllib.parse.quote(password, safe=""))
        return "postgresql://%s@127.0.0.1:%d/%s" % (auth, self.port, database)

    def sql(self, database, statement):
        """Run one statement as the superuser; returns the rows as text lines."""
        proc = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.admin_uri(database), "-c", statement],
            capture_output=True, text=True, check=False)
        if proc.returncode:
            raise RuntimeError("psql failed: %s" % proc.stderr.strip())
        return proc.stdout.splitlines()

    def new_database(self):
        name = "ledger_%d_%d" % (os.getpid(), next(self._names))
        self.sql("postgres", "CREATE DATABASE %s OWNER %s" % (name, ROLE))
        return name

    def stop(self):
        try:
            self._run(_bin("pg_ctl"), "-D", self.data, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
