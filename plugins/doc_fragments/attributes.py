# Copyright: ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Descriptions of the module attributes every ikemesh.mesh module declares; each module states only
its own support level (C(attributes.check_mode.support), ...)."""


class ModuleDocFragment:
    # Use with `extends_documentation_fragment: [ikemesh.mesh.attributes]`.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: >-
      Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
"""

    # The module runs partly on the controller through an action plugin of the same name.
    ACTION = r"""
options: {}
attributes:
  action:
    description: >-
      Indicates this has a corresponding action plugin so some parts of the options can be executed on
      the controller.
"""
