"""playbooks/render.yml against a small temporary inventory (5 nodes, hub_spoke, never contacted).

Checks: one file per node and planned peer with the planned traffic selectors; stale files of peers and
nodes that left the plan removed, other files left alone; byte for byte what the swanctl role's own
connection task writes (run for real, with ikemesh.mesh.files into a temporary directory); a
second run reports changed=0 and rewrites nothing.
"""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SWANCTL = os.path.join(ROOT, "roles", "swanctl")

NODES = {
    "hub1": {"ikemesh_underlay_address": "192.0.2.1"},
    "hub2": {"ikemesh_underlay_address": "192.0.2.2"},
    "spoke1": {"ikemesh_underlay_address": "192.0.2.11", "ikemesh_swanctl_dpd_delay": "10s"},
    "spoke2": {
        "ikemesh_underlay_address": "192.0.2.12",
        "ansible_managed": "managed for {{ inventory_hostname }}",
    },
    "spoke3": {"ikemesh_underlay_address": "192.0.2.13"},
}
MESH_VARS = {
    "ikemesh_topology": "hub_spoke",
    "ikemesh_overlay_pool": "10.77.0.0/16",
    "ikemesh_swanctl_ike_rekey_time": "12h",  # inventory overrides the role default
}


def write_inventory(directory):
    inventory = {
        "ikemesh_nodes": {
            "hosts": NODES,
            "vars": dict(MESH_VARS, ansible_connection="local", ansible_python_interpreter=sys.executable),
        },
        "ikemesh_hubs": {"hosts": {"hub1": None, "hub2": None}},
    }
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def reference_role(directory, out):
    """A role running the swanctl role's own connection task (its defaults and templates linked), with
    the destination moved from /etc/swanctl/conf.d into `out`."""
    role = directory / "roles" / "swanctl_reference"
    (role / "tasks").mkdir(parents=True)
    os.symlink(os.path.join(SWANCTL, "defaults"), role / "defaults")
    os.symlink(os.path.join(SWANCTL, "templates"), role / "templates")
    with open(os.path.join(SWANCTL, "tasks", "main.yml")) as handle:
        role_tasks = yaml.safe_load(handle)
    tasks = [
        {
            "name": "Output directory",
            "ansible.builtin.file": {"path": f"{out}/{{{{ inventory_hostname }}}}", "state": "directory"},
        }
    ]
    for task in role_tasks:
        if "ansible.builtin.set_fact" in task:
            tasks.append(task)
        elif "ikemesh.mesh.files" in task:
            task = dict(task)
            task.pop("notify", None)
            args = dict(task["ikemesh.mesh.files"])
            if not all(entry["dest"].startswith("/etc/swanctl/conf.d/") for entry in args["files"]):
                continue  # not swanctl configuration (the initiation keeper's script and units)
            moved = f"{out}/{{{{ inventory_hostname }}}}"
            args["files"] = [
                dict(entry, dest=entry["dest"].replace("/etc/swanctl/conf.d", moved))
                for entry in args["files"]
            ]
            args["prune"] = dict(args["prune"], path=moved)
            task["ikemesh.mesh.files"] = args
            tasks.append(task)
    assert any("ikemesh.mesh.files" in task for task in tasks)
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump(tasks, sort_keys=False))
    playbook = directory / "reference.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "The swanctl role's connection task, written locally",
                    "hosts": "ikemesh_nodes",
                    "gather_facts": False,
                    "roles": ["ikemesh.mesh.plan", "swanctl_reference"],
                }
            ],
            sort_keys=False,
        )
    )
    return playbook


def ansible_playbook(run_playbook, playbook, inventory, *extra):
    """Run a playbook that must succeed everywhere; return (changed tasks over all hosts, output)."""
    returncode, output, recap = run_playbook(playbook, inventory, *extra)
    assert returncode == 0, output
    assert recap, output
    assert all(unreachable == 0 and failed == 0 for _h, _c, unreachable, failed in recap), output
    return sum(changed for _h, changed, _u, _f in recap), output


