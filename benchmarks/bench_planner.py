#!/usr/bin/env python3
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner alone (build_plan imported directly, no Ansible): wall time and peak memory.

    python3 benchmarks/bench_planner.py [--runs 3]

Cases: full mesh of 100 and 1,000 nodes, hub_spoke of 10,000 nodes with 4 hubs. Wall time is the best
of --runs runs (time.perf_counter); peak memory is measured in a separate run under tracemalloc
(Python allocations made by build_plan, inputs excluded), because tracing slows the run down.
Targets: 1,000-node full mesh under 3 s, 10,000-node hub_spoke under 2 s.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "collections"))

from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan  # noqa: E402

CASES = [
    # (label, nodes, topology, hubs, target seconds or None)
    ("full_mesh", 100, "full_mesh", 0, None),
    ("full_mesh", 1000, "full_mesh", 0, 3.0),
    ("hub_spoke", 10000, "hub_spoke", 4, 2.0),
]


def inventory(n, topology, hubs):
    """n nodes with unique underlay addresses, overlay pool 10.0.0.0/8 (room for 65,536 /24 subnets)."""
    width = len(str(n))
    first = int(ipaddress.ip_address("100.64.0.1"))
    nodes = {}
    for i in range(n):
        nodes[f"node{i + 1:0{width}d}"] = {
            "ikemesh_underlay_address": str(ipaddress.ip_address(first + i)),
            "ikemesh_topology": topology,
            "ikemesh_overlay_pool": "10.0.0.0/8",
        }
    return nodes, list(nodes)[:hubs]


def peers_of(plan):
    return sum(len(node["peers"]) for node in plan["nodes"].values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case (best is reported)")
    args = parser.parse_args(argv)

    print(
        f"build_plan (Python {sys.version.split()[0]}), best of {args.runs} runs; peak memory via tracemalloc"
    )
    missed = []
    for label, n, topology, hubs, target in CASES:
        nodes, hub_names = inventory(n, topology, hubs)
        times = []
        plan = None
        for _ in range(args.runs):
            plan = None
            gc.collect()
            start = time.perf_counter()
            plan = build_plan(nodes, hub_names)
            times.append(time.perf_counter() - start)
        entries = peers_of(plan)
        plan = None
        gc.collect()
        tracemalloc.start()
        plan = build_plan(nodes, hub_names)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        plan = None
        best = min(times)
        if target is None:
            verdict = ""
        else:
            ok = best < target
            verdict = f"  target < {target:g} s: {'ok' if ok else 'MISSED'} ({best / target:.0%} of target)"
            if not ok:
                missed.append(f"{label} N={n}")
        hub_text = f" ({hubs} hubs)" if hubs else ""
        runs = ", ".join(f"{t:.3f}" for t in times)
        print(
            f"  {label:9} N={n:>6}{hub_text:10} {best:7.3f} s (runs: {runs})  "
            f"peak {peak / 2**20:7.1f} MiB  {entries:>9,} peer entries{verdict}"
        )
    if missed:
        print("targets missed: " + ", ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
