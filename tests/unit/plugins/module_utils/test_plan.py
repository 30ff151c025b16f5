"""Unit tests for the mesh planner (plugins/module_utils/plan.py)."""

import ipaddress
import json

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import PlanError, build_plan

# --------------------------------------------------------------------------------------------------
# helpers (also used by test_plan_properties.py)


def inventory(names, **common):
    """name -> hostvars with unique underlay addresses (198.18.0.1 upwards) plus the common vars."""
    nodes = {}
    for i, name in enumerate(names):
        hv = {"ikemesh_underlay_address": str(ipaddress.ip_address("198.18.0.1") + i)}
        hv.update(common)
        nodes[name] = hv
    return nodes


def _nets(cidrs):
    return [ipaddress.ip_network(c) for c in cidrs]


def _covers(nets, address):
    return any(address in net for net in nets)


def check_structure(plan):
    """Mirroring, one initiator per pair, identifiers consistent with indices."""
    nodes = plan["nodes"]
    json.dumps(plan)  # serialisable
    for name, node in nodes.items():
        names = [p["name"] for p in node["peers"]]
        assert names == sorted(names), name
        assert name not in names
        for peer in node["peers"]:
            other = nodes[peer["name"]]
            back = [p for p in other["peers"] if p["name"] == name]
            assert len(back) == 1, (name, peer["name"])
            back = back[0]
            assert peer["initiator"] != back["initiator"], (name, peer["name"])
            assert peer["local_ts"] == back["remote_ts"], (name, peer["name"])
            assert peer["remote_ts"] == back["local_ts"], (name, peer["name"])
            assert peer["if_id"] == other["index"] + 1
            assert back["if_id"] == node["index"] + 1
            assert peer["overlay_subnet"] == other["overlay_subnet"]
            assert peer["overlay_address"] == other["overlay_address"]
            assert peer["asn"] == other["asn"]
            assert peer["identity"] == other["identity"]
            assert peer["underlay_address"] == other["underlay_address"]
            assert peer["link_address"] == back["link_peer_address"]
            assert peer["link_peer_address"] == back["link_address"]
            if plan["tunnel_mode"] == "policy":
                assert peer["link_address"] is None and peer["link"] is None
            else:
                # the tunnel script removes links named link_prefix + digits that the plan lacks
                assert plan["link_prefix"] == "ikm" and peer["link"] == f"ikm{peer['if_id']}"
                mine = ipaddress.ip_interface(peer["link_address"])
                theirs = ipaddress.ip_interface(peer["link_peer_address"])
                assert mine.network == theirs.network
                assert mine.network.subnet_of(ipaddress.ip_network(plan["link_pool"]))
                assert (int(mine.ip) % 2 == 0) == (node["index"] < other["index"])
    subnets = sorted((ipaddress.ip_network(n["overlay_subnet"]), name) for name, n in nodes.items())
    for (a, na), (b, nb) in zip(subnets, subnets[1:]):
        assert not a.overlaps(b), (na, nb)
    assert sorted(plan["ledger"]) == sorted(nodes)
    assert len(set(plan["ledger"].values())) == len(nodes)


def check_policy_routing(plan):
    """Simulate every flow node -> node through the policy-mode selectors.

    Every outbound SA whose selectors match (src, dst) is tried.  A forwarding node must have exactly one
    match; every path must reach the destination without loops within 4 hops.
    """
    nodes = plan["nodes"]
    sa = {
        name: [(p["name"], _nets(p["local_ts"]), _nets(p["remote_ts"])) for p in node["peers"]]
        for name, node in nodes.items()
    }
    addr = {name: ipaddress.ip_address(node["overlay_address"]) for name, node in nodes.items()}
    for src in nodes:
        # every other node's subnet is covered by the union of this node's remote selectors
        union = [net for _peer, _l, remote in sa[src] for net in remote]
        for dst in nodes:
            if dst != src:
                assert _covers(union, addr[dst]), (src, dst)
                assert _covers(union, ipaddress.ip_network(nodes[dst]["overlay_subnet"])[-1]), (src, dst)
        own = ipaddress.ip_network(nodes[src]["overlay_subnet"])
        assert not any(net.overlaps(own) for net in union), src
        for dst in nodes:
            if dst == src:
                continue
            s, d = addr[src], addr[dst]

            def walk(at, visited, s=s, d=d, src=src, dst=dst):
                matches = [peer for peer, local, remote in sa[at] if _covers(local, s) and _covers(remote, d)]
                assert matches, f"{src}->{dst}: no outbound SA on {at} (path {visited})"
                if at != src:
                    assert len(matches) == 1, f"{src}->{dst}: ambiguous on forwarding node {at}: {matches}"
                for nxt in matches:
                    assert nxt not in visited, f"{src}->{dst}: loop {visited + [nxt]}"
                    assert len(visited) <= 4
                    if nxt != dst:
                        assert nodes[nxt]["forwards"], f"{src}->{dst}: {nxt} does not forward"
                        walk(nxt, visited + [nxt])

            walk(src, [src])


