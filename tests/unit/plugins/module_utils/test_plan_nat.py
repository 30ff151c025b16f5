"""Planner rules for nodes behind NAT (ikemesh_behind_nat)."""

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import PlanError, build_plan
from test_plan import check_policy_routing, check_structure, inventory, pairs, peer


def _error(nodes, hubs=()):
    with pytest.raises(PlanError) as err:
        build_plan(nodes, hubs)
    return err.value


def _natted(nodes, *names):
    for name in names:
        nodes[name]["ikemesh_behind_nat"] = True
    return nodes


def test_full_mesh_node_behind_nat_initiates_to_every_peer():
    # "a" sorts first, so without NAT it would initiate to nobody; "c" would initiate to nobody either
    nodes = _natted(inventory(["a", "b", "c"]), "c")
    plan = build_plan(nodes)
    assert pairs(plan) == {("a", "b"), ("a", "c"), ("b", "c")}
    assert peer(plan, "c", "a")["initiator"] is True and peer(plan, "a", "c")["initiator"] is False
    assert peer(plan, "c", "b")["initiator"] is True and peer(plan, "b", "c")["initiator"] is False
    assert peer(plan, "a", "b")["initiator"] is True  # pairs without NAT keep the usual rule
    assert plan["nodes"]["c"]["behind_nat"] is True and plan["nodes"]["a"]["behind_nat"] is False
    assert peer(plan, "a", "c")["behind_nat"] is True and peer(plan, "c", "a")["behind_nat"] is False
    check_structure(plan)
    check_policy_routing(plan)


def test_nat_t_lowers_the_kernel_mtu_of_the_node_and_its_peers_only():
    plain = build_plan(inventory(["a", "b", "c"], ikemesh_topology="hub_spoke"), hubs=["a"])
    nodes = _natted(inventory(["a", "b", "c"], ikemesh_topology="hub_spoke"), "c")
    plan = build_plan(nodes, hubs=["a"])
    # NAT-T adds an 8-byte UDP header to every SA of c and of its hub a; b's only SA (with a) has none
    assert plan["nodes"]["c"]["mtu"] == plain["nodes"]["c"]["mtu"] - 8
    assert plan["nodes"]["a"]["mtu"] == plain["nodes"]["a"]["mtu"] - 8
    assert plan["nodes"]["b"]["mtu"] == plain["nodes"]["b"]["mtu"]


def test_full_mesh_rejects_two_nodes_behind_nat_naming_both():
    exc = _error(_natted(inventory(["a", "b", "c", "d"]), "b", "d"))
    assert (exc.host, exc.field) == ("d", "ikemesh_behind_nat")
    assert "b and d are both behind NAT" in exc.message and "hub" in exc.message


@pytest.mark.parametrize("mode", [{}, {"ikemesh_tunnel_mode": "vxlan", "ikemesh_ipsec_backend": "libipsec"}])
def test_hub_spoke_spokes_behind_nat_talk_through_the_hubs(mode):
    nodes = _natted(
        inventory(["h1", "h2", "s1", "s2", "s3"], ikemesh_topology="hub_spoke", **mode), "s2", "s3"
    )
    plan = build_plan(nodes, hubs=["h1", "h2"])
    assert ("s2", "s3") not in pairs(plan)
    for spoke in ("s2", "s3"):
        for hub in ("h1", "h2"):
            assert peer(plan, spoke, hub)["initiator"] is True
            assert peer(plan, hub, spoke)["behind_nat"] is True
    check_structure(plan)
    if not mode:
        check_policy_routing(plan)


def test_hub_behind_nat_initiates_to_its_spokes():
    nodes = _natted(inventory(["h1", "h2", "s1"], ikemesh_topology="hub_spoke"), "h1")
    plan = build_plan(nodes, hubs=["h1", "h2"])
    assert peer(plan, "h1", "s1")["initiator"] is True and peer(plan, "s1", "h1")["initiator"] is False
    assert peer(plan, "h1", "h2")["initiator"] is True
    check_structure(plan)
    check_policy_routing(plan)


