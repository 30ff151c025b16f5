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
    if not nodes:
        sys.exit(f"podlab: inventory {', '.join(sources)} has no hosts in group ikemesh_nodes")
    lab_names = {hostvars.get(n, {}).get("lab_name") for n in nodes}
    if len(lab_names) != 1 or None in lab_names:
        sys.exit(
            f"podlab: every node of {' '.join(sources)} needs the same lab_name"
            f" (found {sorted(map(str, lab_names))})"
        )
    lab = lab_names.pop()
    networks = hostvars[nodes[0]].get("lab_networks") or []
    return lab, networks, {n: hostvars.get(n, {}) for n in nodes}


def node_attachments(name, hostvars, networks):
    """Pairs (network name, address) for a node: each address goes on the network that holds it."""
    addresses = [hostvars.get("ikemesh_underlay_address")] + list(hostvars.get("lab_addresses") or [])
    attachments = []
    for address in filter(None, addresses):
        ip = ipaddress.ip_address(address)
        matching = [n for n in networks if ip in ipaddress.ip_network(n["subnet"])]
        if not matching:
            sys.exit(f"podlab: host {name}: address {address} is in none of lab_networks")
        attachments.append((matching[0]["name"], address))
    return attachments


def existing(kind, lab):
    fmt = "{{.Name}}" if kind == "network" else "{{.Names}}"
    args = ["podman", kind, "ls", "--filter", f"label={LABEL}={lab}", "--format", fmt]
    if kind == "container":
        args.insert(3, "-a")
    return set(run(*args).stdout.split())


def up(inventory):
    lab, networks, nodes = load_inventory(inventory)
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
    print(f"podlab: lab {lab} up: {', '.join(nodes)}")


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