def peer(plan, a, b):
    return next(p for p in plan["nodes"][a]["peers"] if p["name"] == b)


def pairs(plan):
    return {tuple(sorted((a, p["name"]))) for a, n in plan["nodes"].items() for p in n["peers"]}


# --------------------------------------------------------------------------------------------------
# topologies


def test_full_mesh_defaults():
    plan = build_plan(inventory(["c", "a", "b"]))
    assert plan["topology"] == "full_mesh"
    assert plan["tunnel_mode"] == "policy"
    assert plan["ipsec_backend"] == "kernel"
    assert plan["overlay_pool"] == "10.99.0.0/16"
    assert list(plan["nodes"]) == ["c", "a", "b"]  # inventory order
    assert plan["ledger"] == {"a": 0, "b": 1, "c": 2}  # sorted-name allocation
    a = plan["nodes"]["a"]
    assert a["overlay_subnet"] == "10.99.0.0/24"
    assert a["overlay_address"] == "10.99.0.1"
    assert a["asn"] == 4200000000
    assert a["identity"] == "a"
    assert a["forwards"] is False
    assert (a["mtu"], a["mss"], a["underlay_mtu"]) == (1446, 1406, 1500)
    assert pairs(plan) == {("a", "b"), ("a", "c"), ("b", "c")}
    ab = peer(plan, "a", "b")
    assert ab["initiator"] is True and peer(plan, "b", "a")["initiator"] is False
    assert ab["local_ts"] == ["10.99.0.0/24"]
    assert ab["remote_ts"] == ["10.99.1.0/24"]
    assert ab["if_id"] == 2
    check_structure(plan)
    check_policy_routing(plan)


def test_peer_entry_keys():
    plan = build_plan(inventory(["a", "b"]))
    assert set(peer(plan, "a", "b")) == {
        "name",
        "identity",
        "underlay_address",
        "initiator",
        "overlay_subnet",
        "overlay_address",
        "asn",
        "is_hub",
        "behind_nat",
        "if_id",
        "reqid",
        "link",
        "receive_link",
        "receive_if_id",
        "idle_if_id",
        "link_address",
        "link_peer_address",
        "vni",
        "local_ts",
        "remote_ts",
    }
    assert set(plan["nodes"]["a"]) >= {
        "index",
        "identity",
        "underlay_address",
        "overlay_subnet",
        "overlay_address",
        "asn",
        "is_hub",
        "behind_nat",
        "region",
        "underlay_mtu",
        "forwards",
        "mtu",
        "mss",
        "peers",
    }


def test_hub_spoke_default_hubs():
    names = ["h1", "h2", "s1", "s2", "s3"]
    plan = build_plan(inventory(names, ikemesh_topology="hub_spoke"), hubs=["h1", "h2"])
    assert pairs(plan) == {("h1", "h2")} | {(h, s) for h in ("h1", "h2") for s in ("s1", "s2", "s3")}
    assert peer(plan, "s1", "h2")["initiator"] is True
    assert peer(plan, "h2", "s1")["initiator"] is False
    assert peer(plan, "h1", "h2")["initiator"] is True
    assert plan["nodes"]["h1"]["forwards"] and not plan["nodes"]["s1"]["forwards"]
    # the spoke side of a hub SA: own subnet locally; the hub side: the spoke subnet remotely
    assert peer(plan, "s1", "h1")["local_ts"] == [plan["nodes"]["s1"]["overlay_subnet"]]
    assert peer(plan, "h1", "s1")["remote_ts"] == [plan["nodes"]["s1"]["overlay_subnet"]]
    check_structure(plan)
    check_policy_routing(plan)


