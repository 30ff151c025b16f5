#!/usr/bin/env python3
"""The container lab: creates exactly the nodes an Ansible inventory declares, as podman containers.

One implementation serves `make lab`, the molecule scenarios and CI. It reads the inventory with
`ansible-inventory` and uses only lab variables (prefix `lab_`); the product's roles never see it.

Inventory contract (lab side):
  lab_name        a label owning every container and network of this lab (`make lab-down` removes
                  only what carries it).
  lab_networks    list of {name, subnet}: internal podman networks (mesh traffic never leaves the
                  machine); a node joins every network whose subnet holds its ikemesh_underlay_address
                  (or one of lab_addresses).
  lab_addresses   optional per-node list of extra addresses on lab networks.
Every node also joins podman's default NAT network, used only for package installs.

NAT routers (hosts of the group `lab_routers`, never mesh nodes; same lab_name):
  lab_router_inside   the router's address on the inside network (one of lab_networks)
  lab_router_outside  its address on the outside network (the underlay, another of lab_networks)
A router is a small container (no systemd, not on podman's default network, so nothing it forwards
can leave the machine) that masquerades (nftables) what comes from its inside subnet and leaves
through its outside interface. A node whose underlay address lies in a router's inside subnet gets
routes to the router's outside subnet via the router's inside address (re-applied on every `up`), not
a default route: its default route stays on podman's network for package installs. Nodes behind NAT
declare it to the product with `ikemesh_behind_nat: true`; with several routers on one inside
network, the first in name order is the gateway (`route NODE ROUTER` moves a node to another one).
"""

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("CONTAINERS_CONF", os.path.join(HERE, "containers.conf"))
LABEL = "ikemesh.lab"


def run(*args, check=True, capture=True):
    result = subprocess.run(args, check=False, text=True, capture_output=capture)
    if check and result.returncode != 0:
        sys.exit(f"podlab: {' '.join(args)} failed:\n{result.stderr}")
    return result


def load_inventory(sources):
    """(lab name, lab_networks, {node: hostvars}) of the inventory's mesh nodes."""
    return read_inventory(sources)[:3]


def read_inventory(sources):
    """load_inventory plus {router: hostvars} of the group lab_routers."""
    args = ["ansible-inventory", "--list"]
    for source in sources:
        args += ["-i", source]
    out = run(*args).stdout
    data = json.loads(out)
    hostvars = data.get("_meta", {}).get("hostvars", {})

    def members(group, seen):
        if group in seen:
            return []
        seen.add(group)
        entry = data.get(group, {})
        hosts = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            hosts += members(child, seen)
        return hosts

    nodes = sorted(set(members("ikemesh_nodes", set())))
    routers = sorted(set(members("lab_routers", set())) - set(nodes))
    if not nodes:
        sys.exit(f"podlab: inventory {', '.join(sources)} has no hosts in group ikemesh_nodes")
    lab_names = {hostvars.get(n, {}).get("lab_name") for n in nodes + routers}
    if len(lab_names) != 1 or None in lab_names:
        sys.exit(
            f"podlab: every node of {' '.join(sources)} needs the same lab_name"
            f" (found {sorted(map(str, lab_names))})"
        )
    lab = lab_names.pop()
    networks = hostvars[nodes[0]].get("lab_networks") or []
    return lab, networks, {n: hostvars.get(n, {}) for n in nodes}, {r: hostvars.get(r, {}) for r in routers}


def network_of(name, address, networks):
    ip = ipaddress.ip_address(address)
    matching = [n for n in networks if ip in ipaddress.ip_network(n["subnet"])]
    if not matching:
        sys.exit(f"podlab: host {name}: address {address} is in none of lab_networks")
    return matching[0]


def router_sides(name, hostvars, networks):
    """((inside network, address), (outside network, address)) of a NAT router."""
    sides = []
    for field in ("lab_router_inside", "lab_router_outside"):
        address = hostvars.get(field)
        if not address:
            sys.exit(f"podlab: router {name}: {field} is not set")
        sides.append((network_of(name, address, networks), address))
    if sides[0][0]["name"] == sides[1][0]["name"]:
        sys.exit(f"podlab: router {name}: inside and outside addresses are on the same network")
    return sides


def gateway_routes(name, hostvars, networks, routers):
    """(outside subnet, router name, router inside address) for a node on a router's inside network."""
    address = hostvars.get("ikemesh_underlay_address")
    if not address:
        return []
    inside = network_of(name, address, networks)["name"]
    routes = {}
    for router in sorted(routers):
        (rin, raddr), (rout, _o) = router_sides(router, routers[router], networks)
        if rin["name"] == inside:
            routes.setdefault(rout["subnet"], (router, raddr))
    return [(subnet, router, raddr) for subnet, (router, raddr) in sorted(routes.items())]


def node_attachments(name, hostvars, networks):
    """Pairs (network name, address) for a node: each address goes on the network that holds it."""
    addresses = [hostvars.get("ikemesh_underlay_address")] + list(hostvars.get("lab_addresses") or [])
    return [(network_of(name, address, networks)["name"], address) for address in filter(None, addresses)]


