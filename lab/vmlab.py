#!/usr/bin/env python3
"""The kernel lab: the nodes an Ansible inventory declares, as QEMU/TCG VMs with the full Debian kernel.

Same contract as lab/podlab.py (group ikemesh_nodes, lab variables prefixed `lab_`), for what the
host kernel cannot run: native ESP, XFRM interfaces, VTI. Ansible reaches the VMs over SSH.

Inventory contract (lab side):
  lab_name        owns the VMs: their overlays and PID files live in lab/cache/vm/run/<lab_name>/,
                  and `down` stops only the QEMU processes recorded there.
  lab_networks    list of {name, subnet[, mcast]}: one QEMU multicast socket network per entry
                  (mcast "239.192.X.Y:PORT" on 127.0.0.1, so mesh traffic never leaves the machine;
                  default derived from lab_name and name). A node gets a NIC on every network that
                  holds its ikemesh_underlay_address (or one of lab_addresses), address set at boot.
  ansible_port    per node: the host port (127.0.0.1) forwarded to the VM's sshd.
Every VM also has a QEMU user-mode NIC (NAT), used for SSH and package installs only.
"""

import glob
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from podlab import cli, load_inventory, node_attachments  # noqa: E402  (one reading of the contract)

CACHE = os.environ.get("IKEMESH_VM_CACHE", os.path.join(HERE, "cache", "vm"))
KEY = os.path.join(CACHE, "id_ed25519")
# 1 GiB: with 512 MiB a site.yml run on 4 VMs took 11 % longer (page cache evicted, code translated again).
QEMU = ["qemu-system-x86_64", "-accel", "tcg,tb-size=256", "-cpu", "max", "-smp", "1", "-m", "1024"]
SSH_OPTS = [
    "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
]  # fmt: skip
BOOT_TIMEOUT = 400  # TCG: three VMs on two host cores boot to SSH in ~90 s


def log(message):
    print(f"vmlab: {message}", flush=True)


def run(*args, check=True):
    result = subprocess.run(args, check=False, text=True, capture_output=True)
    if check and result.returncode != 0:
        sys.exit(f"vmlab: {' '.join(args)} failed:\n{result.stderr}")
    return result


def digest(*parts):
    return hashlib.sha256("/".join(parts).encode()).digest()


def mac(*parts):
    # Locally administered, stable per lab/node/network: the guest finds its NICs by MAC.
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest(*parts)[:3])


def mcast_of(lab, network):
    if network.get("mcast"):
        return network["mcast"]
    d = digest(lab, network["name"])
    return f"239.192.{d[0]}.{d[1] or 1}:{20000 + int.from_bytes(d[2:4], 'big') % 20000}"


def run_dir(lab):
    return os.path.join(CACHE, "run", lab)


