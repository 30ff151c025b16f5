# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter mesh_dot: the planned mesh with its live state as a Graphviz DOT graph."""

from ansible.errors import AnsibleFilterError

STATES = {
    # state: (colour, style, meaning)
    "up": ("#2e7d32", "bold", "SAs up on both sides"),
    "partial": ("#ef6c00", "bold", "up on one side only"),
    "down": ("#c62828", "dashed", "planned, not up"),
    "unknown": ("#757575", "dotted", "no live state"),
}


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _side_up(status, peer):
    conn = ((status or {}).get("connections") or {}).get(peer) or {}
    for ike in conn.get("ike_sas") or []:
        if ike.get("state") == "ESTABLISHED" and any(
            child.get("name") == peer and child.get("state") == "INSTALLED"
            for child in ike.get("child_sas") or []
        ):
            return True
    return False


def _live(status):
    return bool(status) and not status.get("failed") and "connections" in status


def link_state(statuses, a, b):
    """up / partial / down / unknown for the planned pair a-b."""
    sa, sb = statuses.get(a), statuses.get(b)
    if not _live(sa) and not _live(sb):
        return "unknown"
    ups = [_side_up(sa, b) if _live(sa) else None, _side_up(sb, a) if _live(sb) else None]
    if all(ups):
        return "up"
    if any(ups):
        return "partial"
    return "down"


def mesh_dot(plan, statuses=None, title=None):
    """Return the DOT text of the plan (nodes, hubs, regions as clusters) with links coloured by state.

    statuses: {node: mesh_status result}; without it every link is "unknown".
    """
    statuses = dict(statuses or {})
    nodes = plan["nodes"]
    pairs = sorted(
        {tuple(sorted((name, p["name"]))) for name, node in nodes.items() for p in node.get("peers", [])}
    )
    states = {pair: link_state(statuses, *pair) for pair in pairs}
    counts = {state: sum(1 for s in states.values() if s == state) for state in STATES}
    label = title or (
        f"ikemesh {plan.get('topology', '')} "
        f"({plan.get('tunnel_mode', '')}, {plan.get('ipsec_backend', '')}): "
        f"{len(nodes)} nodes, {len(pairs)} links, {counts['up']} up"
    )
    lines = [
        "graph ikemesh {",
        f"  graph [label={_quote(label)}, labelloc=t, fontname=Helvetica, fontsize=14, overlap=false];",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname=Helvetica, fontsize=10];',
        "  edge [fontname=Helvetica, fontsize=9, penwidth=2];",
    ]

    def node_line(name, indent):
        node = nodes[name]
        hub = node.get("is_hub")
        live = statuses.get(name)
        text = "\\n".join(
            (
                f"{name}{' (hub)' if hub else ''}",
                node.get("underlay_address", ""),
                node.get("overlay_subnet", ""),
            )
        )
        fill = "#e3f2fd" if hub else "#ffffff"
        if statuses and not _live(live):
            fill = "#ffcdd2"
            text += "\\ncharon unreachable"
        shape = "doubleoctagon" if hub else "box"
        return f'{indent}{_quote(name)} [label="{text}", shape={shape}, fillcolor={_quote(fill)}];'

    regions = {}
    for name in sorted(nodes):
        regions.setdefault(nodes[name].get("region"), []).append(name)
    for region in sorted(regions, key=lambda r: (r is None, str(r))):
        members = regions[region]
        if region is None:
            lines += [node_line(name, "  ") for name in members]
            continue
        lines.append(f"  subgraph {_quote('cluster_' + str(region))} {{")
        lines.append(f'    label={_quote("region " + str(region))}; style="rounded,dashed"; color="#90a4ae";')
        lines += [node_line(name, "    ") for name in members]
        lines.append("  }")
    for (a, b), state in sorted(states.items()):
        colour, style, _meaning = STATES[state]
        lines.append(
            f"  {_quote(a)} -- {_quote(b)} [color={_quote(colour)}, style={style}, tooltip={_quote(state)}];"
        )
    legend = "\\l".join(f"{state}: {meaning}" for state, (_c, _s, meaning) in STATES.items()) + "\\l"
    lines.append(f'  legend [shape=note, fontsize=9, label="{legend}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mesh_dot(plan, statuses=None, title=None):
    try:
        return mesh_dot(dict(plan), dict(statuses or {}), title)
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.mesh_dot: malformed input: {exc!r}") from exc


class FilterModule:
    def filters(self):
        return {"mesh_dot": _mesh_dot}
