"""Live-lab tests (testinfra): expectations come from the planner run over the lab's inventory.

Run by molecule's verifier, or by hand:
  pytest tests/lab --lab-inventory molecule/default/inventory/hosts.yml
"""

import contextlib
import json
import os
import subprocess
import sys

import pytest
import testinfra

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan  # noqa: E402

VICI_SOURCE = os.path.join(ROOT, "plugins", "module_utils", "vici.py")


def pytest_addoption(parser):
    # A scenario's own conftest (molecule/*/tests) loads this file too and may have registered it first.
    with contextlib.suppress(ValueError):
        default = os.environ.get("IKEMESH_LAB_INVENTORY", "inventories/lab")
        parser.addoption("--lab-inventory", default=default)


def _inventory(path):
    out = subprocess.run(
        ["ansible-inventory", "-i", path, "--list"], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def _group_hosts(data, group):
    entry = data.get(group, {})
    hosts = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts += _group_hosts(data, child)
    return sorted(set(hosts))


@pytest.fixture(scope="session")
def lab_inventory(request):
    """The inventory source the lab was deployed from (--lab-inventory)."""
    return request.config.getoption("--lab-inventory")


@pytest.fixture(scope="session")
def lab_nodes(lab_inventory):
    """(inventory directory, hostvars of the ikemesh_nodes members, hub names) from ansible-inventory."""
    path = lab_inventory
    data = _inventory(path)
    hostvars = data["_meta"]["hostvars"]
    nodes = {name: hostvars.get(name, {}) for name in _group_hosts(data, "ikemesh_nodes")}
    inventory_dir = os.path.abspath(path if os.path.isdir(path) else os.path.dirname(path))
    return inventory_dir, nodes, _group_hosts(data, "ikemesh_hubs")


@pytest.fixture(scope="session")
def lab_plan(lab_nodes):
    """The plan the deployment used: the inventory plus the allocation ledger written next to it."""
    inventory_dir, nodes, hubs = lab_nodes
    with open(os.path.join(inventory_dir, "ikemesh_allocations.json")) as ledger:
        return build_plan(nodes, hubs, json.load(ledger))


@pytest.fixture(scope="session")
def lab_host(lab_nodes):
    """Return a function node name -> testinfra host, connected the way the inventory says.

    Containers: the podman backend (about 10x faster than going through Ansible). Anything else
    (the kernel lab's VMs): plain ssh with the inventory's user, port, key and ssh arguments.
    """
    inventory_dir, nodes, _hubs = lab_nodes
    hosts = {}

    def resolve(value):
        # ansible-inventory --list does not template; the lab inventories only use inventory_dir.
        return str(value).replace("{{ inventory_dir }}", inventory_dir)

    def get(name):
        if name not in hosts:
            hv = nodes[name]
            if hv.get("ansible_connection", "ssh").endswith("podman"):
                hosts[name] = testinfra.get_host(f"podman://{name}")
            else:
                user = hv.get("ansible_user", "root")
                spec = f"ssh://{user}@{hv.get('ansible_host', name)}:{hv.get('ansible_port', 22)}"
                extra = resolve(hv.get("ansible_ssh_common_args", ""))
                # One connection per node for the whole session (sshd under TCG is slow to handshake).
                extra += " -o ControlPath=/tmp/ikemesh-testinfra-%C"
                key = hv.get("ansible_ssh_private_key_file")
                hosts[name] = testinfra.get_host(
                    spec, ssh_identity_file=resolve(key) if key else None, ssh_extra_args=extra
                )
        return hosts[name]

    return get


@pytest.fixture(scope="session")
def vici_state():
    """Return a function host -> list-sas events, read live over VICI on that node."""
    with open(VICI_SOURCE) as source:
        client = source.read()
    probe = client + (
        "\nimport json\n"
        "with ViciSession() as s:\n"
        "    print(json.dumps(s.streamed_request('list-sas', 'list-sa'), default=repr))\n"
    )

    def read(host):
        result = host.run("python3 -c %s", probe)
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout)

    return read