def test_hub_spoke_restricted_spoke_hubs():
    names = ["h1", "h2", "h3", "s1", "s2", "s3", "s4", "s5"]
    nodes = inventory(names, ikemesh_topology="hub_spoke")
    nodes["s1"]["ikemesh_spoke_hubs"] = ["h1"]
    nodes["s2"]["ikemesh_spoke_hubs"] = ["h2"]
    nodes["s3"]["ikemesh_spoke_hubs"] = ["h1", "h2"]
    nodes["s4"]["ikemesh_spoke_hubs"] = ["h3", "h2"]
    plan = build_plan(nodes, hubs=["h1", "h2", "h3"])
    assert [p["name"] for p in plan["nodes"]["s1"]["peers"]] == ["h1"]
    assert [p["name"] for p in plan["nodes"]["s4"]["peers"]] == ["h2", "h3"]
    assert [p["name"] for p in plan["nodes"]["s5"]["peers"]] == ["h1", "h2", "h3"]
    check_structure(plan)
    check_policy_routing(plan)


def test_partial_mesh():
    names = ["eu-h", "eu-1", "eu-2", "eu-3", "us-h", "us-h2", "us-1", "us-2", "ap-h", "ap-1"]
    nodes = inventory(names, ikemesh_topology="partial_mesh")
    for name, hv in nodes.items():
        hv["ikemesh_region"] = name.split("-")[0]
    nodes["eu-1"]["ikemesh_extra_peers"] = ["us-1", "ap-h"]
    nodes["eu-2"]["ikemesh_excluded_peers"] = ["eu-3"]
    nodes["us-2"]["ikemesh_excluded_peers"] = ["us-h"]
    plan = build_plan(nodes, hubs=["eu-h", "us-h", "us-h2", "ap-h"])
    p = pairs(plan)
    assert ("eu-1", "eu-2") in p and ("eu-2", "eu-3") not in p
    assert ("eu-1", "us-1") in p and ("ap-h", "eu-1") in p
    assert ("us-h", "us-h2") in p and ("ap-h", "eu-h") in p
    assert ("us-h", "us-2") not in p and ("us-2", "us-h2") in p
    assert ("eu-2", "us-1") not in p
    assert plan["nodes"]["eu-1"]["region"] == "eu"
    assert plan["nodes"]["ap-h"]["forwards"] is True
    check_structure(plan)
    check_policy_routing(plan)


@pytest.mark.parametrize("mode", ["xfrm", "vti"])
def test_route_based_modes(mode):
    plan = build_plan(inventory(["a", "b", "c"], ikemesh_tunnel_mode=mode))
    ab = peer(plan, "a", "b")
    assert ab["local_ts"] == ab["remote_ts"] == ["0.0.0.0/0", "::/0"]
    # pair link number k = j*(j-1)//2 + i: (0,1) -> 0, (0,2) -> 1, (1,2) -> 2
    assert ab["link_address"] == "169.254.0.0/31" and ab["link_peer_address"] == "169.254.0.1/31"
    assert peer(plan, "c", "b")["link_address"] == "169.254.0.5/31"
    assert peer(plan, "a", "c")["link_address"] == "169.254.0.2/31"
    check_structure(plan)


def test_nodes_may_mix_xfrm_and_vti():
    nodes = inventory(["a", "b", "c"], ikemesh_tunnel_mode="vti")
    nodes["b"]["ikemesh_tunnel_mode"] = "xfrm"
    del nodes["c"]["ikemesh_tunnel_mode"]
    plan = build_plan(nodes)
    # the SAs are the same on the wire; only the local interface differs
    assert plan["tunnel_mode"] == "xfrm"
    assert {name: node["tunnel_mode"] for name, node in plan["nodes"].items()} == {
        "a": "vti",
        "b": "xfrm",
        "c": "xfrm",
    }
    assert peer(plan, "a", "b")["local_ts"] == ["0.0.0.0/0", "::/0"]
    check_structure(plan)
    plan = build_plan(inventory(["a", "b"], ikemesh_tunnel_mode="vti"))
    assert plan["tunnel_mode"] == "vti" and plan["nodes"]["b"]["tunnel_mode"] == "vti"
    assert build_plan(inventory(["a", "b"]))["nodes"]["a"]["tunnel_mode"] == "policy"


