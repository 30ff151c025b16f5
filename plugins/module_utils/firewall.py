# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's nftables ruleset, from its slice of the plan (pure Python, no Ansible imports).

One table (``table inet ikemesh``) holds everything the mesh needs, so it is replaced atomically and
never touches the host's other tables:

* input: IKE and NAT-T (UDP 500 and 4500) from the planned peers' underlay addresses, ESP (IP protocol
  50) from the peers whose SAs are not UDP-encapsulated (kernel backend, neither side behind NAT);
  IKE, NAT-T and ESP from anyone else are dropped (counted). The chain policy is ``accept``: every
  other packet is left to the host's own rules.
* MSS clamping (chains ``mss_out``, jumped to from ``forward`` and ``output``, and ``mss_in`` from
  ``forward``): TCP SYNs (and SYN-ACKs) that enter or leave the tunnels get their MSS option
  lowered to the planner's MSS. Where the tunnel is an interface (``ikm<if_id>`` links of the
  route-based modes, libipsec's ``ipsec0``) the rule matches the interface; in policy mode on the
  kernel backend it matches what the IPsec policy transforms (``rt ipsec exists`` leaving,
  ``meta ipsec exists`` arriving decrypted).
* strict mode (optional): packets whose source lies in another node's overlay subnet are dropped
  unless they came out of a tunnel, and packets for another node's overlay subnet are dropped unless
  they go into one, so overlay prefixes never travel in cleartext on the underlay.

