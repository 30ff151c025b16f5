"""NAT traversal and MOBIKE, read from the live lab (molecule/nat).

The nodes behind NAT (ikemesh_behind_nat) sit on an inside network behind a NAT router of the lab
(group lab_routers, nftables masquerade); the hub can not reach their inside addresses at all.
"""

import ipaddress
import re
import time

import pytest


def _ike(events, conn):
    """The ESTABLISHED IKE SA of a connection (exactly one)."""
    sas = [
        sa for event in events for name, sa in event.items() if name == conn and sa["state"] == "ESTABLISHED"
    ]
    assert len(sas) == 1, f"{conn}: {len(sas)} ESTABLISHED IKE SAs"
    return sas[0]


@pytest.fixture(scope="module")
def lab(lab_inventory_data, lab_plan):
    """Plan, NATed node names, routers and each NATed node's gateway router, from the inventory."""
    data = lab_inventory_data
    hostvars = data["_meta"]["hostvars"]
    routers = {r: hostvars[r] for r in data.get("lab_routers", {}).get("hosts", [])}
    networks = [
        ipaddress.ip_network(n["subnet"]) for n in hostvars[sorted(lab_plan["nodes"])[0]]["lab_networks"]
    ]

    def net(address):
        return next(n for n in networks if ipaddress.ip_address(address) in n)

    natted = sorted(n for n, node in lab_plan["nodes"].items() if node["behind_nat"])
    assert len(natted) >= 2, "the nat scenario needs two nodes behind NAT"
    gateway = {}
    for name in natted:
        inside = net(lab_plan["nodes"][name]["underlay_address"])
        mine = sorted(r for r, hv in routers.items() if net(hv["lab_router_inside"]) == inside)
        assert len(mine) >= 2, f"{name}: the MOBIKE test needs two NAT routers on its inside network"
        gateway[name] = mine
    return {"plan": lab_plan, "natted": natted, "routers": routers, "gateway": gateway, "net": net}


def test_nated_nodes_initiate_over_nat_t_and_peers_see_the_routers_outside_address(lab, vici_state, lab_host):
    plan = lab["plan"]
    for name in lab["natted"]:
        node = plan["nodes"][name]
        router = lab["routers"][lab["gateway"][name][0]]
        mine = vici_state(lab_host(name))
        for peer in node["peers"]:
            sa = _ike(mine, peer["name"])
            assert sa.get("initiator") == "yes", f"{name} -> {peer['name']}: not the initiator"
            assert sa.get("nat-local") == "yes", f"{name} -> {peer['name']}: NAT not detected: {sa}"
            assert (sa["local-host"], sa["remote-host"]) == (
                node["underlay_address"],
                peer["underlay_address"],
            )
            assert (sa["local-port"], sa["remote-port"]) == ("4500", "4500"), sa
            theirs = _ike(vici_state(lab_host(peer["name"])), name)
            assert theirs.get("nat-remote") == "yes", f"{peer['name']} -> {name}: {theirs}"
            assert theirs["remote-host"] == router["lab_router_outside"], theirs
            assert theirs["remote-port"] != "500", theirs
            children = [c for c in theirs["child-sas"].values() if c["state"] == "INSTALLED"]
            assert children and all(c.get("encap") == "yes" for c in children), children
            print(
                f"\n{peer['name']}: IKE SA #{theirs['uniqueid']} with {name} "
                f"(inside {node['underlay_address']}) at {theirs['remote-host']}:{theirs['remote-port']} "
                "(NAT detected, ESP in UDP)"
            )


def test_nated_nodes_have_no_sa_with_each_other_and_talk_both_ways_through_the_hub(lab, vici_state, lab_host):
    plan = lab["plan"]
    natted = lab["natted"]
    for name in natted:
        conns = {conn for event in vici_state(lab_host(name)) for conn in event}
        assert not conns & (set(natted) - {name}), f"{name} has an SA with another NATed node: {conns}"
        assert all(plan["nodes"][p["name"]]["is_hub"] for p in plan["nodes"][name]["peers"])
    for name in natted:
        for other in sorted(plan["nodes"]):
            if other == name:
                continue
            for a, b in ((name, other), (other, name)):
                result = lab_host(a).run(
                    "ping -n -q -c 3 -i 0.2 -W 2 -I %s %s",
                    plan["nodes"][a]["overlay_address"],
                    plan["nodes"][b]["overlay_address"],
                )
                assert result.rc == 0, f"{a} -> {b}: {result.stdout}"


def _wait(what, check, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.2)


