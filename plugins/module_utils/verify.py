"""Judge a node's live IPsec state against its plan (pure Python, no Ansible, no I/O).

Inputs are the node's slice of the mesh plan, the ``connections`` returned by the
``ikemesh.mesh.mesh_status`` module (VICI), and the outcome of overlay pings.
"""

ESTABLISHED = "ESTABLISHED"
INSTALLED = "INSTALLED"


def _up_children(ike_sa, child_name):
    return [
        c for c in ike_sa.get("child_sas", []) if c.get("name") == child_name and c.get("state") == INSTALLED
    ]


def node_report(node_plan, connections, pings):
    """Return the verdict for one node.

    node_plan: {"peers": [{"name": ..., "overlay_address": ...}, ...], ...}
    connections: mesh_status's ``connections`` (name -> {"loaded", "ike_sas": [...]})
    pings: peer overlay address -> bool (a ping from this node's overlay address got an answer)
    """
    expected = [p["name"] for p in node_plan.get("peers", [])]
    problems = []
    ike_up = child_up = pings_ok = 0
    for peer in node_plan.get("peers", []):
        name = peer["name"]
        ike_sas = connections.get(name, {}).get("ike_sas", [])
        established = [sa for sa in ike_sas if sa.get("state") == ESTABLISHED]
        if len(established) == 1:
            ike_up += 1
        elif not established:
            states = ", ".join(sorted({sa.get("state", "?") for sa in ike_sas})) or "none"
            problems.append(f"{name}: no ESTABLISHED IKE SA (IKE SA states: {states})")
        else:
            problems.append(f"{name}: {len(established)} ESTABLISHED IKE SAs, expected exactly 1")
        children = [c for sa in established for c in _up_children(sa, name)]
        if len(children) == 1:
            child_up += 1
        elif not children:
            problems.append(f"{name}: CHILD SA {name} not INSTALLED")
        else:
            problems.append(f"{name}: {len(children)} INSTALLED CHILD SAs {name}, expected exactly 1")
        if pings.get(peer["overlay_address"]):
            pings_ok += 1
        else:
            problems.append(f"{name}: no answer to ping {peer['overlay_address']} from the overlay")
    for name, conn in sorted(connections.items()):
        if name not in expected and conn.get("ike_sas"):
            problems.append(f"{name}: unexpected SA with a peer that is not in the plan")
    return {
        "peers_expected": len(expected),
        "ike_established": ike_up,
        "child_installed": child_up,
        "pings_ok": pings_ok,
        "problems": problems,
        "ok": not problems,
    }


def summary_table(reports):
    """Render {node: report} as a fixed-width text table, one line per node, problems below it."""
    header = ("node", "peers", "IKE up", "CHILD up", "pings OK", "status")
    rows = [header]
    for node in sorted(reports):
        r = reports[node]
        rows.append(
            (
                node,
                str(r["peers_expected"]),
                f"{r['ike_established']}/{r['peers_expected']}",
                f"{r['child_installed']}/{r['peers_expected']}",
                f"{r['pings_ok']}/{r['peers_expected']}",
                "OK" if r["ok"] else "FAIL",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for node in sorted(reports):
        lines += [f"{node}: {problem}" for problem in reports[node]["problems"]]
    return lines