def alive(pid_file, overlay):
    """PID recorded by the lab, if that process is still the QEMU running this overlay."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().decode(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if "qemu-system" in cmdline and overlay in cmdline else None


def backing(overlay):
    return json.loads(run("qemu-img", "info", "-U", "--output=json", overlay).stdout).get("backing-filename")


def prune_images(current):
    """Images of older recipes (about 1 GB each), unless an overlay of some lab still uses them."""
    in_use = {os.path.realpath(current)}
    for overlay in glob.glob(os.path.join(CACHE, "run", "*", "*.qcow2")):
        in_use.add(os.path.realpath(os.path.dirname(backing(overlay) or overlay)))
    for entry in os.listdir(CACHE):
        path = os.path.join(CACHE, entry)
        if re.fullmatch(r"[0-9a-f]{12}", entry) and os.path.realpath(path) not in in_use:
            shutil.rmtree(path)


def ensure_overlay(overlay, base):
    if os.path.exists(overlay):
        if backing(overlay) == base:
            return
        os.remove(overlay)  # made from an older image
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay)


def boot(lab, name, hostvars, networks, image):
    rdir = run_dir(lab)
    overlay = os.path.join(rdir, f"{name}.qcow2")
    pid_file = os.path.join(rdir, f"{name}.pid")
    if alive(pid_file, overlay):
        log(f"{name}: already running")
        return
    port = hostvars.get("ansible_port")
    if not port:
        sys.exit(f"vmlab: host {name}: ansible_port (the forwarded SSH port) is required")
    ensure_overlay(overlay, os.path.join(image, "base.qcow2"))
    mgmt_mac = mac(lab, name, "mgmt")
    append = [
        # The guest runs only lab code: speculative-execution mitigations are pure TCG overhead.
        "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet mitigations=off",
        f"systemd.hostname={name}",
        f"ikemesh.mgmt={mgmt_mac}",
    ]
    nics = [
        "-netdev", f"user,id=mgmt,hostfwd=tcp:127.0.0.1:{int(port)}-:22",
        "-device", f"virtio-net-pci,netdev=mgmt,mac={mgmt_mac}",
    ]  # fmt: skip
    by_name = {n["name"]: n for n in networks}
    for index, (network, address) in enumerate(node_attachments(name, hostvars, networks)):
        prefix = ipaddress.ip_network(by_name[network]["subnet"]).prefixlen
        data_mac = mac(lab, name, network)
        append.append(f"ikemesh.addr={data_mac},{address}/{prefix}")
        nics += [
            "-netdev", f"socket,id=d{index},mcast={mcast_of(lab, by_name[network])},localaddr=127.0.0.1",
            "-device", f"virtio-net-pci,netdev=d{index},mac={data_mac}",
        ]  # fmt: skip
    console = os.path.join(rdir, f"{name}.console.log")
    args = QEMU + [
        "-name", f"{lab}:{name}", "-nodefaults", "-display", "none", "-monitor", "none",
        "-serial", f"file:{console}", "-daemonize", "-pidfile", pid_file,
        "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
        "-append", " ".join(append),
        "-drive", f"file={overlay},if=virtio,format=qcow2",
        "-device", "virtio-rng-pci",
    ] + nics  # fmt: skip
    run(*args)
    log(f"{name}: booting (pid {alive(pid_file, overlay)}, ssh 127.0.0.1:{port})")


def ssh(port, *command):
    return subprocess.run(
        ["ssh", "-i", KEY, "-p", str(port), *SSH_OPTS, "root@127.0.0.1", *command],
        check=False,
        text=True,
        capture_output=True,
        timeout=120,
    )


def wait_ready(lab, nodes, started):
    """SSH answers and systemd finished booting (running or degraded) on every VM."""
    deadline = started + BOOT_TIMEOUT
    for name, hostvars in nodes.items():
        while True:
            try:
                result = ssh(hostvars["ansible_port"], "systemctl", "is-system-running", "--wait")
                state = result.stdout.strip()
            except subprocess.TimeoutExpired:
                state = "timeout"
            if state in ("running", "degraded"):
                log(f"{name}: ready ({state}) after {time.time() - started:.0f} s")
                break
            if time.time() > deadline:
                console = os.path.join(run_dir(lab), f"{name}.console.log")
                sys.exit(f"vmlab: {name}: not ready after {BOOT_TIMEOUT} s (state {state!r}); see {console}")
            time.sleep(2)


def up(inventory):
    lab, networks, nodes = load_inventory(inventory)
    image = run(os.path.join(HERE, "vm", "image.sh")).stdout.strip().splitlines()[-1]
    os.makedirs(run_dir(lab), exist_ok=True)
    started = time.time()
    for name, hostvars in nodes.items():
        boot(lab, name, hostvars, networks, image)
    prune_images(image)
    wait_ready(lab, nodes, started)
    log(f"lab {lab} up: {', '.join(nodes)}")


def stop(pid_file, overlay, timeout):
    """Stop the QEMU the lab recorded for this overlay: SIGTERM, SIGKILL after `timeout` seconds."""
    pid = alive(pid_file, overlay)
    if not pid:
        return False
    os.kill(pid, signal.SIGTERM if timeout else signal.SIGKILL)
    for _ in range(int(timeout * 5) or 50):
        if not alive(pid_file, overlay):
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    return True


def down(inventory):
    lab, _networks, _nodes = load_inventory(inventory)
    rdir = run_dir(lab)
    stopped = 0
    files = os.listdir(rdir) if os.path.isdir(rdir) else []
    # Every VM this lab recorded, also those no longer in the inventory.
    names = sorted({f.rsplit(".", 1)[0] for f in files if f.endswith((".pid", ".qcow2"))})
    for name in names:
        pid_file = f"{name}.pid"
        overlay = os.path.join(rdir, f"{name}.qcow2")
        stopped += stop(os.path.join(rdir, pid_file), overlay, timeout=10)
        for leftover in (pid_file, f"{name}.qcow2", f"{name}.console.log"):
            path = os.path.join(rdir, leftover)
            if os.path.exists(path):
                os.remove(path)
    if os.path.isdir(rdir) and not os.listdir(rdir):
        os.rmdir(rdir)
    log(f"lab {lab} removed ({stopped} VMs stopped)")


def kill(inventory, node):
    """Power cut: SIGKILL one VM (its disk stays); `up` boots it again."""
    lab, _networks, nodes = load_inventory(inventory)
    if node not in nodes:
        sys.exit(f"vmlab: {node} is not a node of lab {lab}")
    rdir = run_dir(lab)
    if not stop(os.path.join(rdir, f"{node}.pid"), os.path.join(rdir, f"{node}.qcow2"), timeout=0):
        sys.exit(f"vmlab: {node} is not running")
    log(f"{node}: powered off")


def main():
    cli(__doc__, {"up": up, "down": down, "kill": kill}, "inventories/kernel")


if __name__ == "__main__":
    main()