def test_xfrm_nodes_steer_their_links_and_vti_nodes_do_not():
    nodes = inventory(["a", "b", "c"], ikemesh_tunnel_mode="xfrm")
    nodes["c"]["ikemesh_tunnel_mode"] = "vti"
    plan = build_plan(nodes)
    ab, ac, ca = peer(plan, "a", "b"), peer(plan, "a", "c"), peer(plan, "c", "a")
    assert (ab["link"], ab["if_id"], ab["reqid"]) == ("ikm2", 2, 65538)
    # an xfrm node's peer: a receive link with the fixed inbound id, an idle id for a link without an
    # SA, both above charon's %unique ids (which count from 1)
    assert (ab["receive_link"], ab["receive_if_id"], ab["idle_if_id"]) == ("ikm2r", 0x80000002, 0xC0000002)
    assert (ac["receive_link"], ac["receive_if_id"], ac["idle_if_id"]) == ("ikm3r", 0x80000003, 0xC0000003)
    # a vti node keeps one link per peer, bound by its key
    assert (ca["link"], ca["reqid"], ca["receive_link"], ca["receive_if_id"], ca["idle_if_id"]) == (
        "ikm1",
        65537,
        None,
        None,
        None,
    )
    policy = peer(build_plan(inventory(["a", "b"])), "a", "b")
    assert (policy["link"], policy["reqid"], policy["receive_link"]) == (None, 65538, None)


def test_only_xfrm_and_vti_may_differ_per_node():
    nodes = inventory(["a", "b", "c"], ikemesh_tunnel_mode="xfrm")
    nodes["c"]["ikemesh_tunnel_mode"] = "policy"
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("c", "ikemesh_tunnel_mode")
    assert "only xfrm and vti may differ per node" in exc.message
    nodes = inventory(["a", "b", "c"], ikemesh_tunnel_mode="xfrm", ikemesh_overlay_pool="fd00:99::/48")
    nodes["b"]["ikemesh_tunnel_mode"] = "vti"
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("b", "ikemesh_tunnel_mode") and "vti carries IPv6" in exc.message


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"ikemesh_topology": "hub_spoke", "ikemesh_ipsec_backend": "libipsec"},
            "policy mode cannot relay through hubs with the libipsec backend",
        ),
        ({"ikemesh_tunnel_mode": "vxlan"}, "vxlan mode is for the libipsec backend"),
        (
            {"ikemesh_tunnel_mode": "xfrm", "ikemesh_ipsec_backend": "libipsec"},
            "xfrm interfaces are a kernel IPsec feature",
        ),
        (
            {"ikemesh_tunnel_mode": "vti", "ikemesh_ipsec_backend": "libipsec"},
            "vti interfaces are a kernel IPsec feature",
        ),
        (
            {"ikemesh_tunnel_mode": "vti", "ikemesh_overlay_pool": "fd00:99::/48"},
            "vti carries IPv6 overlays only over an IPv6 underlay",
        ),
    ],
)
def test_mode_backend_combinations_that_cannot_work(settings, message):
    names = ["a", "b", "c"]
    nodes = inventory(names, **settings)
    with pytest.raises(PlanError, match=message) as err:
        build_plan(nodes, hubs=["a"])
    assert err.value.field == "ikemesh_tunnel_mode"
    assert ": ikemesh_tunnel_mode: " in str(err.value)


def test_vxlan_mode_and_libipsec_mtu():
    plan = build_plan(inventory(["a", "b"], ikemesh_tunnel_mode="vxlan", ikemesh_ipsec_backend="libipsec"))
    ab = peer(plan, "a", "b")
    # VXLAN between the overlay addresses, each a local address libipsec can route from
    assert ab["local_ts"] == [plan["nodes"]["a"]["overlay_address"] + "/32"]
    assert ab["remote_ts"] == [plan["nodes"]["b"]["overlay_address"] + "/32"]
    assert ab["vni"] == 1 and peer(plan, "b", "a")["vni"] == 1
    # 1438-byte ESP payload capped at ipsec0's 1400, minus 50 bytes of VXLAN
    assert plan["nodes"]["a"]["mtu"] == 1350
    plan = build_plan(inventory(["a", "b"], ikemesh_ipsec_backend="libipsec", ikemesh_underlay_mtu=9000))
    assert plan["nodes"]["a"]["mtu"] == 1400 and plan["nodes"]["a"]["mss"] == 1360


