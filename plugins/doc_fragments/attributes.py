# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The attributes every controller-side action shares (an action plugin with a doc-only
    # module). List it before ansible.builtin.action_common_attributes and its .flow
    # fragment, which describe the attributes: the first fragment to set a key wins. Each
    # module adds check_mode and diff_mode.
    CONTROLLER = r"""
attributes:
  action:
    support: full
    details: All the work happens in the action plugin, on the controller.
  async:
    support: none
  bypass_host_loop:
    support: none
  platform:
    support: full
    platforms: posix
    details: Runs on the controller and never connects to the host.
"""

    # The host modules that only read (owners_info, subid_info). List it before
    # ansible.builtin.action_common_attributes, as above.
    HOST_INFO = r"""
attributes:
  check_mode:
    support: full
    details: The module changes nothing, so a check-mode run reads exactly what a real run reads.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
"""
