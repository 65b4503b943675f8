# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every action of this collection shares: its options checked against its spec,
and one way a failure becomes the task's result.

An action declares ``ARGUMENT_SPEC`` and writes ``act(args, task_vars, result)``, which
fills ``result`` and raises on failure: ``AnsibleActionFail`` with a message of its own,
a ``FleetidError`` (whose message already says what is at fault), or an ``OSError``.
Each becomes ``failed`` and ``msg`` here, once, keeping what ``act`` had put in
``result`` so far (the ledger's location, say).
"""

from __future__ import annotations

import datetime

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.fleetid.subid.plugins.module_utils._errors import FleetidError
from ansible_collections.fleetid.subid.plugins.plugin_utils.ledger_service import describe


class FleetidAction(ActionBase):
    """An action that runs on the controller only: no connection, no files to the host."""

    TRANSFERS_FILES = False
    _requires_connection = False
    ARGUMENT_SPEC = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._VALID_ARGS = frozenset(cls.ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        try:
            args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)[1]
            try:
                self.act(args, task_vars or {}, result)
            except FleetidError as exc:
                raise AnsibleActionFail(str(exc)) from None  # the message is complete as it is
            except OSError as exc:
                where = describe(args["ledger"]) if isinstance(args.get("ledger"), str) else None
                raise AnsibleActionFail("ledger %s: %s" % (where, exc) if where else str(exc)) from None
        except AnsibleActionFail as exc:
            result.update(exc.result)
            # ansible-core before 2.21 puts failed and msg into exc.result; 2.21 and later add
            # them only when the exception leaves the action, so a caught one would read as ok.
            result.update(failed=True, msg=exc.result.get("msg") or exc.message)
        return result

    def act(self, args, task_vars, result):
        raise NotImplementedError

    @staticmethod
    def today():
        """The date blocks are stamped with: today in UTC, the same on every controller."""
        return datetime.datetime.now(datetime.timezone.utc).date().isoformat()