def test_ipv6_pool():
    plan = build_plan(
        inventory(["a", "b", "c"], ikemesh_overlay_pool="fd00:99::/48", ikemesh_tunnel_mode="xfrm")
    )
    a = plan["nodes"]["a"]
    assert a["overlay_subnet"] == "fd00:99::/64"
    assert a["overlay_address"] == "fd00:99::1"
    assert plan["nodes"]["b"]["overlay_subnet"] == "fd00:99:0:1::/64"
    assert peer(plan, "a", "b")["local_ts"] == ["0.0.0.0/0", "::/0"]
    assert peer(plan, "a", "b")["link_address"] == "fe80::/127"
    assert a["mss"] == a["mtu"] - 60
    check_structure(plan)


def test_ipv6_hub_spoke_policy():
    nodes = inventory(["h", "s1", "s2"], ikemesh_overlay_pool="fd00:99::/48", ikemesh_topology="hub_spoke")
    plan = build_plan(nodes, hubs=["h"])
    check_structure(plan)
    check_policy_routing(plan)


def test_overrides_and_ansible_host_fallback():
    nodes = inventory(["a", "b", "c"])
    del nodes["b"]["ikemesh_underlay_address"]
    nodes["b"]["ansible_host"] = "203.0.113.7"
    nodes["c"]["ikemesh_overlay_subnet"] = "10.99.0.0/25"
    nodes["a"]["ikemesh_identity"] = "a.mesh.example"
    nodes["a"]["ikemesh_underlay_mtu"] = 9000
    plan = build_plan(nodes)
    assert plan["nodes"]["b"]["underlay_address"] == "203.0.113.7"
    assert plan["nodes"]["c"]["overlay_subnet"] == "10.99.0.0/25"
    # index 0's automatic subnet overlaps c's override: skipped
    assert plan["ledger"] == {"a": 1, "b": 2, "c": 3}
    assert plan["nodes"]["a"]["overlay_subnet"] == "10.99.1.0/24"
    assert plan["nodes"]["a"]["identity"] == "a.mesh.example"
    assert plan["nodes"]["a"]["mtu"] == 8946
    check_structure(plan)


# --------------------------------------------------------------------------------------------------
# ledger


def test_ledger_stability_add_and_remove():
    first = build_plan(inventory(["a", "b", "c", "d"], ikemesh_tunnel_mode="xfrm"))
    assert first["ledger"] == {"a": 0, "b": 1, "c": 2, "d": 3}
    nodes = inventory(["a", "c", "d", "e", "aa"], ikemesh_tunnel_mode="xfrm")
    for name in ("a", "c", "d"):  # same underlay addresses as before
        nodes[name]["ikemesh_underlay_address"] = first["nodes"][name]["underlay_address"]
    nodes["e"]["ikemesh_underlay_address"] = "192.0.2.50"
    nodes["aa"]["ikemesh_underlay_address"] = "192.0.2.51"
    second = build_plan(nodes, ledger=first["ledger"])
    assert second["ledger"] == {"a": 0, "aa": 1, "c": 2, "d": 3, "e": 4}  # b dropped, hole reused
    for name in ("a", "c", "d"):
        for key in ("index", "overlay_subnet", "overlay_address", "asn"):
            assert second["nodes"][name][key] == first["nodes"][name][key]
    for x, y in (("a", "c"), ("c", "d"), ("d", "a")):
        for key in ("if_id", "link_address", "link_peer_address", "initiator"):
            assert peer(second, x, y)[key] == peer(first, x, y)[key]


def test_ledger_entry_overlapping_override_is_error():
    nodes = inventory(["a", "b"])
    nodes["b"]["ikemesh_overlay_subnet"] = "10.99.0.128/25"
    with pytest.raises(PlanError) as err:
        build_plan(nodes, ledger={"a": 0, "b": 1})
    assert err.value.host == "a" and "b" in err.value.message and err.value.field == "ikemesh_overlay_subnet"


def test_ledger_own_override_may_pin_the_subnet():
    nodes = inventory(["a", "b"])
    nodes["a"]["ikemesh_overlay_subnet"] = "10.99.0.0/24"
    plan = build_plan(nodes, ledger={"a": 0, "b": 1})
    assert plan["ledger"] == {"a": 0, "b": 1}


