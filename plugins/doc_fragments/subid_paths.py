# -*- coding: utf-8 -*-
# Copyright: fleetid.subid contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The paths of the subid files, as every host module that reads them takes them;
    # their spec is module_utils._subid_read.SUBID_PATHS_SPEC.
    DOCUMENTATION = r"""
options:
  subuid_path:
    description: Path of the subuid file. Tests and chroots point elsewhere.
    type: path
    default: /etc/subuid
  subgid_path:
    description: Path of the subgid file.
    type: path
    default: /etc/subgid
"""
