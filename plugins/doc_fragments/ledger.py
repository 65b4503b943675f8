# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The ledger location, shared by every action that reads or writes the ledger.
    DOCUMENTATION = r"""
options:
  ledger:
    description:
      - Where the ledger lives. A file path selects the file store, a libpq URI starting with
        V(postgresql://) or V(postgres://) selects the PostgreSQL store.
      - B(File store), for one controller. A YAML file on the controller, for example
        C({{ inventory_dir }}/../ledger/subid-ledger.yml) in a folder beside the inventory; keep it
        in git. Never put it (or its lock) inside an inventory folder, where Ansible would read it
        as inventory. A missing file is an
        empty ledger and is created on the first allocation. Its folder must exist. Writers
        lock C(<ledger>.lock) beside it; keep the lock file out of version control.
        A copy of the last ledger text validated, with an index of its blocks, is kept in
        C(${XDG_CACHE_HOME:-~/.cache}/fleetid.subid/) on the controller (about 1.3 times the
        ledger's size), so that a ledger that did not change since is not validated again;
        removing it only costs time.
      - B(PostgreSQL store), for several controllers (AWX/AAP, CI runners, several admins),
        for example V(postgresql://fleetid@db.example.com/subid). The database refuses any two
        blocks that share an ID, whoever writes. The schema C(fleetid_subid) is created on first
        use; one database holds one ledger. The role needs to connect and, on first use, to create
        a schema (owning the database is enough). Needs the Python package C(psycopg) (version 3)
        on the controller.
      - Pass the password through libpq rather than in the URI where you can (C(PGPASSWORD),
        C(PGPASSFILE) or C(~/.pgpass), C(PGSERVICE)). Results and messages show the URI without
        its password.
    type: str
    required: true
"""

    # Actions that write take the writers' lock.
    LOCK = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for the ledger's writers' lock (the file lock, or PostgreSQL's advisory
        lock) before failing. Only calls that change the ledger take it.
      - V(0) tries once. V(inf) waits as long as it takes. A negative number is refused.
    type: float
    default: 60
"""