The file starts with ``table inet ikemesh {}`` + ``delete table inet ikemesh``: ``nft -f`` applies it
as one transaction (creating the table if it is missing), so a reload never leaves a gap and never
flushes anything else.
"""

from __future__ import annotations

import ipaddress

try:
    from ansible_collections.ikemesh.mesh.plugins.module_utils.mtu import tcp_mss
except ImportError:  # pragma: no cover - imported as a plain package in benchmarks
    from .mtu import tcp_mss

__all__ = ["FirewallError", "firewall_ruleset", "tunnel_interfaces"]

IKE_PORTS = (500, 4500)
LIBIPSEC_DEVICE = "ipsec0"
_ROUTE_BASED = ("vxlan", "xfrm", "vti")


class FirewallError(ValueError):
    """Bad input for the ruleset (names the host and the field)."""


def _node(plan, host):
    try:
        return plan["nodes"][host]
    except (KeyError, TypeError):
        raise FirewallError(f"host {host}: not in the plan's nodes") from None


def tunnel_interfaces(plan, host):
    """Names of the interfaces through which this node's tunnel traffic enters and leaves.

    Route-based modes: one ``ikm<if_id>`` link per peer, and on xfrm nodes its receive link
    ``ikm<if_id>r`` (on libipsec the vxlan links' encapsulated packets also cross ``ipsec0``).
    Policy mode: ``ipsec0`` on libipsec, none on the kernel backend (there the IPsec policy, not an
    interface, decides).
    """
    node = _node(plan, host)
    names = []
    if plan["tunnel_mode"] in _ROUTE_BASED:
        for peer in node["peers"]:
            names += _peer_links(peer)
    if plan["ipsec_backend"] == "libipsec":
        names.append(LIBIPSEC_DEVICE)
    return names


def _address(host, field, value, version):
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise FirewallError(f"host {host}: {field}: {value!r} is not an IP address or network") from None
    if net.version != version:
        raise FirewallError(
            f"host {host}: {field}: {value} is IPv{net.version} but the underlay is IPv{version}"
        )
    return str(net.network_address) if net.num_addresses == 1 else net.with_prefixlen


def _set(name, version, elements, comment):
    lines = [
        f"    # {comment}",
        f"    set {name} {{",
        f"        type {'ipv4_addr' if version == 4 else 'ipv6_addr'}",
        "        flags interval",
        "        auto-merge",
    ]
    if elements:
        lines.append(f"        elements = {{ {', '.join(elements)} }}")
    lines.append("    }")
    return lines


def _peer_links(peer):
    """The links a peer's traffic crosses: out through ``link``, in through its receive link if any."""
    return [peer["link"]] + ([peer["receive_link"]] if peer.get("receive_link") else [])


def _quoted(names):
    return "{ " + ", ".join(f'"{n}"' for n in names) + " }"


def _clamp_rules(plan, node, version):
    """(direction, match, mss) triples: "out" rules (into a tunnel) run for forwarded and local TCP,
    "in" rules (out of a tunnel) for forwarded TCP only (nft allows ``meta ipsec`` only on received
    packets)."""
    mode, backend = plan["tunnel_mode"], plan["ipsec_backend"]
    families = (4, 6) if mode in _ROUTE_BASED else (version,)
    rules = []
    for family in families:
        proto = "ipv4" if family == 4 else "ipv6"
        try:
            default_mss = node["mss"] if family == version else tcp_mss(node["mtu"], family)
        except ValueError:
            continue  # a link MTU too small for this family carries none of its TCP
        if mode in _ROUTE_BASED:
            # per link, so a per-peer MTU (when the plan carries one) gets its own MSS
            by_mss = {}
            for peer in node["peers"]:
                mtu = peer.get("mtu")
                mss = default_mss if mtu is None or mtu == node["mtu"] else tcp_mss(mtu, family)
                by_mss.setdefault(mss, []).append(peer)
            for mss, peers in sorted(by_mss.items()):
                sending = [peer["link"] for peer in peers]
                receiving = [name for peer in peers for name in _peer_links(peer)]
                rules.append(("out", f"meta nfproto {proto} oifname {_quoted(sending)}", mss))
                rules.append(("in", f"meta nfproto {proto} iifname {_quoted(receiving)}", mss))
        elif backend == "libipsec":
            rules.append(("out", f'meta nfproto {proto} oifname "{LIBIPSEC_DEVICE}"', default_mss))
            rules.append(("in", f'meta nfproto {proto} iifname "{LIBIPSEC_DEVICE}"', default_mss))
        else:
            # kernel policy mode: what an IPsec policy will encrypt, and what arrived decrypted
            rules.append(("out", f"meta nfproto {proto} rt ipsec exists", default_mss))
            rules.append(("in", f"meta nfproto {proto} meta ipsec exists", default_mss))
    return rules


def firewall_ruleset(plan, host, strict=False, mss_clamp=True, extra_ike_sources=(), table="ikemesh"):
    """Return the text of the nft file (``nft -f``) for host's slice of the plan.

    extra_ike_sources: addresses or networks (underlay family) also allowed to send IKE/NAT-T, e.g.
    the public address of a NAT in front of a peer. A peer marked ``behind_nat`` in the plan has no
    predictable source address, so IKE/NAT-T is then accepted from anyone (charon still authenticates
    every peer by its certificate); ESP is never needed from it (NAT-T encapsulates it in UDP 4500).
    """
    node = _node(plan, host)
    if not isinstance(table, str) or not table.replace("_", "").isalnum():
        raise FirewallError(f"host {host}: table: {table!r} is not a valid nftables table name")
    if isinstance(extra_ike_sources, (str, bytes)):
        raise FirewallError(f"host {host}: extra_ike_sources must be a list, got {extra_ike_sources!r}")
    uversion = plan["underlay_ip_version"]
    version = plan["ip_version"]
    ip, oip = ("ip" if uversion == 4 else "ip6"), ("ip" if version == 4 else "ip6")
    backend = plan["ipsec_backend"]
    node_nat = bool(node.get("behind_nat"))
    peers = node["peers"]

    # a peer behind NAT never sends from its own (inside) address: it is not listed
    ike = sorted(
        {
            _address(host, f"peer {p['name']} underlay_address", p["underlay_address"], uversion)
            for p in peers
            if not p.get("behind_nat")
        }
        | {_address(host, "extra_ike_sources", a, uversion) for a in extra_ike_sources}
    )
    ike_from_anyone = any(p.get("behind_nat") for p in peers)
    esp = []
    if backend == "kernel" and not node_nat:
        esp = sorted(
            {
                _address(host, f"peer {p['name']} underlay_address", p["underlay_address"], uversion)
                for p in peers
                if not p.get("behind_nat")
            }
        )
    ports = "{ " + ", ".join(str(p) for p in IKE_PORTS) + " }"

    out = [
        "#!/usr/sbin/nft -f",
        f"# ikemesh firewall of {host} ({plan['tunnel_mode']} mode, {backend} backend). Only this table",
        "# is replaced, in one transaction; the host's other tables and rules are not touched.",
        f"table inet {table} {{}}",
        f"delete table inet {table}",
        f"table inet {table} {{",
    ]
    out += _set("ike_peers", uversion, ike, "underlay addresses of the planned peers (IKE, NAT-T)")
    out += _set("esp_peers", uversion, esp, "peers with ESP not UDP-encapsulated (kernel backend, no NAT)")
    out += [
        "",
        "    chain input {",
        "        type filter hook input priority filter; policy accept;",
    ]
    if ike_from_anyone:
        out.append(
            f'        udp dport {ports} counter accept comment "a peer is behind NAT: any source, '
            'certificates authenticate"'
        )
    else:
        out.append(
            f'        udp dport {ports} {ip} saddr @ike_peers counter accept comment "IKE/NAT-T from peers"'
        )
        out.append(f'        udp dport {ports} counter drop comment "IKE/NAT-T from non-peers"')
    out.append(f'        meta l4proto esp {ip} saddr @esp_peers counter accept comment "ESP from peers"')
    out.append('        meta l4proto esp counter drop comment "ESP from non-peers or UDP-encapsulated peers"')
    out.append("    }")

    clamp = _clamp_rules(plan, node, version) if mss_clamp else []
    if clamp:
        syn = "tcp flags & (syn | rst) == syn"
        out += [
            "",
            "    chain forward {",
            "        type filter hook forward priority filter; policy accept;",
            f"        {syn} jump mss_out",
            f"        {syn} jump mss_in",
            "    }",
            "",
            "    chain output {",
            "        type filter hook output priority filter; policy accept;",
            f"        {syn} jump mss_out",
            "    }",
        ]
        for direction, comment in (
            ("out", "into a tunnel (forwarded or sent by this node)"),
            ("in", "out of a tunnel (forwarded)"),
        ):
            out += ["", f"    # MSS clamping of SYN and SYN-ACK {comment}: only ever lowers the option"]
            out.append(f"    chain mss_{direction} {{")
            for _direction, match, mss in (rule for rule in clamp if rule[0] == direction):
                out.append(
                    f"        {match} tcp option maxseg size > {mss} counter tcp option maxseg size set {mss}"
                )
            out.append("    }")

    if strict:
        pool = plan["overlay_pool"]
        own = node["overlay_subnet"]
        tunnels = tunnel_interfaces(plan, host)
        proto = "ipv4" if version == 4 else "ipv6"
        out += [
            "",
            "    # strict: other nodes' overlay prefixes only through the tunnels, never in cleartext",
            "    chain strict_in {",
            "        type filter hook prerouting priority filter; policy accept;",
            f"        meta nfproto != {proto} return",
            f"        {oip} saddr != {pool} return",
            f'        {oip} saddr {own} return comment "own subnet: hosts behind this node"',
            '        iifname "lo" return',
        ]
        if tunnels:
            out.append(f"        iifname {_quoted(tunnels)} return")
        if backend == "kernel":
            out.append('        meta ipsec exists return comment "decrypted by an SA"')
        out += [
            '        counter drop comment "overlay source outside the tunnels"',
            "    }",
            "",
            "    chain strict_out {",
            "        type filter hook postrouting priority filter; policy accept;",
            f"        meta nfproto != {proto} return",
            f"        {oip} daddr != {pool} return",
            f"        {oip} daddr {own} return",
            '        oifname "lo" return',
        ]
        if tunnels:
            out.append(f"        oifname {_quoted(tunnels)} return")
        if backend == "kernel":
            out.append('        rt ipsec exists return comment "an IPsec policy encrypts it"')
        out += ['        counter drop comment "overlay destination outside the tunnels"', "    }"]
    out += ["}", ""]
    return "\n".join(out)
