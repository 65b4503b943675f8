# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The options of the modules that run Podman as each user from root
    # (rootless_check, rootless_migrate); their specs come from module_utils.rootless.
    DOCUMENTATION = r"""
options:
  podman_options:
    description: Global Podman options placed before the subcommand, for example C([--cgroup-manager, cgroupfs]).
    type: list
    elements: str
    default: []
notes:
  - Runs as root and runs Podman as each user with C(runuser) (util-linux), so no become to
    an unprivileged user is needed. Requires Podman on the host.
"""
