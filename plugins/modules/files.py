#!/usr/bin/python
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: files
short_description: Put a set of files on a node in one module run (templates rendered on the controller)
version_added: "0.3.0"
description:
  - Makes each listed file hold exactly the given content, mode and owner, and removes the listed
    absent files and, with O(prune), the files of a pattern that are no longer listed. All of it in
    one module run on the node, where M(ansible.builtin.template) or M(ansible.builtin.copy) in a
    loop start Python on the node two or three times per file (seconds each on a small or emulated
    node).
  - Its action plugin renders C(template) entries on the controller, exactly as
    M(ansible.builtin.template) does (same templating, same template variables, the role's
    C(templates/) search path), and reads C(src) entries from the role's C(files/) or the given path.
  - A file is written only when its content, mode or owner differs, atomically (a temporary file in the
    same directory, validated if asked, renamed over the old one). Missing parent directories are
    created (mode 0755).
  - RV(changed_files) lists what changed, so handlers can tell which of the files did.
author: ikemesh developers (@ikemesh)
options:
  files:
    description:
      - The files.
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description:
          - Absolute path on the node.
          - With O(files[].each), a pattern whose C({key}) fields are filled from each element (a dict),
            for example C(/etc/swanctl/conf.d/ikemesh-{name}.conf).
        type: str
        required: true
      template:
        description: A template rendered on the controller (relative paths from the role's C(templates/)).
        type: str
      src:
        description: A text file on the controller (relative paths from the role's C(files/)).
        type: str
      content:
        description: The content itself.
        type: str
      each:
        description:
          - With O(files[].template), renders it once per element of this list, the element available
            to the template as the variable O(files[].each_var).
        type: list
        elements: dict
      each_var:
        description: The variable that holds the element of O(files[].each) in the template.
        type: str
        default: item
      mode:
        description: Permission bits, an octal string.
        type: str
        default: "0644"
      owner:
        description: Owner (a user name); unchanged when omitted.
        type: str
      group:
        description: Group (a group name); unchanged when omitted.
        type: str
      validate:
        description:
          - A command that checks the new content before it replaces the file; C(%s) is the path of the
            temporary file. A non-zero exit fails the task and leaves the old file.
        type: str
      state:
        description: C(absent) removes the file (give no content then).
        type: str
        choices: [present, absent]
        default: present
  prune:
    description:
      - Files matching O(prune.patterns) in O(prune.path) that are not in O(files) are removed.
    type: dict
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      patterns:
        description: Shell patterns of file names in that directory.
        type: list
        elements: str
        required: true
extends_documentation_fragment:
  - ikemesh.mesh.attributes
  - ikemesh.mesh.attributes.ACTION
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  action:
    support: full
notes:
  - In check mode nothing is written; RV(changed_files) and RV(removed) say what would change.
  - Text files only (the content passes through the module's JSON arguments).
"""

EXAMPLES = r"""
- name: Install the exporter, its library and its unit
  ikemesh.mesh.files:
    files:
      - src: ikemesh_exporter.py
        dest: /opt/ikemesh-exporter/ikemesh_exporter.py
      - template: ikemesh-exporter.service.j2
        dest: /etc/systemd/system/ikemesh-exporter.service
  register: exporter_files

- name: One connection per peer, and none for peers that left
  ikemesh.mesh.files:
    files:
      - template: peer.conf.j2
        each: "{{ peers }}"
        each_var: peer
        dest: /etc/swanctl/conf.d/ikemesh-{name}.conf
        mode: "0640"
    prune:
      path: /etc/swanctl/conf.d
      patterns: ["ikemesh-*.conf"]

- name: A ruleset that nft must accept before it lands
  ikemesh.mesh.files:
    files:
      - content: "{{ ruleset }}"
        dest: /etc/nftables.d/ikemesh.nft
        validate: nft -c -f %s
"""

RETURN = r"""
changed_files:
  description: The files written or whose mode or owner changed (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["/etc/systemd/system/ikemesh-exporter.service"]
removed:
  description: The files removed (absent entries and pruned files; in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["/etc/swanctl/conf.d/ikemesh-node9.conf"]
"""

import fnmatch  # noqa: E402
import grp  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import shlex  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.ikemesh.mesh.plugins.module_utils.files import (  # noqa: E402
    ValidationError,
    parse_mode,
    read_text,
    sync_file,
)

DIFF_LIMIT = 256 * 1024  # larger files show no diff (like ansible.builtin.copy's max_file_size_for_diff)


def owner_ids(module, entry):
    uid = gid = -1
    try:
        if entry.get("owner"):
            uid = pwd.getpwnam(entry["owner"]).pw_uid
        if entry.get("group"):
            gid = grp.getgrnam(entry["group"]).gr_gid
    except KeyError as exc:
        module.fail_json(msg=f"{entry['dest']}: no such user or group: {exc}")
    return uid, gid


def validator(module, command):
    if not command:
        return None
    if "%s" not in command:
        module.fail_json(msg=f"validate must contain %s (the new file), got {command!r}")

    def run(path):
        rc, out, err = module.run_command(shlex.split(command.replace("%s", shlex.quote(path))))
        if rc != 0:
            raise ValidationError(f"{command!r} refused the new content (rc {rc}): {(out + err).strip()}")

    return run


def diff_entry(path, before, after):
    return {"before_header": path, "after_header": path, "before": before, "after": after}


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "dest": {"type": "str", "required": True},
                    # template, src and each are resolved into content by the action plugin
                    "template": {"type": "str"},
                    "src": {"type": "str"},
                    "each": {"type": "list", "elements": "dict"},
                    "each_var": {"type": "str", "default": "item"},
                    "content": {"type": "str"},
                    "mode": {"type": "str", "default": "0644"},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                    "validate": {"type": "str"},
                    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
                },
            },
            "prune": {
                "type": "dict",
                "options": {
                    "path": {"type": "path", "required": True},
                    "patterns": {"type": "list", "elements": "str", "required": True},
                },
            },
        },
        supports_check_mode=True,
    )
    check, want_diff = module.check_mode, module._diff
    changed_files, removed, diffs, made_dirs = [], [], [], set()
    listed = set()
    absent = []
    for entry in module.params["files"]:
        path = entry["dest"]
        if not os.path.isabs(path):
            module.fail_json(msg=f"dest must be an absolute path, got {path!r}")
        listed.add(path)
        if entry["state"] == "absent":
            absent.append(path)
            continue
        if entry["content"] is None:
            module.fail_json(msg=f"{path}: content is required unless state is absent")
        try:
            mode = parse_mode(entry["mode"])
        except ValueError as exc:
            module.fail_json(msg=f"{path}: {exc}")
        uid, gid = owner_ids(module, entry)
        data = entry["content"].encode("utf-8", "surrogateescape")
        before = read_text(path, DIFF_LIMIT) if want_diff else None
        try:
            changed = sync_file(
                path, data, mode, check, made_dirs, uid, gid, validator(module, entry["validate"])
            )
        except ValidationError as exc:
            module.fail_json(msg=f"{path}: {exc}", changed_files=changed_files)
        if changed:
            changed_files.append(path)
            if want_diff and before is not None and len(data) <= DIFF_LIMIT and before != entry["content"]:
                diffs.append(diff_entry(path, before, entry["content"]))
    prune = module.params["prune"]
    if prune and os.path.isdir(prune["path"]):
        for name in sorted(os.listdir(prune["path"])):
            path = os.path.join(prune["path"], name)
            if path not in listed and any(fnmatch.fnmatchcase(name, p) for p in prune["patterns"]):
                absent.append(path)
    for path in absent:
        if os.path.lexists(path):
            if want_diff:
                diffs.append(diff_entry(path, read_text(path, DIFF_LIMIT) or "", ""))
            if not check:
                os.unlink(path)
            removed.append(path)
    result = {"changed": bool(changed_files or removed), "changed_files": changed_files, "removed": removed}
    if want_diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