def tree(root):
    out = {}
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root)] = (handle.read(), os.stat(path).st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory, run_playbook):
    directory = tmp_path_factory.mktemp("render")
    inventory = write_inventory(directory)
    out = directory / "rendered"
    # left-overs of an earlier layout: a peer and a node that left the plan, and a file not ours
    for rel in ("spoke1/swanctl/conf.d/ikemesh-gone.conf", "ghost/swanctl/conf.d/ikemesh-hub1.conf"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("stale")
    (out / "spoke1" / "README").write_text("not generated")
    changed, output = ansible_playbook(
        run_playbook,
        os.path.join(ROOT, "playbooks", "render.yml"),
        inventory,
        "-e",
        f"ikemesh_render_dir={out}",
    )
    nodes = {name: dict(hv, **MESH_VARS) for name, hv in NODES.items()}
    plan = build_plan(nodes, ["hub1", "hub2"])
    return {
        "dir": directory,
        "inventory": inventory,
        "out": out,
        "changed": changed,
        "output": output,
        "plan": plan,
    }


def test_render_writes_every_planned_file_without_contacting_nodes(lab):
    assert lab["changed"] == 1, lab["output"]
    assert "TASK [Render every node's swanctl connections]" in lab["output"]
    # one task for the whole mesh, run once, nothing per host
    assert len(re.findall(r"^TASK \[", lab["output"], re.M)) == 1, lab["output"]
    out = lab["out"]
    expected = set()
    for name, node in lab["plan"]["nodes"].items():
        for peer in node["peers"]:
            rel = f"{name}/swanctl/conf.d/ikemesh-{peer['name']}.conf"
            expected.add(rel)
            text = (out / rel).read_text()
            assert f"        local_ts = {','.join(peer['local_ts'])}\n" in text, rel
            assert f"        remote_ts = {','.join(peer['remote_ts'])}\n" in text, rel
            assert f"    {peer['name']} {{\n" in text
            assert oct(os.stat(out / rel).st_mode & 0o777) == "0o640"
    conf_files = {rel for rel in tree(out) if rel.endswith(".conf")}
    assert conf_files == expected  # stale files of the left peer and node removed
    assert not (out / "ghost").exists()
    assert (out / "spoke1" / "README").read_text() == "not generated"
    assert not (lab["dir"] / "ikemesh_allocations.json").exists()  # the ledger is read, not written
    assert "dpd_delay = 10s\n" in (out / "spoke1/swanctl/conf.d/ikemesh-hub1.conf").read_text()
    assert "rekey_time = 12h\n" in (out / "hub1/swanctl/conf.d/ikemesh-hub2.conf").read_text()
    assert (out / "spoke2/swanctl/conf.d/ikemesh-hub1.conf").read_text().startswith("# managed for spoke2\n")


def test_render_is_byte_identical_to_the_role_connection_task(lab, run_playbook):
    reference = lab["dir"] / "reference"
    playbook = reference_role(lab["dir"], reference)
    ansible_playbook(run_playbook, playbook, lab["inventory"])
    rendered = {
        rel.replace("/swanctl/conf.d/", "/"): data
        for rel, (data, _m) in tree(lab["out"]).items()
        if rel.endswith(".conf")
    }
    written = {rel: data for rel, (data, _m) in tree(reference).items()}
    assert len(written) == 2 * 4 + 3 * 2
    assert rendered == written


def test_second_run_changes_nothing(lab, run_playbook):
    before = tree(lab["out"])
    changed, output = ansible_playbook(
        run_playbook,
        os.path.join(ROOT, "playbooks", "render.yml"),
        lab["inventory"],
        "-e",
        f"ikemesh_render_dir={lab['out']}",
    )
    assert changed == 0, output
    assert tree(lab["out"]) == before  # same bytes, not even rewritten