def test_partial_mesh_drops_the_pair_behind_nat_and_routes_it_through_the_hub():
    names = ["eu-h", "eu-1", "eu-2", "eu-3", "us-h", "us-1"]
    nodes = inventory(names, ikemesh_topology="partial_mesh")
    for name, hv in nodes.items():
        hv["ikemesh_region"] = name.split("-")[0]
    nodes["eu-1"]["ikemesh_extra_peers"] = ["us-1"]
    _natted(nodes, "eu-1", "eu-2", "us-1")
    plan = build_plan(nodes, hubs=["eu-h", "us-h"])
    p = pairs(plan)
    assert ("eu-1", "eu-2") not in p and ("eu-1", "us-1") not in p
    assert ("eu-1", "eu-3") in p and ("eu-2", "eu-3") in p and ("eu-1", "eu-h") in p
    assert (
        peer(plan, "eu-1", "eu-3")["initiator"] is True and peer(plan, "eu-3", "eu-2")["initiator"] is False
    )
    check_structure(plan)
    check_policy_routing(plan)


def test_two_hubs_behind_nat_are_rejected():
    nodes = _natted(inventory(["h1", "h2", "s1"], ikemesh_topology="hub_spoke"), "h1", "h2")
    exc = _error(nodes, hubs=["h1", "h2"])
    assert (exc.host, exc.field) == ("h2", "ikemesh_behind_nat") and "h1 and h2" in exc.message


def test_spoke_behind_nat_whose_hubs_are_all_behind_nat_is_rejected():
    nodes = _natted(inventory(["h1", "h2", "s1", "s2"], ikemesh_topology="hub_spoke"), "h1", "s1")
    nodes["s1"]["ikemesh_spoke_hubs"] = ["h1"]
    exc = _error(nodes, hubs=["h1", "h2"])
    assert (exc.host, exc.field) == ("s1", "ikemesh_behind_nat") and "no tunnel to any hub" in exc.message
    # with a second hub that is reachable the same spoke is fine (and never peers with h1)
    nodes["s1"]["ikemesh_spoke_hubs"] = ["h1", "h2"]
    plan = build_plan(nodes, hubs=["h1", "h2"])
    assert [p["name"] for p in plan["nodes"]["s1"]["peers"]] == ["h2"]
    check_structure(plan)
    check_policy_routing(plan)


def test_nodes_behind_different_nats_may_share_an_inside_address():
    nodes = _natted(inventory(["h", "s1", "s2"], ikemesh_topology="hub_spoke"), "s1", "s2")
    nodes["s1"]["ikemesh_underlay_address"] = nodes["s2"]["ikemesh_underlay_address"] = "192.168.1.10"
    plan = build_plan(nodes, hubs=["h"])
    assert plan["nodes"]["s1"]["underlay_address"] == plan["nodes"]["s2"]["underlay_address"]
    # but never an address that peers dial
    nodes["s2"]["ikemesh_underlay_address"] = nodes["h"]["ikemesh_underlay_address"]
    exc = _error(nodes, hubs=["h"])
    assert (exc.host, exc.field) == ("s2", "ikemesh_underlay_address") and "host h" in exc.message


@pytest.mark.parametrize(
    "value, expected", [("yes", True), ("True", True), (1, True), ("off", False), (0, False)]
)
def test_behind_nat_accepts_ansible_booleans(value, expected):
    nodes = inventory(["a", "b"])
    nodes["b"]["ikemesh_behind_nat"] = value
    assert build_plan(nodes)["nodes"]["b"]["behind_nat"] is expected


@pytest.mark.parametrize("value", ["maybe", 2, "", ["yes"]])
def test_behind_nat_must_be_a_boolean(value):
    nodes = inventory(["a", "b"])
    nodes["b"]["ikemesh_behind_nat"] = value
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("b", "ikemesh_behind_nat") and "boolean" in exc.message
