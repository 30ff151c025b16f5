"""BGP over the tunnels (route-based modes), on the live FRR: the origin filters refuse a prefix
announced by a node that does not own it, and a configuration change is a reload that keeps every
session up."""

import json
import os
import time

import pytest

BGP_ONLY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks", "bgp_only.yml")


def _vtysh(host, *commands):
    return host.check_output("vtysh" + " -c %s" * len(commands), *commands)


def _family(plan):
    return "ipv4" if plan["ip_version"] == 4 else "ipv6"


def _address(cidr):
    return cidr.split("/")[0]


def _link_to(plan, name, other):
    """The address `name` peers with `other` at (the other end of their tunnel link)."""
    return next(_address(p["link_peer_address"]) for p in plan["nodes"][name]["peers"] if p["name"] == other)


def _sessions(plan, host):
    """Neighbour address -> (state, times established, times dropped) from `show bgp summary json`."""
    peers = json.loads(_vtysh(host, "show bgp summary json"))[f"{_family(plan)}Unicast"]["peers"]
    return {
        addr: (p.get("state"), p.get("connectionsEstablished"), p.get("connectionsDropped"))
        for addr, p in peers.items()
    }


def _paths(plan, host, prefix):
    """(neighbour address, origin AS) of every path `host` holds for prefix (origin: the last AS)."""
    found = json.loads(_vtysh(host, f"show bgp {_family(plan)} unicast {prefix} json"))
    return [(p["peer"]["peerId"], int(p["aspath"]["string"].split()[-1])) for p in found.get("paths", [])]


def _updates_from(host, address):
    found = json.loads(_vtysh(host, f"show bgp neighbors {address} json"))
    return found[address]["messageStats"]["updatesRecv"]


def _wait(condition, what, timeout=45):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(1)


def _route_based(plan):
    if plan["tunnel_mode"] == "policy":
        pytest.skip("policy mode runs no routing daemon")


def test_a_hub_cannot_announce_another_node_s_subnet(lab_plan, lab_host):
    """A hub relays everything, so only its peers' inbound filters stop it from announcing a spoke's
    subnet as its own: the update must arrive and be refused, and traffic keep its real origin."""
    _route_based(lab_plan)
    nodes = lab_plan["nodes"]
    hubs = [name for name in sorted(nodes) if nodes[name]["forwards"]]
    if not hubs:
        pytest.skip("no node relays (full mesh): every node's outbound filter announces only its own subnet")
    hub = hubs[0]
    neighbours = [p["name"] for p in nodes[hub]["peers"]]
    victim, observer = sorted(neighbours, key=lambda name: (nodes[name]["forwards"], name))[:2]
    prefix, family = nodes[victim]["overlay_subnet"], _family(lab_plan)
    hub_host, watcher = lab_host(hub), lab_host(observer)
    hub_address = _link_to(lab_plan, observer, hub)
    relayed = (hub_address, nodes[victim]["asn"])
    assert relayed in _paths(lab_plan, watcher, prefix), f"{observer} has no path via {hub} to start with"
    updates = _updates_from(watcher, hub_address)
    hijack = ("configure terminal", f"router bgp {nodes[hub]['asn']}", f"address-family {family} unicast")
    _vtysh(hub_host, *hijack, f"network {prefix}")
    try:
        _wait(lambda: _updates_from(watcher, hub_address) > updates, f"{hub}'s update at {observer}")
        paths = _paths(lab_plan, watcher, prefix)
        print(f"{hub} announced {victim}'s {prefix}; {observer} now holds (neighbour, origin AS) {paths}")
        # refused: the hub's announcement replaced its relayed path, and was dropped by the filter
        assert all(origin == nodes[victim]["asn"] for _neighbour, origin in paths), paths
        assert all(neighbour != hub_address for neighbour, _origin in paths), paths
    finally:
        _vtysh(hub_host, *hijack, f"no network {prefix}")
    _wait(lambda: relayed in _paths(lab_plan, watcher, prefix), f"{hub} relaying {prefix} again")


def test_a_bgp_change_is_a_reload_that_keeps_every_session(lab_plan, lab_host, lab_inventory, run_playbook):
    _route_based(lab_plan)
    if lab_plan["ipsec_backend"] == "kernel":
        # FRR's reload does not depend on the IPsec data path; two playbook runs on TCG VMs would cost
        # the kernel scenario minutes of its budget.
        pytest.skip("proved by the container scenarios (hub_spoke, partial_mesh)")
    name = sorted(lab_plan["nodes"])[0]
    host = lab_host(name)
    peers = [p["name"] for p in lab_plan["nodes"][name]["peers"]]
    watched = [(name, host)] + [(peer, lab_host(peer)) for peer in peers]
    before = {who: _sessions(lab_plan, h) for who, h in watched}
    assert all(state == "Established" for s in before.values() for state, _up, _down in s.values()), before
    # A reload restarts FRR's watchdog (watchfrr) by design, never the routing daemons.
    daemons = host.check_output("cat /run/frr/bgpd.pid /run/frr/zebra.pid")

    def apply(*extra):
        return run_playbook(BGP_ONLY, lab_inventory, "--limit", name, *extra)

    try:
        returncode, output, recap = apply("-e", "ikemesh_bgp_maximum_paths=7")
        assert returncode == 0, output[-6000:]
        assert [(h, changed > 0) for h, changed, _u, _f in recap] == [(name, True)], recap
        assert "maximum-paths 7" in _vtysh(host, "show running-config"), "not applied"
        assert host.check_output("cat /run/frr/bgpd.pid /run/frr/zebra.pid") == daemons, "FRR restarted"
        after = {who: _sessions(lab_plan, h) for who, h in watched}
        print(f"maximum-paths 7 on {name}: sessions before {before[name]}, after {after[name]}")
        assert after == before, "a BGP session was reset by the reload"
    finally:
        returncode, output, _recap = apply()  # the inventory's setting back
        assert returncode == 0, output[-6000:]


def test_traffic_through_the_hubs_is_spread_over_every_common_hub(lab_plan, lab_host):
    """ECMP: a node reaches a non-peer's subnet through every hub they share (equal AS path length),
    as one kernel route with a next hop per hub link."""
    _route_based(lab_plan)
    nodes = lab_plan["nodes"]
    checked = 0
    for name in sorted(nodes):
        links = {p["name"]: p["link"] for p in nodes[name]["peers"]}
        for other in sorted(nodes):
            if other == name or other in links:
                continue
            shared = {
                links[hub]
                for hub in links
                if nodes[hub]["forwards"] and other in {p["name"] for p in nodes[hub]["peers"]}
            }
            if len(shared) < 2:
                continue
            family = "-4" if lab_plan["ip_version"] == 4 else "-6"
            subnet = nodes[other]["overlay_subnet"]
            routes = json.loads(lab_host(name).check_output("ip %s -j route show %s", family, subnet))
            assert len(routes) == 1, f"{name}: {routes}"
            hops = {hop["dev"] for hop in routes[0].get("nexthops", [routes[0]])}
            assert hops == shared, f"{name} -> {other}'s {subnet}: next hops via {hops}, hubs via {shared}"
            checked += 1
    if not checked:
        pytest.skip("no pair of nodes shares two hubs")
