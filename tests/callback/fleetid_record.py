# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests only: record what a playbook run did as JSON, for assertions on data rather
than on the screen output. Enabled by tests/conftest.py's ``run_playbook(record=...)``."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fleetid_record
type: aggregate
short_description: Tests only; write each task's status per host and the recap to FLEETID_RECORD
description:
  - Writes JSON to the file named by the environment variable E(FLEETID_RECORD).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleetid_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.tasks = []  # [{"task" (with its role), "name", "host", "status"}] in the order they ran

    def _add(self, result, status):
        task = result._task
        self.tasks.append({"task": task.get_name(), "name": task.name, "host": result._host.get_name(),
                           "status": status})

    def v2_runner_on_ok(self, result):
        self._add(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_skipped(self, result):
        self._add(result, "skipped")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._add(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_unreachable(self, result):
        self._add(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        recap = {host: stats.summarize(host) for host in sorted(stats.processed)}
        with open(os.environ["FLEETID_RECORD"], "w") as handle:
            json.dump({"tasks": self.tasks, "recap": recap}, handle, indent=1)