@pytest.mark.parametrize(
    "ledger, text",
    [({"a": -1}, "non-negative"), ({"a": "x"}, "non-negative"), ({"a": 0, "b": 0}, "also assigned")],
)
def test_ledger_corrupt(ledger, text):
    with pytest.raises(PlanError, match=text) as err:
        build_plan(inventory(["a", "b"]), ledger=ledger)
    assert err.value.field == "ledger"


# --------------------------------------------------------------------------------------------------
# validation


def _error(nodes, hubs=(), ledger=None):
    with pytest.raises(PlanError) as err:
        build_plan(nodes, hubs, ledger)
    exc = err.value
    assert str(exc).startswith(f"host {exc.host}: {exc.field}: " if exc.host else f"mesh: {exc.field}: ")
    return exc


def test_error_format():
    exc = PlanError("n1", "ikemesh_region", "boom")
    assert str(exc) == "host n1: ikemesh_region: boom"
    assert isinstance(exc, ValueError)


def test_empty_nodes():
    assert _error({}).field == "ikemesh_nodes"


@pytest.mark.parametrize(
    "field, value",
    [("ikemesh_topology", "star"), ("ikemesh_tunnel_mode", "gre"), ("ikemesh_ipsec_backend", "x")],
)
def test_unknown_choice(field, value):
    nodes = inventory(["a", "b"])
    nodes["b"][field] = value
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("b", field) and value in exc.message


def test_mesh_wide_value_differs():
    nodes = inventory(["a", "b", "c"])
    nodes["a"]["ikemesh_overlay_pool"] = "10.1.0.0/16"
    nodes["c"]["ikemesh_overlay_pool"] = "10.2.0.0/16"
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("c", "ikemesh_overlay_pool") and "host a" in exc.message


def test_hub_errors():
    nodes = inventory(["a", "b"], ikemesh_topology="hub_spoke")
    assert _error(nodes).field == "ikemesh_hubs"
    exc = _error(nodes, hubs=["zz"])
    assert (exc.host, exc.field) == ("zz", "ikemesh_hubs")
    nodes["b"]["ikemesh_spoke_hubs"] = ["b"]
    exc = _error(dict(nodes, c=inventory(["c"])["c"] | {"ikemesh_underlay_address": "192.0.2.9"}), hubs=["a"])
    assert (exc.host, exc.field) == ("b", "ikemesh_spoke_hubs") and "not a hub" in exc.message
    nodes["b"]["ikemesh_spoke_hubs"] = []
    assert _error(nodes, hubs=["a"]).field == "ikemesh_spoke_hubs"
    nodes["b"]["ikemesh_spoke_hubs"] = "a"
    assert "list" in _error(nodes, hubs=["a"]).message


def test_partial_mesh_errors():
    nodes = inventory(["a", "b", "c"], ikemesh_topology="partial_mesh")
    nodes["a"]["ikemesh_region"] = nodes["b"]["ikemesh_region"] = "eu"
    exc = _error(nodes, hubs=["a"])
    assert (exc.host, exc.field) == ("c", "ikemesh_region")
    nodes["c"]["ikemesh_region"] = "us"
    exc = _error(nodes, hubs=["a"])
    assert (exc.host, exc.field) == ("c", "ikemesh_region") and "no hub" in exc.message
    nodes["c"]["ikemesh_region"] = "eu"
    nodes["b"]["ikemesh_extra_peers"] = ["ghost"]
    exc = _error(nodes, hubs=["a"])
    assert (exc.host, exc.field) == ("b", "ikemesh_extra_peers") and "ghost" in exc.message
    del nodes["b"]["ikemesh_extra_peers"]
    nodes["b"]["ikemesh_excluded_peers"] = ["a"]
    exc = _error(nodes, hubs=["a"])
    assert (exc.host, exc.field) == ("b", "ikemesh_excluded_peers") and "hub" in exc.message


def test_extra_peers_unknown_in_full_mesh():
    nodes = inventory(["a", "b"])
    nodes["a"]["ikemesh_excluded_peers"] = ["nope"]
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("a", "ikemesh_excluded_peers")


def test_duplicate_identity_and_underlay():
    nodes = inventory(["a", "b"])
    nodes["b"]["ikemesh_identity"] = "A"
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("b", "ikemesh_identity") and "host a" in exc.message
    nodes = inventory(["a", "b"])
    nodes["b"]["ikemesh_underlay_address"] = nodes["a"]["ikemesh_underlay_address"]
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("b", "ikemesh_underlay_address") and "host a" in exc.message