def _readdress(host, old, new, underlay, gateway):
    """Move the node's inside address from old (CIDR) to new (CIDR) and its underlay route to gateway."""
    new_ip, old_ip = new.split("/")[0], old.split("/")[0]
    script = (
        f"set -e; dev=$(ip -o -4 addr show to {old_ip} | awk '{{print $2}}'); "
        f"ip addr add {new} dev $dev; "
        f"ip route replace {underlay} via {gateway} dev $dev src {new_ip} onlink; "
        f"ip addr del {old} dev $dev"
    )
    host.check_output("sh -c %s", script)


def _roam(lab, vici_state, lab_host, name, old, new, router):
    """Re-address `name` behind `router` while the hub pings it; returns what was measured."""
    plan = lab["plan"]
    hub = next(p["name"] for p in plan["nodes"][name]["peers"])
    node_host, hub_host = lab_host(name), lab_host(hub)
    before_hub = _ike(vici_state(hub_host), name)
    before_node = _ike(vici_state(node_host), hub)
    source, target = plan["nodes"][hub]["overlay_address"], plan["nodes"][name]["overlay_address"]
    log = f"/tmp/ikemesh-mobike-{name}.txt"
    hub_host.check_output(
        "sh -c %s",
        f"rm -f {log}; setsid -f sh -c 'echo $$ > {log}.pid; "
        f"exec ping -n -i 0.05 -I {source} {target}' > {log} 2>&1",
    )
    _wait(
        "the first replies",
        lambda: hub_host.run("grep -c 'bytes from' %s", log).stdout.strip() not in ("", "0"),
    )
    outside = lab["routers"][router]["lab_router_outside"]
    underlay = str(lab["net"](plan["nodes"][hub]["underlay_address"]))
    started = time.monotonic()
    _readdress(node_host, old, new, underlay, lab["routers"][router]["lab_router_inside"])
    after_hub = _wait(
        f"{hub} to see {name} at {outside}",
        lambda: next(
            (sa for sa in [_ike(vici_state(hub_host), name)] if sa["remote-host"] == outside),
            None,
        ),
    )
    updated = time.monotonic() - started
    _wait(
        f"{hub} -> {name} overlay replies",
        lambda: hub_host.run("ping -n -q -c 1 -W 1 -I %s %s", source, target).rc == 0,
    )
    resumed = time.monotonic() - started
    time.sleep(1)
    hub_host.run("sh -c %s", f"kill -INT $(cat {log}.pid)")
    summary = _wait(
        "the ping summary",
        lambda: re.search(r"(\d+) packets transmitted, (\d+) received", hub_host.check_output("cat %s", log)),
    )
    sent, received = int(summary.group(1)), int(summary.group(2))
    after_node = _ike(vici_state(node_host), hub)
    result = {
        "hub": hub,
        "before_hub": before_hub,
        "after_hub": after_hub,
        "before_node": before_node,
        "after_node": after_node,
        "sent": sent,
        "lost": sent - received,
        "updated": updated,
        "resumed": resumed,
    }
    print(
        f"\nMOBIKE {name} {old.split('/')[0]} -> {new.split('/')[0]} (behind {router}): {hub} IKE SA "
        f"#{before_hub['uniqueid']} -> #{after_hub['uniqueid']}, endpoint {before_hub['remote-host']}:"
        f"{before_hub['remote-port']} -> {after_hub['remote-host']}:{after_hub['remote-port']} after "
        f"{updated:.1f} s, replies back after {resumed:.1f} s; lost {sent - received} of {sent} pings "
        f"(one every 50 ms)"
    )
    return result


def test_mobike_keeps_the_ike_sa_when_a_nated_node_moves_behind_another_nat(lab, vici_state, lab_host):
    name = lab["natted"][0]
    first, second = lab["gateway"][name][:2]
    address = lab["plan"]["nodes"][name]["underlay_address"]
    inside = lab["net"](address)
    old = f"{address}/{inside.prefixlen}"
    used = {lab["plan"]["nodes"][n]["underlay_address"] for n in lab["plan"]["nodes"]}
    used |= {hv["lab_router_inside"] for hv in lab["routers"].values()}
    spare = next(str(ip) for ip in reversed(list(inside.hosts())) if str(ip) not in used)
    new = f"{spare}/32"
    moves = []
    try:
        moves.append(_roam(lab, vici_state, lab_host, name, old, new, second))
    finally:
        # back to the planned address and router (the other live tests expect the planned lab)
        moves.append(_roam(lab, vici_state, lab_host, name, new, old, first))
    for move in moves:
        assert move["after_hub"]["uniqueid"] == move["before_hub"]["uniqueid"], move
        assert move["after_node"]["uniqueid"] == move["before_node"]["uniqueid"], move
        assert move["after_hub"]["remote-host"] != move["before_hub"]["remote-host"], move
        assert move["lost"] < move["sent"], move
    assert moves[0]["after_node"]["local-host"] == spare
    assert moves[1]["after_node"]["local-host"] == lab["plan"]["nodes"][name]["underlay_address"]
