"""Tests for the mesh_dot filter (plugins/filter/topology.py)."""

import shutil
import subprocess

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.filter.topology import FilterModule, link_state, mesh_dot
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan


def _status(*up_peers, down=()):
    conns = {}
    for peer in up_peers:
        conns[peer] = {
            "loaded": True,
            "ike_sas": [{"state": "ESTABLISHED", "child_sas": [{"name": peer, "state": "INSTALLED"}]}],
        }
    for peer in down:
        conns[peer] = {"loaded": True, "ike_sas": [{"state": "CONNECTING", "child_sas": []}]}
    return {"changed": False, "connections": conns}


@pytest.fixture(scope="module")
def regions_plan():
    nodes = {}
    for region, names in (("eu", ("eu-hub", "eu-a", "eu-b")), ("us", ("us-hub", "us-a"))):
        for name in names:
            nodes[name] = {
                "ikemesh_underlay_address": f"198.51.100.{len(nodes) + 1}",
                "ikemesh_topology": "partial_mesh",
                "ikemesh_region": region,
            }
    return build_plan(nodes, ["eu-hub", "us-hub"], {})


def test_link_states():
    statuses = {"a": _status("b"), "b": _status("a", down=["c"]), "c": {"failed": True, "msg": "no charon"}}
    assert link_state(statuses, "a", "b") == "up"
    assert link_state(statuses, "b", "c") == "down"
    statuses["a"] = _status("c")
    assert link_state(statuses, "a", "c") == "up" or link_state(statuses, "a", "c") == "partial"
    assert link_state({"a": _status("b"), "b": _status()}, "a", "b") == "partial"
    assert link_state({}, "a", "b") == "unknown"


def test_dot_of_a_plan_with_regions_hubs_and_live_state(regions_plan):
    names = sorted(regions_plan["nodes"])
    statuses = {}
    for name in names:
        peers = [p["name"] for p in regions_plan["nodes"][name]["peers"]]
        statuses[name] = _status(
            *[p for p in peers if "us-a" not in (name, p)], down=[p for p in peers if "us-a" in (name, p)]
        )
    dot = mesh_dot(regions_plan, statuses)
    assert dot.startswith("graph ikemesh {")
    assert 'subgraph "cluster_eu" {' in dot and 'subgraph "cluster_us" {' in dot
    assert '"eu-hub" [label="eu-hub (hub)\\n198.51.100.1\\n' in dot
    assert "shape=doubleoctagon" in dot
    pairs = {tuple(sorted((n, p["name"]))) for n in names for p in regions_plan["nodes"][n]["peers"]}
    edges = [line for line in dot.splitlines() if " -- " in line]
    assert len(edges) == len(pairs)
    assert '"us-a" -- "us-hub" [color="#c62828", style=dashed, tooltip="down"];' in dot
    assert '"eu-a" -- "eu-b" [color="#2e7d32", style=bold, tooltip="up"];' in dot
    assert f"{len(pairs) - 1} up" in dot


def test_plan_only_is_unknown_and_unreachable_nodes_are_marked(regions_plan):
    dot = mesh_dot(regions_plan)
    assert 'tooltip="unknown"' in dot and 'tooltip="up"' not in dot
    statuses = {name: _status() for name in regions_plan["nodes"]}
    statuses["us-a"] = {"failed": True, "msg": "charon is not running"}
    subnet = regions_plan["nodes"]["us-a"]["overlay_subnet"]
    assert f"us-a\\n198.51.100.5\\n{subnet}\\ncharon unreachable" in mesh_dot(regions_plan, statuses)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is installed by make deps")
def test_graphviz_accepts_it(regions_plan, tmp_path):
    svg = subprocess.run(
        ["dot", "-Tsvg"], input=mesh_dot(regions_plan), capture_output=True, text=True, check=True
    ).stdout
    assert "<svg" in svg and "eu&#45;hub (hub)" in svg


def test_filter_errors():
    with pytest.raises(AnsibleFilterError, match="mesh_dot: malformed input"):
        FilterModule().filters()["mesh_dot"]({"nodes": {"a": {"peers": [{}]}}})
