#!/usr/bin/python
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the work is done on the controller by the action plugin of the same name
# (plugins/action/render_configs.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: render_configs
short_description: Render every node's configuration from the mesh plan into a directory on the controller
version_added: "0.2.0"
description:
  - Renders role templates for every node of the mesh plan (once per node, or once per planned peer of
    each node) into O(dest) on the controller, without connecting to any node. The result is byte for
    byte what the role's M(ikemesh.mesh.files) task writes on the node (the same template file
    taken from the role itself, see O(role); the same variables with the same precedence, the role's
    defaults overridden by the node's own variables from inventory, facts and extra vars; the same
    template variables C(ansible_managed), C(template_path) and so on; Ansible's own templating).
  - Runs as one task in one controller process (use it with C(run_once) and C(delegate_to=localhost)).
    Each template is compiled once. By default (O(renderer=fast)) files are rendered by a plain Jinja
    environment configured like M(ansible.builtin.template) (trim_blocks, no lstrip_blocks, trailing
    newlines of the source kept, undefined variables are errors, C(None) prints as nothing, Ansible's
    filter and test plugins), fed with each node's variables resolved once by Ansible's templating.
    Every run cross-checks that renderer against Ansible's templating (see O(verify)) and falls back
    to Ansible's templating for a template on the first difference, with a warning. Templates using
    lookups, C(hostvars), C(vars), includes or imports are always rendered by Ansible's templating.
  - Writes a file only when its content or mode differs (atomically, through a temporary file in the
    same directory); the task reports C(changed) only then, so a second run reports no change.
  - Removes stale files that a template pattern produced earlier, of peers or nodes that are no
    longer planned (see O(prune)), and the directories that become empty.
  - If a file rendered by the fast renderer would have differed, the files of that template rendered
    fast before the difference was found are rendered again by Ansible's templating, so the result is
    Ansible's in any case.
  - The playbook C(ikemesh.mesh.render) uses it to render the swanctl role's connection files.
author: ikemesh developers (@ikemesh)
options:
  plan:
    description:
      - The mesh plan, for example the fact C(ikemesh_plan) set by the role C(ikemesh.mesh.plan) (the
        output of the filter C(ikemesh.mesh.mesh_plan)).
      - When omitted, the action computes it exactly as the role C(ikemesh.mesh.plan) does, with the
        filter C(ikemesh.mesh.mesh_plan) over the inventory groups C(ikemesh_nodes) and
        C(ikemesh_hubs) (not the play hosts), the nodes' variables and the ledger O(ledger_file)
        (same validation, same messages, same indices), but keeps it inside the task. For large
        meshes this is much faster than passing the fact, which Ansible copies and converts several
        times. The ledger is not written.
      - Files are rendered for the nodes in C(plan.nodes) (see O(nodes)) and, with C(each=peer), for
        every entry of C(plan.nodes[node].peers).
    type: dict
  ledger_file:
    description:
      - The allocation ledger (JSON, node name to index) the plan is computed with when O(plan) is
        omitted, normally C(ikemesh_allocations_file) of the role C(ikemesh.mesh.plan). A missing or
        empty file means no ledger (indices follow the sorted host names), as in the role.
    type: path
  dest:
    description:
      - Output directory on the controller. Created if missing.
    type: path
    required: true
  role:
    description:
      - The role whose templates and defaults are rendered, as a collection role name
        (C(ikemesh.mesh.swanctl)) or a path to a role directory.
      - Resolved through the collection loader, so it works from a checkout (mapped by
        C(collections_path)) and from an installed collection alike.
      - Relative O(templates[].src) are taken from the role's C(templates/) directory, and unless
        O(defaults) is given, the role's C(defaults/main.yml) provides the default variables.
    type: str
  templates:
    description:
      - What to render.
    type: list
    elements: dict
    required: true
    suboptions:
      src:
        description:
          - The template, relative to the role's C(templates/) directory when O(role) is set (as the
            role's own template task names it, which also makes C(template_path) identical), else an
            absolute path or a path found like M(ansible.builtin.template) finds its C(src).
        type: str
        required: true
      dest:
        description:
          - Path of each rendered file, relative to O(dest), with the placeholders C({node}) (the
            inventory hostname, required) and C({peer}) (the peer's name; required with C(each=peer),
            not allowed with C(each=node)). At most one placeholder per path component; no C(..).
          - Also the pattern by which stale files are recognised (see O(prune)).
        type: str
        required: true
      each:
        description:
          - C(peer) renders the template once per planned peer of every node, with the variables of
            O(node_var) and O(peer_var); C(node) once per node (no peer variable).
        type: str
        choices: [peer, node]
        default: peer
      mode:
        description:
          - Permission bits of the rendered files, an octal string.
        type: str
        default: "0644"
  defaults:
    description:
      - YAML files of default variables (the lowest precedence, like role defaults; values may be
        templates). Later files override earlier ones.
      - Defaults to the C(defaults/main.yml) of O(role), if that exists.
    type: list
    elements: path
  vars:
    description:
      - Extra variables for every file, overriding the nodes' own variables (like task C(vars)).
      - They are templated once, in the context of the host that runs the task.
    type: dict
    default: {}
  nodes:
    description:
      - Render only these nodes (for example C(ansible_play_hosts_all), so that C(--limit) is honoured).
      - Default is every node of the plan.
      - Stale files of nodes that are in the plan but not selected are left alone.
    type: list
    elements: str
  prune:
    description:
      - Remove files matching a template's O(templates[].dest) pattern whose node/peer is no longer
        planned, of the selected nodes and of nodes that are not in the plan at all (they left the
        mesh). Only files matching the patterns are removed, then directories that became empty.
    type: bool
    default: true
  renderer:
    description:
      - C(fast) renders with the plain Jinja renderer described above, cross-checked against
        Ansible's templating; C(ansible) renders every file with Ansible's templating (Ansible's
        C(Templar), as M(ansible.builtin.template) does; about ten times slower).
    type: str
    choices: [fast, ansible]
    default: fast
  verify:
    description:
      - With O(renderer=fast), how many files are at least rendered both ways and compared (the first
        ones). In addition, the first file of every new combination of a node's resolved variables
        and the shape (keys, value types and boolean values) of the node's and the peer's plan
        entries is compared, so every branch that depends on flags such as C(initiator) or C(is_hub)
        is checked in every run.
    type: int
    default: 10
  plan_var:
    description: Name of the template variable holding the whole plan.
    type: str
    default: ikemesh_plan
  node_var:
    description: Name of the template variable holding the node's entry C(plan.nodes[node]).
    type: str
    default: __ikemesh_node
  peer_var:
    description: Name of the template variable holding the peer's entry (with C(each=peer)).
    type: str
    default: __ikemesh_peer