def existing(kind, lab):
    fmt = "{{.Name}}" if kind == "network" else "{{.Names}}"
    args = ["podman", kind, "ls", "--filter", f"label={LABEL}={lab}", "--format", fmt]
    if kind == "container":
        args.insert(3, "-a")
    return set(run(*args).stdout.split())


NAT_TABLE = "ikemesh_lab_nat"


def start_router(lab, name, hostvars, networks, image, have):
    """A NAT router: forwarding on, nftables masquerade from the inside subnet out of the outside side."""
    (inside, _in_addr), (_outside, out_addr) = router_sides(name, hostvars, networks)
    if name in have:
        run("podman", "start", name)
    else:
        args = ["podman", "run", "-d", "--name", name, "--hostname", name, "--label", f"{LABEL}={lab}"]
        args += ["--systemd=false", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW"]
        args += ["--sysctl", "net.ipv4.ip_forward=1"]
        for net, address in router_sides(name, hostvars, networks):
            args += ["--network", f"{net['name']}:ip={address}"]
        run(*args, image, "sleep", "infinity")
    out = run("podman", "exec", name, "ip", "-o", "-4", "addr", "show", "to", out_addr).stdout.split()
    if len(out) < 2:
        sys.exit(f"podlab: router {name}: no interface holds {out_addr}")
    device = out[1]
    rules = (
        f"table ip {NAT_TABLE}\n"
        f"flush table ip {NAT_TABLE}\n"
        f"table ip {NAT_TABLE} {{\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    ip saddr {inside["subnet"]} oifname "{device}" masquerade\n'
        "  }\n"
        "}\n"
    )
    result = subprocess.run(
        ["podman", "exec", "-i", name, "nft", "-f", "-"],
        input=rules,
        text=True,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"podlab: router {name}: nft failed:\n{result.stderr}")


def up(inventory):
    lab, networks, nodes, routers = read_inventory(inventory)
    image = run(os.path.join(HERE, "image.sh"), capture=True).stdout.strip().splitlines()[-1]
    have_networks = existing("network", lab)
    for net in networks:
        if net["name"] not in have_networks:
            run(
                "podman",
                "network",
                "create",
                "--internal",
                "--label",
                f"{LABEL}={lab}",
                "--subnet",
                net["subnet"],
                net["name"],
            )
    have = existing("container", lab)
    for name, hostvars in routers.items():
        start_router(lab, name, hostvars, networks, image, have)
    for name, hostvars in nodes.items():
        if name in have:
            run("podman", "start", name)
            continue
        args = [
            "podman",
            "run",
            "-d",
            "--name",
            name,
            "--hostname",
            name,
            "--label",
            f"{LABEL}={lab}",
            "--systemd=always",
            "--cap-add",
            "NET_ADMIN",
            "--cap-add",
            "NET_RAW",
            # FRR's zebra insists on CAP_SYS_ADMIN (network namespaces) at start
            "--cap-add",
            "SYS_ADMIN",
            "--device",
            "/dev/net/tun",
            "--network",
            "podman",
        ]
        for network, address in node_attachments(name, hostvars, networks):
            args += ["--network", f"{network}:ip={address}"]
        run(*args, image, "/lib/systemd/systemd")
    deadline = time.time() + 120
    for name in nodes:
        while True:
            state = run("podman", "exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            if time.time() > deadline:
                sys.exit(f"podlab: {name}: systemd did not come up (state {state!r})")
            time.sleep(0.5)
    for name, hostvars in nodes.items():
        for subnet, router, address in gateway_routes(name, hostvars, networks, routers):
            run("podman", "exec", name, "ip", "route", "replace", subnet, "via", address)
            print(f"podlab: {name} reaches {subnet} through NAT router {router}")
    print(f"podlab: lab {lab} up: {', '.join(list(routers) + list(nodes))}")


def down(inventory):
    lab, _networks, _nodes = load_inventory(inventory)
    containers = existing("container", lab)
    if containers:
        run("podman", "rm", "-f", "-t", "2", *sorted(containers))
    networks = existing("network", lab)
    if networks:
        run("podman", "network", "rm", *sorted(networks))
    print(f"podlab: lab {lab} removed ({len(containers)} containers, {len(networks)} networks)")


def kill(inventory, node):
    """Power cut: SIGKILL one node's container (no shutdown); `up` starts it again."""
    lab, _networks, nodes = load_inventory(inventory)
    if node not in nodes:
        sys.exit(f"podlab: {node} is not a node of lab {lab}")
    run("podman", "kill", node)
    print(f"podlab: {node} killed")


def cli(doc, actions, default_inventory):
    """The command line every lab tool shares: `up|down -i INVENTORY [-i ...]`, `kill NODE -i ...`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=sorted(actions))
    parser.add_argument("node", nargs="?", help="the node to act on (kill)")
    parser.add_argument("-i", "--inventory", action="append", help="inventory source (repeatable)")
    args = parser.parse_args()
    inventory = args.inventory or [default_inventory]
    if args.action == "kill":
        if not args.node:
            parser.error("kill needs the node's inventory name")
        actions["kill"](inventory, args.node)
    else:
        actions[args.action](inventory)


def main():
    cli(__doc__, {"up": up, "down": down, "kill": kill}, "inventories/lab")


if __name__ == "__main__":
    main()