@pytest.mark.parametrize("identity", ["bad_name", "-x", "a..b", "10.0.0.1", "x" * 64])
def test_invalid_identity(identity):
    nodes = inventory(["a", "b"])
    nodes["a"]["ikemesh_identity"] = identity
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("a", "ikemesh_identity")


def test_invalid_default_identity_from_hostname():
    exc = _error(inventory(["node_1", "b"]))
    assert (exc.host, exc.field) == ("node_1", "ikemesh_identity")


@pytest.mark.parametrize(
    "value, text",
    [
        ("300.1.1.1", "not a valid IP"),
        ("0.0.0.0", "tunnel endpoint"),
        ("10.99.3.3", "inside the overlay pool"),
        ("2001:db8::1", "same IP version"),
    ],
)
def test_invalid_underlay(value, text):
    nodes = inventory(["a", "b"])
    nodes["b"]["ikemesh_underlay_address"] = value
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("b", "ikemesh_underlay_address") and text in exc.message


def test_missing_underlay_without_ip_ansible_host():
    nodes = inventory(["a", "b"])
    del nodes["b"]["ikemesh_underlay_address"]
    nodes["b"]["ansible_host"] = "b.example.com"
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("b", "ikemesh_underlay_address") and "ansible_host" in exc.message


@pytest.mark.parametrize(
    "value, text",
    [
        ("10.98.0.0/24", "outside the overlay pool"),
        ("10.99.0.1/24", "host bits set"),
        ("fd00::/64", "IPv6"),
        ("nonsense", "not a valid CIDR"),
        ("10.99.0.5/32", "no room"),
        ("10.99.0.0/23", "overlaps"),
    ],
)
def test_invalid_overlay_subnet(value, text):
    nodes = inventory(["a", "b"])
    nodes["a"]["ikemesh_overlay_subnet"] = "10.99.1.0/24"
    nodes["b"]["ikemesh_overlay_subnet"] = value
    exc = _error(nodes)
    assert exc.field == "ikemesh_overlay_subnet" and text in exc.message
    if text == "overlaps":  # names both hosts
        assert {exc.host, "a" if "host a" in exc.message else "b"} == {"a", "b"}
    else:
        assert exc.host == "b"


def test_pool_too_small_and_prefix_errors():
    nodes = inventory(["a", "b", "c"], ikemesh_overlay_pool="10.99.0.0/23")
    exc = _error(nodes)
    assert (exc.host, exc.field) == ("c", "ikemesh_overlay_pool") and "holds 2" in exc.message
    nodes = inventory(["a"], ikemesh_overlay_pool="10.99.0.0/16", ikemesh_overlay_prefix=12)
    assert _error(nodes).field == "ikemesh_overlay_prefix"
    nodes = inventory(["a"], ikemesh_overlay_prefix=32)
    assert _error(nodes).field == "ikemesh_overlay_prefix"


def test_link_pool_errors():
    nodes = inventory(["a", "b"], ikemesh_link_pool="fe80::/64")
    exc = _error(nodes)
    assert exc.field == "ikemesh_link_pool" and "IPv6" in exc.message
    nodes = inventory(["a", "b", "c"], ikemesh_link_pool="169.254.0.0/31", ikemesh_tunnel_mode="vti")
    exc = _error(nodes)
    assert exc.field == "ikemesh_link_pool" and "larger" in exc.message
    # policy mode never uses the link pool
    build_plan(inventory(["a", "b", "c"], ikemesh_link_pool="169.254.0.0/31"))


def test_asn_overflow_and_bad_mtu():
    assert _error(inventory(["a", "b"], ikemesh_asn_base=4294967295)).field == "ikemesh_asn_base"
    exc = _error(inventory(["a", "b"], ikemesh_underlay_mtu=100))
    assert exc.field == "ikemesh_underlay_mtu"
    exc = _error(inventory(["a", "b"], ikemesh_underlay_mtu="big"))
    assert exc.field == "ikemesh_underlay_mtu"


def test_int_like_strings_accepted():
    plan = build_plan(inventory(["a", "b"], ikemesh_overlay_prefix="25", ikemesh_underlay_mtu="1400"))
    assert plan["nodes"]["b"]["overlay_subnet"] == "10.99.0.128/25"
    assert plan["nodes"]["b"]["underlay_mtu"] == 1400
