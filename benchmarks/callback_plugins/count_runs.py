# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark helper (benchmarks/bench_roles.py): one JSON line per task result and per
loop item, and one per task start, written to $FLEETID_BENCH_EVENTS."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: count_runs
type: aggregate
short_description: Record every task result and loop item for benchmarks/bench_roles.py
description: Appends one JSON line per event to the file named by FLEETID_BENCH_EVENTS.
requirements: [enable in ansible.cfg or ANSIBLE_CALLBACKS_ENABLED]
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "count_runs"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._out = open(os.environ["FLEETID_BENCH_EVENTS"], "a")

    def _write(self, **event):
        event["t"] = time.time()
        self._out.write(json.dumps(event) + "\n")
        self._out.flush()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._write(kind="task", name=task.get_name(), action=task.action)

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _result(self, result, status, item=False):
        loop_parent = not item and "results" in result._result
        self._write(kind="result", status=status, host=result._host.get_name(),
                    action=result._task.action, task=result._task.get_name(),
                    item=item, loop_parent=loop_parent)

    def v2_runner_on_ok(self, result):
        self._result(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._result(result, "unreachable")

    def v2_runner_item_on_ok(self, result):
        self._result(result, "ok", item=True)

    def v2_runner_item_on_failed(self, result):
        self._result(result, "failed", item=True)

    def v2_runner_item_on_skipped(self, result):
        self._result(result, "skipped", item=True)
