"""Live facts of a deployed mesh, per node: planned SAs up, nothing else, overlay reachable."""

import itertools
import json

import pytest


def _nodes(plan):
    return sorted(plan["nodes"])


def _ike_sas(events):
    """Flatten list-sa events into (connection name, IKE SA dict)."""
    return [(name, sa) for event in events for name, sa in event.items()]


def _child_bytes_in(events, conn):
    return sum(
        int(child["bytes-in"])
        for name, sa in _ike_sas(events)
        if name == conn
        for child in sa["child-sas"].values()
    )


@pytest.fixture(scope="module")
def live(lab_plan, vici_state, lab_host):
    return {name: vici_state(lab_host(name)) for name in _nodes(lab_plan)}


def test_every_planned_peer_has_exactly_one_established_ike_sa(lab_plan, live):
    for name in _nodes(lab_plan):
        sas = _ike_sas(live[name])
        for peer in lab_plan["nodes"][name]["peers"]:
            established = [sa for conn, sa in sas if conn == peer["name"] and sa["state"] == "ESTABLISHED"]
            assert len(established) == 1, f"{name} -> {peer['name']}: {len(established)} ESTABLISHED IKE SAs"


def test_every_planned_peer_has_an_installed_child_sa_with_planned_selectors(lab_plan, live):
    for name in _nodes(lab_plan):
        sas = dict(_ike_sas(live[name]))
        for peer in lab_plan["nodes"][name]["peers"]:
            children = list(sas[peer["name"]]["child-sas"].values())
            installed = [c for c in children if c["state"] == "INSTALLED"]
            assert len(installed) == 1, f"{name} -> {peer['name']}: CHILD SAs {children}"
            assert installed[0]["local-ts"] == peer["local_ts"]
            assert installed[0]["remote-ts"] == peer["remote_ts"]
            assert installed[0]["encr-alg"] in ("AES_GCM_16", "CHACHA20_POLY1305")


def test_no_sa_with_anyone_outside_the_plan(lab_plan, live):
    for name in _nodes(lab_plan):
        expected = {p["name"] for p in lab_plan["nodes"][name]["peers"]}
        assert {conn for conn, _sa in _ike_sas(live[name])} <= expected


def test_every_node_reaches_every_other_overlay_address(lab_plan, lab_host):
    for name in _nodes(lab_plan):
        node = lab_plan["nodes"][name]
        host = lab_host(name)
        for other in _nodes(lab_plan):
            if other == name:
                continue
            address = lab_plan["nodes"][other]["overlay_address"]
            result = host.run("ping -n -q -c 2 -W 2 -I %s %s", node["overlay_address"], address)
            assert result.rc == 0, f"{name} -> {other} ({address}): {result.stdout}"


def _address(cidr_or_address):
    return cidr_or_address.split("/")[0]


def test_planned_mtu_crosses_and_one_byte_more_does_not(lab_plan, lab_host):
    """Don't-fragment pings over each peer's path: the overlay in policy mode, the link otherwise."""
    for name in _nodes(lab_plan):
        node = lab_plan["nodes"][name]
        host = lab_host(name)
        payload = node["mtu"] - (48 if ":" in node["overlay_address"] else 28)
        for peer in node["peers"]:
            source = _address(peer["link_address"] or node["overlay_address"])
            target = _address(peer["link_peer_address"] or peer["overlay_address"])
            ping = "ping -n -q -c 1 -W 2 -M do -s %s -I %s %s"
            assert host.run(ping, str(payload), source, target).rc == 0, (
                f"{name} -> {peer['name']}: {payload} lost"
            )
            assert host.run(ping, str(payload + 1), source, target).rc != 0, (
                f"{name} -> {peer['name']}: {payload + 1} passed"
            )


def test_bgp_established_to_every_peer_and_routes_to_every_subnet(lab_plan, lab_host):
    if lab_plan["tunnel_mode"] == "policy":
        pytest.skip("policy mode runs no routing daemon")
    family = "ipv4Unicast" if lab_plan["ip_version"] == 4 else "ipv6Unicast"
    for name in _nodes(lab_plan):
        node = lab_plan["nodes"][name]
        host = lab_host(name)
        summary = json.loads(host.check_output("vtysh -c 'show bgp summary json'"))[family]["peers"]
        for peer in node["peers"]:
            state = summary.get(_address(peer["link_peer_address"]), {}).get("state")
            assert state == "Established", f"{name} -> {peer['name']}: BGP {state}"
        routes = json.loads(host.check_output("vtysh -c 'show ip route bgp json'"))
        for other in _nodes(lab_plan):
            if other != name:
                subnet = lab_plan["nodes"][other]["overlay_subnet"]
                assert subnet in routes, f"{name}: no BGP route to {other}'s {subnet}"


def test_traffic_between_non_peers_crosses_a_hub(lab_plan, vici_state, lab_host):
    """Pick a pair without a direct SA; its pings must show up in a hub's CHILD SA counters."""
    nodes = lab_plan["nodes"]
    pairs = [
        (a, b)
        for a, b in itertools.combinations(_nodes(lab_plan), 2)
        if b not in {p["name"] for p in nodes[a]["peers"]}
    ]
    if not pairs:
        pytest.skip("full mesh: every pair has a direct SA, no traffic is relayed")
    source, target = pairs[0]
    relays = [p["name"] for p in nodes[source]["peers"] if nodes[p["name"]]["forwards"]]
    before = {hub: _child_bytes_in(vici_state(lab_host(hub)), source) for hub in relays}
    result = lab_host(source).run(
        "ping -n -q -c 5 -i 0.2 -s 1000 -I %s %s",
        nodes[source]["overlay_address"],
        nodes[target]["overlay_address"],
    )
    assert result.rc == 0, result.stdout
    after = {hub: _child_bytes_in(vici_state(lab_host(hub)), source) for hub in relays}
    relayed = sum(after[hub] - before[hub] for hub in relays)
    assert relayed >= 5 * 1000, f"{source} -> {target}: hubs {relays} saw {relayed} bytes from {source}"
