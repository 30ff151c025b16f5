"""Live-lab tests (testinfra): expectations come from the planner run over the lab's inventory.

Run by molecule's verifier, or by hand:
  pytest tests/lab --lab-inventory molecule/default/inventory/hosts.yml
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan  # noqa: E402

VICI_SOURCE = os.path.join(ROOT, "plugins", "module_utils", "vici.py")


def pytest_addoption(parser):
    parser.addoption("--lab-inventory", default=os.environ.get("IKEMESH_LAB_INVENTORY", "inventories/lab"))


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
def lab_plan(request):
    """The plan the deployment used: the inventory plus the allocation ledger written next to it."""
    path = request.config.getoption("--lab-inventory")
    data = _inventory(path)
    hostvars = data["_meta"]["hostvars"]
    nodes = {name: hostvars.get(name, {}) for name in _group_hosts(data, "ikemesh_nodes")}
    inventory_dir = path if os.path.isdir(path) else os.path.dirname(path)
    with open(os.path.join(inventory_dir, "ikemesh_allocations.json")) as ledger:
        return build_plan(nodes, _group_hosts(data, "ikemesh_hubs"), json.load(ledger))


@pytest.fixture(scope="session")
def vici_state():
    """Return a function host -> {"sas": list-sas events} read live over VICI on that node."""
    with open(VICI_SOURCE) as source:
        client = source.read()
    probe = client + (
        "\nimport json\n"
        "with ViciSession() as s:\n"
        "    print(json.dumps({'sas': s.streamed_request('list-sas', 'list-sa')}, default=repr))\n"
    )

    def read(host):
        result = host.run("python3 -c %s", probe)
        assert result.rc == 0, result.stderr
        return json.loads(result.stdout)

    return read
