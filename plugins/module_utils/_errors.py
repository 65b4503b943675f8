# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of every error this collection raises on purpose.

Each subclass is raised with a message a fleet administrator can act on: it names the
line, owner, range, file or lock at fault and says that nothing was changed. A module
or action catches ``FleetidError`` once and reports its message as it is; anything else
that escapes is a bug, and keeps its traceback.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class FleetidError(Exception):
    """A refusal or failure this collection explains in its message."""
