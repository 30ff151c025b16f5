# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ikemesh.mesh.files: render a role's templates and read its files on the controller,
then put all of them on the node with one run of the module ikemesh.mesh.files.

Documentation: plugins/modules/files.py (ansible-doc ikemesh.mesh.files).
"""

from __future__ import annotations

import os
import string

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible_collections.ikemesh.mesh.plugins.action.render_configs import (
    TEMPLATE_OVERRIDES,
    _core_template_vars,
    template_search_path,
    trust_as_template,
)

SOURCES = ("template", "src", "content")
ENTRY_KEYS = frozenset(SOURCES + ("dest", "each", "each_var", "mode", "owner", "group", "validate", "state"))


def entry_error(number, entry, message):
    where = entry.get("dest") if isinstance(entry, dict) else None
    return AnsibleActionFail(
        f"ikemesh.mesh.files: files[{number}]" + (f" ({where})" if where else "") + f": {message}"
    )


def check_entry(number, entry):
    """The entry's source key (None for state=absent); raises on a malformed entry."""
    if not isinstance(entry, dict):
        raise entry_error(number, entry, f"must be a dict, got {entry!r}")
    unknown = set(entry) - ENTRY_KEYS
    if unknown:
        raise entry_error(number, entry, f"unknown keys {', '.join(sorted(unknown))}")
    if not isinstance(entry.get("dest"), str) or not entry["dest"]:
        raise entry_error(number, entry, "dest is required")
    given = [key for key in SOURCES if entry.get(key) is not None]
    if entry.get("state", "present") == "absent":
        if given or "each" in entry:
            raise entry_error(number, entry, "state=absent takes no template, src, content or each")
        return None
    if len(given) != 1:
        raise entry_error(number, entry, "give exactly one of template, src, content")
    if "each" in entry and given != ["template"]:
        raise entry_error(number, entry, "each needs a template")
    return given[0]


def each_dest(number, entry, element):
    """The destination pattern filled from one element of each ({key} fields)."""
    if not isinstance(element, dict):
        raise entry_error(number, entry, f"each: elements must be dicts, got {element!r}")
    fields = [name for _text, name, _spec, _conv in string.Formatter().parse(entry["dest"]) if name]
    missing = [name for name in fields if name not in element]
    if missing:
        raise entry_error(number, entry, f"each: an element has no {', '.join(missing)} for dest")
    return entry["dest"].format_map({name: element[name] for name in fields})


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("files", "prune"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        entries = self._task.args.get("files")
        if not isinstance(entries, list):
            raise AnsibleActionFail("ikemesh.mesh.files: files must be a list")
        files = []
        for number, entry in enumerate(entries, 1):
            source = check_entry(number, entry)
            passed = {
                key: entry[key] for key in ("mode", "owner", "group", "validate", "state") if key in entry
            }
            if source == "template":
                for dest, content in self._render(number, entry, task_vars):
                    files.append(dict(passed, dest=dest, content=content))
            elif source == "src":
                files.append(dict(passed, dest=entry["dest"], content=self._read(number, entry)))
            else:
                files.append(dict(passed, dest=entry["dest"], content=entry.get("content")))
        module_args = {"files": files}
        if self._task.args.get("prune") is not None:
            module_args["prune"] = self._task.args["prune"]
        result.update(
            self._execute_module("ikemesh.mesh.files", module_args=module_args, task_vars=task_vars)
        )
        return result

    def _read(self, number, entry):
        try:
            path = self._find_needle("files", entry["src"])
            return self._loader.get_text_file_contents(path)
        except AnsibleError as exc:
            raise entry_error(number, entry, to_text(exc)) from None

    def _render(self, number, entry, task_vars):
        """(dest, content) for the template, once, or once per element of each: rendered as
        ansible.builtin.template renders it."""
        try:
            source = self._find_needle("templates", entry["template"])
            text = trust_as_template(self._loader.get_text_file_contents(source))
        except AnsibleError as exc:
            raise entry_error(number, entry, to_text(exc)) from None
        searchpath = template_search_path(task_vars, self._loader.get_basedir(), [os.path.dirname(source)])
        variables = dict(task_vars)
        variables.update(
            _core_template_vars(
                path=entry["template"],
                fullpath=source,
                dest_path=None,
                include_ansible_managed="ansible_managed" not in task_vars,
            )
        )
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
        if "each" not in entry:
            jobs = [(entry["dest"], None)]
        else:
            if not isinstance(entry["each"], list):
                raise entry_error(number, entry, "each must be a list")
            jobs = [(each_dest(number, entry, element), element) for element in entry["each"]]
        rendered = []
        for dest, element in jobs:
            variables["template_destpath"] = dest
            if element is not None:
                variables[entry.get("each_var") or "item"] = element
            templar.available_variables = variables
            try:
                text_out = templar.template(text, escape_backslashes=False, overrides=TEMPLATE_OVERRIDES)
            except AnsibleError as exc:
                raise entry_error(number, entry, f"{dest}: {to_text(exc)}") from None
            rendered.append((dest, "" if text_out is None else to_text(text_out)))
        return rendered