extends_documentation_fragment:
  - ikemesh.mesh.attributes
  - ikemesh.mesh.attributes.action
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  action:
    support: full
notes:
  - Runs entirely on the controller, whatever host the task is assigned to; use C(run_once) and
    C(delegate_to=localhost).
  - A node's variables are its own (what C(hostvars[node]) holds, from inventory, facts and extra vars),
    over O(defaults); play and task variables of the play that runs this task are not among them, except
    the magic variables C(hostvars), C(omit), C(playbook_dir) and the C(ansible_play_*) names.
  - C(template_destpath) is the rendered file's path on the controller, C(template_path) the
    O(templates[].src) as given; C(ansible_managed) is Ansible's default (the C(DEFAULT_MANAGED_STR)
    setting) unless the node has a variable C(ansible_managed), as with M(ansible.builtin.template).
seealso:
  - module: ansible.builtin.template
"""

EXAMPLES = r"""
- name: Render every node's swanctl connections (what the playbook ikemesh.mesh.render does)
  ikemesh.mesh.render_configs:
    dest: "{{ inventory_dir }}/ikemesh_rendered"
    ledger_file: "{{ inventory_dir }}/ikemesh_allocations.json"
    role: ikemesh.mesh.swanctl
    templates:
      - src: peer.conf.j2
        dest: "{node}/swanctl/conf.d/ikemesh-{peer}.conf"
        mode: "0640"
  delegate_to: localhost
  run_once: true

- name: One file per node from a template of our own, only the nodes of this run (--limit)
  ikemesh.mesh.render_configs:
    plan: "{{ ikemesh_plan }}"  # computed by the role ikemesh.mesh.plan earlier in the play
    dest: /srv/gitops/mesh
    nodes: "{{ ansible_play_hosts_all }}"
    templates:
      - src: "{{ playbook_dir }}/templates/summary.txt.j2"
        dest: "{node}.txt"
        each: node
    vars:
      site_name: lab
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
dest:
  description: The output directory (absolute).
  returned: always
  type: str
  sample: /home/me/inventory/ikemesh_rendered
nodes:
  description: Number of nodes rendered.
  returned: always
  type: int
  sample: 4
files:
  description: Number of files planned (rendered).
  returned: always
  type: int
  sample: 12
written:
  description:
    - Files (relative to RV(dest)) that were created or changed (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["node1/swanctl/conf.d/ikemesh-node2.conf"]
removed:
  description:
    - Stale files (relative to RV(dest)) that were removed (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: ["node1/swanctl/conf.d/ikemesh-node5.conf"]
renderer:
  description:
    - C(fast) when every file was rendered by the fast renderer (cross-checked), C(ansible) when
      Ansible's templating rendered them (requested, or after a difference was found).
  returned: always
  type: str
  sample: fast
verified:
  description: Number of files rendered both ways and found identical.
  returned: always
  type: int
  sample: 12
"""
