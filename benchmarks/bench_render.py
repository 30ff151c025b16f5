#!/usr/bin/env python3
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Time playbooks/render.yml on generated inventories, and the usual per-host template task.

    python3 benchmarks/bench_render.py [--hub-spoke N] [--full-mesh N] [--skip-baseline] [--keep]

Everything runs in a temporary directory: throwaway inventories whose hosts have
`ansible_connection: local` and are never contacted (render.yml only runs controller tasks; the
baseline delegates to localhost). Measured (wall time of the whole ansible-playbook process):

1. render.yml, N=1,000 hub_spoke (4 hubs), first run (writes every file), target < 60 s; and the
   second run (nothing to write, must report changed=0).
2. render.yml, N=200 full mesh, first run.
3. The same N=200 inventory, "the usual way": one ansible.builtin.template task per host (delegated
   to localhost, writing into the temp dir) whose template loops over groups['ikemesh_nodes'] and
   hostvars in Jinja to find the host's peers and writes a swanctl connection block per peer, with the
   same settings (the swanctl role's defaults). Target: render.yml at least 5x faster.

The baseline is kept honest and, if anything, favoured: same inventory (explicit overlay subnets, so
its Jinja can read the peers' subnets), same machine, same run, forks from ansible.cfg; it writes the
same connection blocks (byte volume is printed) but in one file per host instead of one per peer
(fewer files means fewer copy operations for Ansible), and its output directories are created before
the clock starts. --per-peer-baseline N additionally times the literal per-peer variant (a template
task looping over the peers, one file per peer, like the swanctl role) at N nodes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RENDER = os.path.join(ROOT, "playbooks", "render.yml")
SWANCTL_DEFAULTS = os.path.join(ROOT, "roles", "swanctl", "defaults", "main.yml")

TARGET_HUB_SPOKE_S = 60.0
TARGET_RATIO = 5.0

# The usual way: peers found in Jinja by looping over the inventory (what ikemesh's planner replaces).
BASELINE_BLOCK = """\
    {{ peer }} {
        version = 2
        local_addrs = {{ ikemesh_underlay_address }}
        remote_addrs = {{ hostvars[peer].ikemesh_underlay_address }}
        proposals = {{ ikemesh_swanctl_ike_proposals | join(',') }}
        rekey_time = {{ ikemesh_swanctl_ike_rekey_time }}
        dpd_delay = {{ ikemesh_swanctl_dpd_delay }}
        mobike = {{ 'yes' if ikemesh_swanctl_mobike else 'no' }}
        encap = no
        unique = replace
        keyingtries = 0
        local {
            auth = pubkey
            certs = {{ ikemesh_swanctl_credentials_name }}.crt
            id = {{ inventory_hostname }}
        }
        remote {
            auth = pubkey
            id = {{ peer }}
            cacerts = {{ ikemesh_swanctl_credentials_name }}-root-ca.crt
            revocation = strict
        }
        children {
            {{ peer }} {
                mode = tunnel
                local_ts = {{ ikemesh_overlay_subnet }}
                remote_ts = {{ hostvars[peer].ikemesh_overlay_subnet }}
                esp_proposals = {{ ikemesh_swanctl_esp_proposals | join(',') }}
                rekey_time = {{ ikemesh_swanctl_child_rekey_time }}
{% if inventory_hostname < peer %}
                start_action = start
                dpd_action = restart
                close_action = start
{% else %}
                start_action = none
                dpd_action = clear
                close_action = none
{% endif %}
            }
        }
    }
"""
BASELINE_PER_HOST_TEMPLATE = (
    "# {{ ansible_managed }}\nconnections {\n"
    "{% for peer in groups['ikemesh_nodes'] if peer != inventory_hostname %}\n"
    + BASELINE_BLOCK
    + "{% endfor %}\n}\n"
)
BASELINE_PER_PEER_TEMPLATE = "# {{ ansible_managed }}\nconnections {\n" + BASELINE_BLOCK + "}\n"

BASELINE_PLAYBOOK = """\
---
- name: The usual way
  hosts: ikemesh_nodes
  gather_facts: false
  vars_files:
    - {defaults}
  tasks:
{task}
"""
BASELINE_PER_HOST_TASK = """\
    - name: One template per host, peers found by looping over the inventory in Jinja
      ansible.builtin.template:
        src: {template}
        dest: "{out}/{{{{ inventory_hostname }}}}/swanctl/conf.d/ikemesh.conf"
        mode: "0640"
      delegate_to: localhost
"""
BASELINE_PER_PEER_TASK = """\
    - name: One template per peer, peers found by looping over the inventory
      ansible.builtin.template:
        src: {template}
        dest: "{out}/{{{{ inventory_hostname }}}}/swanctl/conf.d/ikemesh-{{{{ peer }}}}.conf"
        mode: "0640"
      loop: "{{{{ groups['ikemesh_nodes'] | difference([inventory_hostname]) }}}}"
      loop_control:
        loop_var: peer
      delegate_to: localhost
"""


def write_inventory(path, n, topology, hubs=0):
    """n hosts (node00001...) with local connections, unique underlay addresses, explicit subnets."""
    width = max(4, len(str(n)))
    names = [f"node{i:0{width}d}" for i in range(1, n + 1)]
    hub_names = names[:hubs]
    lines = ["---", "ikemesh_nodes:", "  hosts:"]
    for i, name in enumerate(names):
        lines.append(f"    {name}:")
        lines.append(f"      ikemesh_underlay_address: 100.{64 + i // 65536}.{i // 256 % 256}.{i % 256 + 0}")
        lines.append(f"      ikemesh_overlay_subnet: 10.{i // 256}.{i % 256}.0/24")
    lines += [
        "  vars:",
        f"    ikemesh_topology: {topology}",
        "    ikemesh_overlay_pool: 10.0.0.0/8",
        "    ansible_connection: local",
        "    ansible_python_interpreter: " + sys.executable,
    ]
    if hub_names:
        lines += ["ikemesh_hubs:", "  hosts:"] + [f"    {name}:" for name in hub_names]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return names


def run_playbook(playbook, inventory, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    start = time.perf_counter()
    proc = subprocess.run(
        ["ansible-playbook", playbook, "-i", inventory, *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"ansible-playbook {os.path.basename(playbook)} failed (rc={proc.returncode})")
    changed = sum(int(c) for c in re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M))
    return elapsed, changed


def tree_size(root):
    files = size = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(directory, name))
    return files, size


def bench_render(tmp, n, topology, hubs):
    inv_dir = os.path.join(tmp, f"{topology}-{n}")
    inventory = os.path.join(inv_dir, "hosts.yml")
    names = write_inventory(inventory, n, topology, hubs)
    out = os.path.join(inv_dir, "rendered")
    first, changed_first = run_playbook(RENDER, inventory, "-e", f"ikemesh_render_dir={out}")
    files, size = tree_size(out)
    second, changed_second = run_playbook(RENDER, inventory, "-e", f"ikemesh_render_dir={out}")
    return {
        "inventory": inventory,
        "names": names,
        "first": first,
        "second": second,
        "changed_first": changed_first,
        "changed_second": changed_second,
        "files": files,
        "bytes": size,
    }


def bench_baseline(tmp, inventory, names, per_peer):
    kind = "per-peer" if per_peer else "per-host"
    work = os.path.join(tmp, f"baseline-{kind}-{len(names)}")
    out = os.path.join(work, "out")
    for name in names:  # the template module does not create directories: done before the clock
        os.makedirs(os.path.join(out, name, "swanctl", "conf.d"))
    template = os.path.join(work, "baseline.conf.j2")
    with open(template, "w") as handle:
        handle.write(BASELINE_PER_PEER_TEMPLATE if per_peer else BASELINE_PER_HOST_TEMPLATE)
    task = (BASELINE_PER_PEER_TASK if per_peer else BASELINE_PER_HOST_TASK).format(template=template, out=out)
    playbook = os.path.join(work, "baseline.yml")
    with open(playbook, "w") as handle:
        handle.write(BASELINE_PLAYBOOK.format(defaults=SWANCTL_DEFAULTS, task=task))
    elapsed, _changed = run_playbook(playbook, inventory)
    files, size = tree_size(out)
    return {"time": elapsed, "files": files, "bytes": size}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub-spoke", type=int, default=1000, metavar="N", help="hub_spoke nodes (4 hubs)")
    parser.add_argument("--full-mesh", type=int, default=200, metavar="N", help="full mesh nodes")
    parser.add_argument("--skip-baseline", action="store_true", help="do not time the usual way")
    parser.add_argument(
        "--per-peer-baseline", type=int, default=0, metavar="N", help="also time the per-peer variant at N"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="ikemesh-bench-")
    failures = []
    try:
        print(f"ansible-playbook playbooks/render.yml, forks from ansible.cfg, temp dir {tmp}")
        hs = bench_render(tmp, args.hub_spoke, "hub_spoke", 4)
        verdict = "ok" if hs["first"] < TARGET_HUB_SPOKE_S else "MISSED"
        print(
            f"  hub_spoke N={args.hub_spoke:>5} (4 hubs): {hs['first']:7.2f} s  "
            f"({hs['files']} files, {hs['bytes'] / 1e6:.1f} MB)  "
            f"target < {TARGET_HUB_SPOKE_S:.0f} s: {verdict}"
        )
        print(f"    second run (nothing changed): {hs['second']:7.2f} s, changed={hs['changed_second']}")
        if verdict != "ok":
            failures.append("hub_spoke target")
        if hs["changed_second"]:
            failures.append("hub_spoke second run changed")

        fm = bench_render(tmp, args.full_mesh, "full_mesh", 0)
        print(
            f"  full_mesh N={args.full_mesh:>5}:          {fm['first']:7.2f} s  "
            f"({fm['files']} files, {fm['bytes'] / 1e6:.1f} MB)"
        )
        print(f"    second run (nothing changed): {fm['second']:7.2f} s, changed={fm['changed_second']}")
        if fm["changed_second"]:
            failures.append("full_mesh second run changed")

        if not args.skip_baseline:
            base = bench_baseline(tmp, fm["inventory"], fm["names"], per_peer=False)
            ratio = base["time"] / fm["first"]
            verdict = "ok" if ratio >= TARGET_RATIO else "MISSED"
            print(
                f"  the usual way, N={args.full_mesh} full mesh (template task per host, peers via "
                f"groups/hostvars in Jinja): {base['time']:7.2f} s ({base['files']} files, "
                f"{base['bytes'] / 1e6:.1f} MB)"
            )
            print(f"    render.yml is {ratio:.1f}x faster (target >= {TARGET_RATIO:.0f}x): {verdict}")
            if verdict != "ok":
                failures.append("ratio target")
        if args.per_peer_baseline:
            n = args.per_peer_baseline
            small = bench_render(tmp, n, "full_mesh", 0)
            base = bench_baseline(tmp, small["inventory"], small["names"], per_peer=True)
            print(
                f"  per-peer files, N={n} full mesh: render.yml {small['first']:.2f} s, the usual way "
                f"(template task looping over peers) {base['time']:.2f} s ({base['files']} files): "
                f"{base['time'] / small['first']:.1f}x"
            )
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("targets missed: " + ", ".join(failures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
