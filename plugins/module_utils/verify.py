"""Judge a node's live IPsec state against its plan (pure Python, no Ansible, no I/O).

Inputs are the node's slice of the mesh plan, the ``connections`` returned by the
``ikemesh.mesh.mesh_status`` module (VICI), and the probes run on the node by verify.yml:
  reach <address> ok|fail          a ping from this node's overlay address to another node's
  mtu <peer> ok|fail passed|blocked
                                   a don't-fragment ping of exactly the planned tunnel MTU to a
                                   peer (must pass) and one of MTU + 1 bytes (must be blocked),
                                   over the tunnel link in the route-based modes
and, in the route-based modes, the BGP neighbours' states (link address -> state).
"""

try:  # both import styles: inside the collection and standalone
    from ansible_collections.ikemesh.mesh.plugins.module_utils.table import text_table
except ImportError:  # pragma: no cover
    from .table import text_table

ESTABLISHED = "ESTABLISHED"
INSTALLED = "INSTALLED"


def parse_probes(lines):
    """Return ({address: reached}, {peer: (fits, oversize_passed)}) from the probe lines."""
    reach, mtu = {}, {}
    for line in lines:
        fields = str(line).split()
        if len(fields) == 3 and fields[0] == "reach":
            reach[fields[1]] = fields[2] == "ok"
        elif len(fields) == 4 and fields[0] == "mtu":
            mtu[fields[1]] = (fields[2] == "ok", fields[3] == "passed")
    return reach, mtu


def bgp_neighbour_states(summary):
    """{neighbour address: state} from FRR's `show bgp summary json` (IPv4 and IPv6 unicast)."""
    states = {}
    for family in ("ipv4Unicast", "ipv6Unicast"):
        for address, neighbour in summary.get(family, {}).get("peers", {}).items():
            states[address] = neighbour.get("state", "unknown")
    return states


def _peer_sa_problems(name, ike_sas):
    """Return (ike_ok, child_ok, problems) for the SAs of one planned peer."""
    problems = []
    established = [sa for sa in ike_sas if sa.get("state") == ESTABLISHED]
    if not established:
        states = ", ".join(sorted({sa.get("state", "?") for sa in ike_sas})) or "none"
        problems.append(f"{name}: no ESTABLISHED IKE SA (IKE SA states: {states})")
    elif len(established) > 1:
        problems.append(f"{name}: {len(established)} ESTABLISHED IKE SAs, expected exactly 1")
    children = [
        c
        for sa in established
        for c in sa.get("child_sas", [])
        if c.get("name") == name and c.get("state") == INSTALLED
    ]
    if not children:
        problems.append(f"{name}: CHILD SA {name} not INSTALLED")
    elif len(children) > 1:
        problems.append(f"{name}: {len(children)} INSTALLED CHILD SAs {name}, expected exactly 1")
    return len(established) == 1, len(children) == 1, problems


def node_report(node_plan, connections, destinations, probe_lines, bgp=None):
    """Return the verdict for one node.

    node_plan: the node's plan slice ({"peers": [...], "mtu": ...}).
    connections: mesh_status's ``connections`` (name -> {"loaded", "ike_sas": [...]}).
    destinations: overlay addresses of every other node (all must answer, through a hub if need be).
    probe_lines: output of the probes (see the module docstring).
    bgp: None without a routing daemon, else FRR's `show bgp summary json`.
    """
    reach, mtu = parse_probes(probe_lines)
    bgp_states = None if bgp is None else bgp_neighbour_states(bgp)
    peers = node_plan.get("peers", [])
    expected = {p["name"] for p in peers}
    problems = []
    ike_up = child_up = mtu_ok = bgp_up = 0
    for peer in peers:
        ike_ok, child_ok, peer_problems = _peer_sa_problems(
            peer["name"], connections.get(peer["name"], {}).get("ike_sas", [])
        )
        ike_up += ike_ok
        child_up += child_ok
        problems += peer_problems
        if bgp_states is not None:
            neighbour = (peer.get("link_peer_address") or "").split("/")[0]
            state = bgp_states.get(neighbour, "absent")
            if state == "Established":
                bgp_up += 1
            else:
                problems.append(f"{peer['name']}: BGP session to {neighbour} is {state}, not Established")
        fits, oversize_passed = mtu.get(peer["name"], (False, True))
        if fits and not oversize_passed:
            mtu_ok += 1
        else:
            problems.append(
                f"{peer['name']}: tunnel MTU {node_plan.get('mtu')} not confirmed "
                f"({'fits' if fits else 'a DF packet of that size is lost'}; "
                f"{'one byte more passes' if oversize_passed else 'one byte more is blocked'})"
            )
    reached = sum(1 for address in destinations if reach.get(address))
    problems += [f"no answer from {a} over the overlay" for a in destinations if not reach.get(a)]
    for name, conn in sorted(connections.items()):
        if name not in expected and conn.get("ike_sas"):
            problems.append(f"{name}: unexpected SA with a peer that is not in the plan")
    return {
        "peers_expected": len(peers),
        "ike_established": ike_up,
        "child_installed": child_up,
        "mtu_confirmed": mtu_ok,
        "bgp_established": bgp_up if bgp is not None else None,
        "destinations": len(destinations),
        "reached": reached,
        "problems": problems,
        "ok": not problems,
    }


def summary_table(reports):
    """Render {node: report} as fixed-width text lines, one per node, problems below."""
    header = ("node", "peers", "IKE up", "CHILD up", "BGP up", "MTU ok", "overlay reach", "status")
    rows = [header]
    for node in sorted(reports):
        r = reports[node]
        peers = r["peers_expected"]
        rows.append(
            (
                node,
                str(peers),
                f"{r['ike_established']}/{peers}",
                f"{r['child_installed']}/{peers}",
                "-" if r["bgp_established"] is None else f"{r['bgp_established']}/{peers}",
                f"{r['mtu_confirmed']}/{peers}",
                f"{r['reached']}/{r['destinations']}",
                "OK" if r["ok"] else "FAIL",
            )
        )
    lines = text_table(rows)
    for node in sorted(reports):
        lines += [f"{node}: {problem}" for problem in reports[node]["problems"]]
    return lines
