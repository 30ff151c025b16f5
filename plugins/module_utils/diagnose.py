# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name the cause of a mesh problem from every node's facts (pure Python, no Ansible, no I/O).

``diagnose(plan, facts, window)`` returns a list of findings, one per (peer pair or node, cause):
``{"pair": "a<->b" (or the node name), "nodes": [...], "cause": ..., "evidence": ..., "fix": ...}``.
An empty list means a healthy mesh.

``facts`` maps each node to what playbooks/diagnose.yml gathered there:
  status   the result of ikemesh.mesh.mesh_status (``connections``; ``failed``/``msg`` if charon
           could not be queried)
  probes   the lines of roles/verify/files/probe.sh (``reach <addr> ok|fail``,
           ``mtu <peer> ok|fail passed|blocked``)
  node     the JSON of playbooks/files/ikemesh_diagnose_facts.py: ``time`` (the node's clock),
           ``cert`` (own certificate: ``not_before``/``not_after`` epoch, ``chain_ok``,
           ``chain_error``), ``log`` (charon lines naming IKE failures), ``proposals``
           ({conn: {"ike": [...], "esp": [...]}} from the connection files), ``underlay_mtu``,
           ``underlay_interface``, ``routes`` ({peer: {"ok", "dev", "error"}}) and ``udp``
           ({peer: {"500": answered, "4500": answered}})
  bgp      FRR's ``show bgp summary json`` in the route-based modes, else None
``window`` is (start, end): the controller's clock before and after the nodes were read, so a
node's clock offset is measured without trusting any single node.
"""

import re

try:  # both import styles: inside the collection and standalone
    from ansible_collections.ikemesh.mesh.plugins.module_utils.table import text_table
except ImportError:  # pragma: no cover
    from .table import text_table

CAUSES = {
    "charon_down": "charon is not running (or its VICI socket is missing)",
    "clock_skew": "the clocks differ",
    "cert_expired": "certificate expired",
    "cert_not_yet_valid": "certificate not valid yet",
    "cert_expiring": "certificate expires soon",
    "cert_untrusted": "certificate not issued by the mesh CA",
    "udp_blocked": "UDP blocked between the peers",
    "peer_unreachable": "no IKE answer on UDP 500 and 4500",
    "proposal_mismatch": "proposals do not match",
    "ts_mismatch": "traffic selectors do not match",
    "auth_failed": "authentication failed",
    "id_mismatch": "identities do not match",
    "mtu_black_hole": "MTU black hole",
    "route_missing": "route missing",
    "route_asymmetric": "asymmetric routing",
    "bgp_down": "BGP session down",
    "sa_down": "SA down, cause not identified",
}

LOG_CONN = re.compile(r"<([^|>]+)\|\d+>")
LOG_ESTABLISHED = re.compile(r"CHILD_SA \S+ established")
LOG_NOTIFY = re.compile(
    r"received (NO_PROPOSAL_CHOSEN|AUTHENTICATION_FAILED|INVALID_ID_INFORMATION|TS_UNACCEPTABLE)"
)

DEFAULTS = {"max_clock_skew": 120, "cert_warn_days": 7}


def pair_key(a, b):
    return "<->".join(sorted((a, b)))


def _finding(nodes, cause, evidence, fix):
    nodes = sorted(nodes)
    return {
        "pair": "<->".join(nodes),
        "nodes": nodes,
        "cause": cause,
        "title": CAUSES[cause],
        "evidence": evidence,
        "fix": fix,
    }


def planned_pairs(plan):
    """Sorted list of (a, b) with a < b for every planned SA."""
    pairs = set()
    for name, node in plan["nodes"].items():
        for peer in node.get("peers", []):
            pairs.add(tuple(sorted((name, peer["name"]))))
    return sorted(pairs)


def _peer_entry(plan, node, peer):
    for entry in plan["nodes"].get(node, {}).get("peers", []):
        if entry["name"] == peer:
            return entry
    return None


def side_up(facts, node, peer):
    """True if ``node`` has one ESTABLISHED IKE SA with an INSTALLED CHILD SA for ``peer``."""
    conn = facts.get(node, {}).get("status", {}).get("connections", {}).get(peer, {})
    for ike in conn.get("ike_sas", []):
        if ike.get("state") != "ESTABLISHED":
            continue
        if any(c.get("name") == peer and c.get("state") == "INSTALLED" for c in ike.get("child_sas", [])):
            return True
    return False


def ike_up(facts, node, peer):
    conn = facts.get(node, {}).get("status", {}).get("connections", {}).get(peer, {})
    return any(ike.get("state") == "ESTABLISHED" for ike in conn.get("ike_sas", []))


def _node(facts, name):
    return facts.get(name, {}).get("node") or {}


def _charon_down(facts, name):
    status = facts.get(name, {}).get("status")
    return not status or status.get("failed") or "connections" not in status


def log_notifies(facts, node, peer):
    """{notify: [lines]} of ``node``'s charon log lines about its connection to ``peer``.

    Only lines after the last "CHILD_SA ... established" of that connection count.
    """
    found = {}
    for line in _node(facts, node).get("log", []):
        conn = LOG_CONN.search(line)
        if not conn or conn.group(1) != peer:
            continue
        if LOG_ESTABLISHED.search(line):
            found = {}  # what went wrong before the SA came up is history
            continue
        notify = LOG_NOTIFY.search(line)
        if notify:
            found.setdefault(notify.group(1), []).append(line.strip())
    return found


def pair_notifies(facts, a, b):
    """Log notifies seen on either side, as {notify: ["node: line", ...]}."""
    merged = {}
    for node, peer in ((a, b), (b, a)):
        for notify, lines in log_notifies(facts, node, peer).items():
            merged.setdefault(notify, []).append(f"{node}: {lines[-1]}")
    return merged


def clock_offsets(facts, window):
    """{node: seconds its clock is ahead (+) or behind (-) the controller's window}, 0 inside it."""
    start, end = window
    offsets = {}
    for name in facts:
        clock = _node(facts, name).get("time")
        if clock is None:
            continue
        if clock < start:
            offsets[name] = clock - start
        elif clock > end:
            offsets[name] = clock - end
        else:
            offsets[name] = 0.0
    return offsets


def _duration(seconds):
    seconds = abs(seconds)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.0f} s"


def _clock_findings(plan, facts, window, limit):
    offsets = clock_offsets(facts, window)
    findings = []
    for a, b in planned_pairs(plan):
        if a not in offsets or b not in offsets:
            continue
        skew = offsets[a] - offsets[b]
        if abs(skew) <= limit and abs(offsets[a]) <= limit and abs(offsets[b]) <= limit:
            continue
        wrong = [n for n in (a, b) if abs(offsets[n]) > limit] or [a, b]
        detail = ", ".join(
            f"{n} is {_duration(offsets[n])} {'ahead of' if offsets[n] > 0 else 'behind'} the controller"
            for n in (a, b)
            if offsets[n]
        )
        findings.append(
            _finding(
                (a, b),
                "clock_skew",
                f"clocks differ by {_duration(skew)} ({detail}; allowed {limit} s)",
                f"synchronise the clock of {' and '.join(wrong)} (systemd-timesyncd/chrony), then "
                "re-initiate the SAs: certificates are only valid in their time window",
            )
        )
    return findings


def _cert_problem(facts, name, warn_days, offset=0.0):
    """(cause, evidence, fix) of a node's own certificate, or None.

    Judged at the controller's time (the node's clock minus its offset): a skewed clock is reported
    as clock_skew, not as the certificate problems it causes.
    """
    node = _node(facts, name)
    cert = node.get("cert") or {}
    if not cert or node.get("time") is None:
        return None
    now = node["time"] - offset
    if cert.get("error"):
        return (
            "cert_untrusted",
            f"{name}: {cert['error']}",
            f"re-run site.yml to reissue {name}'s certificate",
        )
    serial = cert.get("serial", "?")
    if cert.get("chain_ok") is False:
        return (
            "cert_untrusted",
            f"{name}: certificate serial {serial} (issuer {cert.get('issuer')}) {cert.get('chain_error')}",
            f"install a certificate issued by the mesh's intermediate CA on {name} "
            "(remove the foreign one, re-run site.yml: the pki role reissues it)",
        )
    if cert.get("not_after") is not None and cert["not_after"] <= now:
        return (
            "cert_expired",
            f"{name}: certificate serial {serial} expired {_duration(now - cert['not_after'])} ago",
            f"renew {name}'s certificate (re-run site.yml; the pki role renews certificates that "
            "expire within ikemesh_pki_node_renew_days) and reload credentials",
        )
    if cert.get("not_before") is not None and cert["not_before"] > now:
        return (
            "cert_not_yet_valid",
            f"{name}: certificate serial {serial} becomes valid in {_duration(cert['not_before'] - now)}",
            f"check {name}'s clock and the CA's clock; reissue the certificate",
        )
    if cert.get("not_after") is not None and cert["not_after"] - now < warn_days * 86400:
        return (
            "cert_expiring",
            f"{name}: certificate serial {serial} expires in {_duration(cert['not_after'] - now)}",
            "re-run site.yml before it expires (the pki role renews it)",
        )
    return None


def _proposal_mismatch(facts, a, b):
    """Evidence string if the configured IKE or ESP proposals of a and b have nothing in common."""
    pa = _node(facts, a).get("proposals", {}).get(b)
    pb = _node(facts, b).get("proposals", {}).get(a)
    if not pa or not pb:
        return None
    problems = []
    for kind in ("ike", "esp"):
        la, lb = pa.get(kind) or [], pb.get(kind) or []
        if la and lb and not set(la) & set(lb):
            problems.append(f"{kind.upper()}: {a} offers {','.join(la)}, {b} offers {','.join(lb)}")
    return "; ".join(problems) or None


def _child_config(facts, node, peer):
    conn = facts.get(node, {}).get("status", {}).get("connections", {}).get(peer, {})
    if not conn.get("loaded"):
        return None
    return (conn.get("child_configs") or {}).get(peer)


def _ts_mismatch(plan, facts, a, b):
    """Evidence string if a's local selectors are not b's remote selectors (or vice versa)."""
    ca, cb = _child_config(facts, a, b), _child_config(facts, b, a)
    problems = []
    if ca is not None and cb is not None:
        for x, y, cx, cy in ((a, b, ca, cb), (b, a, cb, ca)):
            if sorted(cx.get("local_ts", [])) != sorted(cy.get("remote_ts", [])):
                problems.append(
                    f"{x} offers local_ts {','.join(cx.get('local_ts', []))} but {y} expects "
                    f"remote_ts {','.join(cy.get('remote_ts', []))}"
                )
    else:
        for x, y, cx in ((a, b, ca), (b, a, cb)):
            planned = _peer_entry(plan, x, y)
            if cx is None or planned is None:
                continue
            for key in ("local_ts", "remote_ts"):
                if sorted(cx.get(key, [])) != sorted(planned.get(key, [])):
                    problems.append(
                        f"{x}: {key} {','.join(cx.get(key, []))}, planned {','.join(planned[key])}"
                    )
    return "; ".join(problems) or None


def _udp_evidence(facts, a, b):
    """(cause, evidence) if the IKE probes between a and b went unanswered, else None."""
    lost, answered = [], []
    for src, dst in ((a, b), (b, a)):
        probes = _node(facts, src).get("udp", {}).get(dst)
        if not probes:
            continue
        for port in ("500", "4500"):
            (answered if probes.get(port) else lost).append((src, dst, port))
    if not lost:
        return None
    text = ", ".join(f"{src} -> {dst} UDP {port}" for src, dst, port in lost)
    if answered:
        ok = ", ".join(f"{src} -> {dst} UDP {port}" for src, dst, port in answered)
        return "udp_blocked", f"no IKE answer on {text} (answered: {ok})"
    return "peer_unreachable", f"no IKE answer on {text}"


def _fix_udp(a, b):
    return (
        f"allow UDP 500 and 4500 between {a} and {b} in every firewall on the path "
        "(nftables/iptables on both nodes, security groups); with NAT or libipsec all of IKE and ESP "
        "uses UDP 4500"
    )


def _pair_down_findings(plan, facts, a, b, cert_causes, explained=False):
    """Causes for a planned pair whose SAs are not up on both sides.

    ``explained``: a cause was already found for the pair (a skewed clock), so the generic causes
    (authentication failed, SA down) are not added.
    """
    findings = []
    notifies = pair_notifies(facts, a, b)
    for node in (a, b):
        if node in cert_causes and cert_causes[node][0] != "cert_expiring":
            cause, evidence, fix = cert_causes[node]
            extra = notifies.get("AUTHENTICATION_FAILED")
            if extra:
                evidence += f"; peer log: {extra[-1]}"
            findings.append(_finding((a, b), cause, evidence, fix))
    udp = _udp_evidence(facts, a, b)
    if udp:
        findings.append(_finding((a, b), udp[0], udp[1], _fix_udp(a, b)))
    # A mismatch shows in the configuration of both sides, in the peer's IKE notify, or in both.
    for cause, config_evidence, notify, fix in (
        (
            "proposal_mismatch",
            _proposal_mismatch(facts, a, b),
            "NO_PROPOSAL_CHOSEN",
            f"give {a} and {b} at least one common IKE and ESP proposal "
            "(ikemesh_swanctl_ike_proposals / ikemesh_swanctl_esp_proposals must be equal mesh-wide), "
            "then reload",
        ),
        (
            "ts_mismatch",
            _ts_mismatch(plan, facts, a, b),
            "TS_UNACCEPTABLE",
            f"make {a}'s local_ts equal {b}'s remote_ts and vice versa (re-run site.yml: the plan "
            "computes both sides), then reload and initiate",
        ),
    ):
        if config_evidence or notify in notifies:
            evidence = "; ".join(filter(None, [config_evidence] + notifies.get(notify, [])[-1:]))
            findings.append(_finding((a, b), cause, evidence, fix))
    if explained:
        return findings
    if not findings and "INVALID_ID_INFORMATION" in notifies:
        findings.append(
            _finding(
                (a, b),
                "id_mismatch",
                notifies["INVALID_ID_INFORMATION"][-1],
                f"the IKE identities of {a} and {b} must match the peers' remote.id and the "
                "certificates' SANs",
            )
        )
    if not findings and "AUTHENTICATION_FAILED" in notifies:
        findings.append(
            _finding(
                (a, b),
                "auth_failed",
                notifies["AUTHENTICATION_FAILED"][-1],
                "check both certificates (chain to the mesh root, identity in the SAN, CRLs) and the clocks",
            )
        )
    if not findings:
        states = []
        for node, peer in ((a, b), (b, a)):
            conn = facts.get(node, {}).get("status", {}).get("connections", {}).get(peer)
            if conn is None or not conn.get("loaded"):
                states.append(f"{node}: connection {peer} not loaded")
            else:
                ikes = [ike.get("state") for ike in conn.get("ike_sas", [])] or ["no IKE SA"]
                states.append(
                    f"{node}: IKE {','.join(ikes)}, CHILD {'up' if side_up(facts, node, peer) else 'down'}"
                )
        findings.append(
            _finding(
                (a, b),
                "sa_down",
                "; ".join(states),
                f"run 'swanctl --initiate --child {b}' on {a} (or the other way round) and read "
                "'journalctl -u strongswan' on both nodes",
            )
        )
    return findings


def _probe_results(facts, node):
    reach, mtu = {}, {}
    for line in facts.get(node, {}).get("probes", []):
        fields = str(line).split()
        if len(fields) == 3 and fields[0] == "reach":
            reach[fields[1]] = fields[2] == "ok"
        elif len(fields) == 4 and fields[0] == "mtu":
            mtu[fields[1]] = fields[2] == "ok"
    return reach, mtu


def _mtu_findings(plan, facts, a, b):
    """A DF probe of the planned tunnel MTU is lost while small packets cross: an MTU black hole."""
    lost = []
    for src, dst in ((a, b), (b, a)):
        reach, mtu = _probe_results(facts, src)
        target = plan["nodes"][dst]["overlay_address"]
        if mtu.get(dst) is False and reach.get(target, True):
            lost.append(f"{src} -> {dst}")
    if not lost:
        return []
    mtu = plan["nodes"][a].get("mtu")
    low = []
    for node in (a, b):
        facts_node = _node(facts, node)
        planned = plan["nodes"][node].get("underlay_mtu", 1500)
        actual = facts_node.get("underlay_mtu")
        if actual is not None and actual < planned:
            low.append(
                f"{node}'s underlay {facts_node.get('underlay_interface')} has MTU {actual}, "
                f"planned {planned}"
            )
    evidence = f"don't-fragment probes of {mtu} bytes lost ({', '.join(lost)}) while small pings cross"
    if low:
        evidence += "; " + "; ".join(low)
    fix = (
        "restore the underlay MTU or declare it: set ikemesh_underlay_mtu to the real path MTU so the "
        "tunnel MTU/MSS are computed from it, re-run site.yml; make sure ICMP 'fragmentation needed' is "
        "not filtered on the path"
    )
    return [_finding((a, b), "mtu_black_hole", evidence, fix)]


def _route_findings(plan, facts, a, b):
    missing = {}
    for src, dst in ((a, b), (b, a)):
        info = _node(facts, src).get("routes", {}).get(dst)
        if info is not None and not info.get("ok", True):
            missing[src] = (
                f"{src} has no route to {dst}'s overlay address ({info.get('error') or 'unreachable'})"
            )
    if not missing:
        return []
    cause = "route_asymmetric" if len(missing) == 1 else "route_missing"
    fix = (
        "re-run site.yml (policy mode: charon installs the routes with the CHILD SA; route-based "
        "modes: the tunnel link and BGP install them); check 'ip route get' on both nodes"
    )
    return [_finding((a, b), cause, "; ".join(missing.values()), fix)]


def _bgp_findings(plan, facts, a, b):
    findings = []
    for src, dst in ((a, b), (b, a)):
        bgp = facts.get(src, {}).get("bgp")
        entry = _peer_entry(plan, src, dst)
        if bgp is None or entry is None or not entry.get("link_peer_address"):
            continue
        neighbour = entry["link_peer_address"].split("/")[0]
        state = "absent"
        for family in ("ipv4Unicast", "ipv6Unicast"):
            peers = (bgp.get(family) or {}).get("peers", {})
            if neighbour in peers:
                state = peers[neighbour].get("state", "unknown")
        if state != "Established":
            findings.append(
                _finding(
                    (a, b),
                    "bgp_down",
                    f"{src}: BGP session to {dst} ({neighbour}) is {state}",
                    f"check FRR on {src} and {dst} ('vtysh -c \"show bgp summary\"'), the tunnel link and "
                    "its CHILD SA; 'systemctl reload frr' after fixing the configuration",
                )
            )
    return findings


def diagnose(plan, facts, window, max_clock_skew=None, cert_warn_days=None):
    """Return the findings for the whole mesh (see the module docstring); [] when healthy."""
    limit = DEFAULTS["max_clock_skew"] if max_clock_skew is None else max_clock_skew
    warn = DEFAULTS["cert_warn_days"] if cert_warn_days is None else cert_warn_days
    findings = []
    down_nodes = set()
    for name in sorted(plan["nodes"]):
        if name in facts and _charon_down(facts, name):
            down_nodes.add(name)
            msg = (facts[name].get("status") or {}).get("msg", "no status")
            findings.append(
                _finding(
                    (name,),
                    "charon_down",
                    f"{name}: {msg}",
                    f"systemctl start strongswan on {name}; 'journalctl -u strongswan' tells why it stopped",
                )
            )
    clock = _clock_findings(plan, facts, window, limit)
    findings += clock
    skewed = {item["pair"] for item in clock}
    cert_causes = {}
    offsets = clock_offsets(facts, window)
    for name in sorted(plan["nodes"]):
        problem = _cert_problem(facts, name, warn, offsets.get(name, 0.0))
        if problem:
            cert_causes[name] = problem
            if problem[0] == "cert_expiring":
                findings.append(_finding((name,), *problem))
    for a, b in planned_pairs(plan):
        if a not in facts or b not in facts or a in down_nodes or b in down_nodes:
            continue
        if side_up(facts, a, b) and side_up(facts, b, a):
            for node in (a, b):
                if node in cert_causes and cert_causes[node][0] != "cert_expiring":
                    findings.append(_finding((a, b), *cert_causes[node]))
            findings += _mtu_findings(plan, facts, a, b)
            findings += _route_findings(plan, facts, a, b)
            findings += _bgp_findings(plan, facts, a, b)
        else:
            findings += _pair_down_findings(plan, facts, a, b, cert_causes, pair_key(a, b) in skewed)
    return findings


def findings_table(findings):
    """Render findings as text lines (empty list -> one line saying the mesh is healthy)."""
    if not findings:
        return ["no findings: every planned pair is up and every check passed"]
    lines = []
    for item in findings:
        lines.append(f"{item['pair']}: {item['cause']} ({item['title']})")
        lines.append(f"    evidence: {item['evidence']}")
        lines.append(f"    fix: {item['fix']}")
    return lines


def mesh_summary(plan, statuses):
    """Compact per-node lines from mesh_status results: peers expected / up, and the problems.

    statuses: {node: mesh_status result}. A peer is up when this node has an ESTABLISHED IKE SA
    with an INSTALLED CHILD SA for it.
    """
    facts = {name: {"status": status or {}} for name, status in statuses.items()}
    rows = [("node", "peers", "up", "problems")]
    for name in sorted(statuses):
        node = plan["nodes"].get(name, {})
        peers = [p["name"] for p in node.get("peers", [])]
        if _charon_down(facts, name):
            problems = [(statuses[name] or {}).get("msg", "charon not reachable over VICI")]
            up = []
        else:
            up = [p for p in peers if side_up(facts, name, p)]
            problems = [f"{p} down" for p in peers if p not in up]
            unexpected = sorted(
                conn
                for conn, data in facts[name]["status"]["connections"].items()
                if conn not in peers and data.get("ike_sas")
            )
            problems += [f"unexpected SA {conn}" for conn in unexpected]
        rows.append((name, str(len(peers)), f"{len(up)}/{len(peers)}", "; ".join(problems) or "-"))
    return text_table(rows, rule=False)
