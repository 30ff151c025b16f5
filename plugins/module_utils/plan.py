# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ikemesh mesh planner (pure Python: no Ansible imports, no I/O).

build_plan(nodes, hubs, ledger) turns the inventory variables of every mesh node into a complete,
JSON-serialisable description of the mesh: per node its index, overlay subnet/address, ASN, MTU/MSS and
the list of peers with everything a CHILD SA needs (traffic selectors, XFRM interface id, link
addresses, which side initiates).

Stability: every node gets a non-negative integer "index" that is persisted in a ledger between runs.
Everything per node (overlay subnet, ASN, XFRM if_id on its peers) and per pair (link /31, initiator)
is derived from indices and names only, so adding or removing nodes never changes the identifiers of
the remaining nodes and pairs (traffic selectors of forwarding hubs naturally do change).

Policy-mode routing (hub_spoke and partial_mesh).  A CHILD SA's selectors are the cross product
local_ts x remote_ts and both ends mirror each other, so the selectors of every SA must match the
flows that really cross it, in both directions.  For a non-hub node v, HS(v) is the set of hubs it has
an SA with and p(v) its primary hub (preferring hubs of its own region, chosen by index among them):

* a node reaches a peer it has an SA with directly;
* two non-hubs without a direct SA that share a hub H talk through H (either shared hub may be used);
* otherwise (no shared hub, or the destination is a hub without an SA) v goes through p(v), which
  sends to p(destination) over the hub-to-hub SA.

Nodes behind NAT (ikemesh_behind_nat: true; their ikemesh_underlay_address is the inside address)
cannot be dialled: such a node initiates every SA it has, its peers accept it from any address
(bound to its certificate identity), and two such nodes never peer directly.  In hub_spoke and
partial_mesh the pair is dropped from the adjacency like an ikemesh_excluded_peers pair, so it talks
through a hub; a full_mesh has no relay, so two nodes behind NAT there are rejected, as are two hubs
behind NAT and a node behind NAT whose hubs are all behind NAT.

Non-hubs may have overlapping remote selectors on several hub SAs (the kernel picks one; each choice
delivers), hubs never do: on a hub every destination matches exactly one outbound SA, so forwarding
is deterministic and loop free.  Large selector sets of a non-hub are written as the smallest CIDR
block holding all node subnets minus the excluded subnets (a short CIDR list), so unallocated
addresses of that block may appear in a non-hub's remote selectors; hub-to-hub selectors list the
member subnets exactly.
"""

from __future__ import annotations

import gc
import ipaddress
import re
from bisect import bisect_right

__all__ = [
    "ALLOWED",
    "DEFAULTS",
    "MESH_WIDE_FIELDS",
    "NODE_FIELDS",
    "PlanError",
    "build_plan",
]

try:  # both import styles: inside the collection and standalone
    from ansible_collections.ikemesh.mesh.plugins.module_utils.mtu import tcp_mss, tunnel_mtu
except ImportError:  # pragma: no cover
    from .mtu import tcp_mss, tunnel_mtu


class PlanError(ValueError):
    """Invalid inventory.

    str() is "host <host>: <field>: <message>", or "mesh: <field>: <message>" when host is None.
    """

    def __init__(self, host, field, message):
        self.host = host
        self.field = field
        self.message = message
        where = "mesh" if host is None else f"host {host}"
        super().__init__(f"{where}: {field}: {message}")


DEFAULTS = {
    "ikemesh_topology": "full_mesh",
    "ikemesh_overlay_pool": "10.99.0.0/16",
    "ikemesh_overlay_prefix": None,  # 24 for an IPv4 pool, 64 for IPv6
    "ikemesh_link_pool": None,  # 169.254.0.0/16 for an IPv4 overlay pool, fe80::/64 for IPv6
    "ikemesh_tunnel_mode": "policy",
    "ikemesh_ipsec_backend": "kernel",
    "ikemesh_asn_base": 4200000000,
}
ALLOWED = {
    "ikemesh_topology": ("full_mesh", "hub_spoke", "partial_mesh"),
    "ikemesh_tunnel_mode": ("policy", "xfrm", "vti", "vxlan"),
    "ikemesh_ipsec_backend": ("kernel", "libipsec"),
}
MESH_WIDE_FIELDS = tuple(DEFAULTS)
NODE_FIELDS = (
    "ikemesh_underlay_address",
    "ansible_host",
    "ikemesh_overlay_subnet",
    "ikemesh_identity",
    "ikemesh_region",
    "ikemesh_spoke_hubs",
    "ikemesh_extra_peers",
    "ikemesh_excluded_peers",
    "ikemesh_underlay_mtu",
    "ikemesh_behind_nat",
)
_DEFAULT_LINK_POOL = {4: "169.254.0.0/16", 6: "fe80::/64"}
_DEFAULT_PREFIX = {4: 24, 6: 64}
_BITS = {4: 32, 6: 128}
_MAX_ASN = 4294967295
_VXLAN_OVERHEAD = {4: 50, 6: 70}
_LIBIPSEC_MTU = 1400
# Kernel route-based modes differ only in the local tunnel interface (the SAs on the wire are the same),
# so nodes may mix them: vti where a kernel lacks XFRM interfaces (before 4.19), xfrm elsewhere.
_INTERFACE_MODES = ("xfrm", "vti")
# Route-based modes: the tunnel link to a peer is "ikm<if_id>"; the tunnel role creates (and only ever
# deletes) links with this prefix, the firewall names them.
LINK_PREFIX = "ikm"
# Fixed per peer, clear of charon's run-time reqids (which count from 1): after nodes restarted
# together, charon gave two peers' CHILD SAs the same run-time reqid, and libipsec, which picks the
# outbound SA by reqid, sent one peer's traffic into the other's SA.
_REQID_BASE = 65536
# xfrm mode: each CHILD SA gets its own outbound if_id (swanctl if_id_out = %unique, charon counts
# from 1) and the link "ikm<if_id>" sends on whichever the node may use (make-before-break without a
# window, README "Day-2 operations"); every inbound SA of a peer carries the fixed receive id of the
# link "ikm<if_id>r"; a link without a usable SA is parked on its idle id. Both far above charon's.
_RECEIVE_IF_ID_BASE = 0x80000000
_IDLE_IF_ID_BASE = 0xC0000000

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DNS_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")


# --------------------------------------------------------------------------------------------------
# small helpers


def _fmt4(x):
    return f"{x >> 24}.{x >> 16 & 255}.{x >> 8 & 255}.{x & 255}"


def _fmt6(x):
    return str(ipaddress.IPv6Address(x))


def _range_cidrs(start, end, bits, fmt, cache, out):
    """Append the minimal CIDR list covering the integer range [start, end) to out."""
    while start < end:
        size = start & -start if start else 1 << bits
        while size > end - start:
            size >>= 1
        key = (start, size)
        text = cache.get(key)
        if text is None:
            text = cache[key] = f"{fmt(start)}/{bits + 1 - size.bit_length()}"
        out.append(text)
        start += size


def _as_str(host, field, value):
    if not isinstance(value, str):
        raise PlanError(host, field, f"must be a string, got {type(value).__name__} {value!r}")
    value = value.strip()
    if not value:
        raise PlanError(host, field, "must not be empty")
    return value


def _as_int(host, field, value, minimum=None, maximum=None):
    if isinstance(value, bool):
        raise PlanError(host, field, f"must be an integer, got boolean {value!r}")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise PlanError(host, field, f"must be an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise PlanError(host, field, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise PlanError(host, field, f"must be <= {maximum}, got {value}")
    return value


_BOOLEANS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}


def _as_bool(host, field, value):
    """A boolean as Ansible accepts it (true/false, yes/no, on/off, 1/0 as strings from INI inventories)."""
    if isinstance(value, bool):
        return value
    key = value.strip().lower() if isinstance(value, str) else value if value in (0, 1) else None
    result = _BOOLEANS.get(str(key)) if key is not None else None
    if result is None:
        raise PlanError(host, field, f"must be a boolean (true or false), got {value!r}")
    return result


def _as_name_list(host, field, value):
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
        raise PlanError(
            host, field, f"must be a list of inventory hostnames, got {type(value).__name__} {value!r}"
        )
    out = []
    for item in value:
        if not isinstance(item, str):
            raise PlanError(host, field, f"must be a list of inventory hostnames, got item {item!r}")
        out.append(item)
    return out


_NET_CACHE = {}


def _parse_network(host, field, value):
    key = value
    net = _NET_CACHE.get(key)
    if net is not None:
        return net
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise PlanError(host, field, f"{value!r} is not a valid CIDR network ({exc})") from None
        raise PlanError(
            host, field, f"{value!r} has host bits set; did you mean {loose.with_prefixlen}?"
        ) from None
    if len(_NET_CACHE) > 4096:
        _NET_CACHE.clear()
    _NET_CACHE[key] = net
    return net


def _check_identity(host, identity):
    if len(identity) > 253 or not _DNS_RE.match(identity):
        source = "ikemesh_identity" if identity != host else "the inventory hostname (default identity)"
        raise PlanError(
            host,
            "ikemesh_identity",
            f"{identity!r} from {source} is not a valid DNS name (labels of letters, digits and '-', "
            "at most 63 characters each, no leading/trailing '-', no '_'); set ikemesh_identity",
        )
    if identity.rsplit(".", 1)[-1].isdigit():
        raise PlanError(
            host,
            "ikemesh_identity",
            f"{identity!r} looks like an IP address, not a DNS name; set ikemesh_identity to a DNS name",
        )


# --------------------------------------------------------------------------------------------------
# inputs


def _mesh_settings(nodes):
    """Collect the mesh-wide variables, checking they are equal wherever set."""
    found = {}
    for host, hv in nodes.items():
        for field in MESH_WIDE_FIELDS:
            value = hv.get(field)
            if value is None:
                continue
            if field in ("ikemesh_overlay_prefix", "ikemesh_asn_base"):
                value = _as_int(host, field, value, 0)
            else:
                value = _as_str(host, field, value)
                if field in ("ikemesh_overlay_pool", "ikemesh_link_pool"):
                    value = _parse_network(host, field, value)
            prev = found.get(field)
            if prev is None:
                found[field] = (value, host)
            elif prev[0] != value and not (
                field == "ikemesh_tunnel_mode" and {prev[0], value} <= set(_INTERFACE_MODES)
            ):
                shown = value.with_prefixlen if hasattr(value, "with_prefixlen") else value
                other = prev[0].with_prefixlen if hasattr(prev[0], "with_prefixlen") else prev[0]
                mixable = " (only xfrm and vti may differ per node)" if field == "ikemesh_tunnel_mode" else ""
                raise PlanError(
                    host,
                    field,
                    f"{shown!r} differs from {other!r} set on host {prev[1]}; this is a mesh-wide "
                    f"setting and must be equal on every node{mixable} (set it once in group_vars of "
                    "ikemesh_nodes or all)",
                )
    return {field: found[field][0] if field in found else None for field in MESH_WIDE_FIELDS}, {
        field: found[field][1] for field in found
    }


def _choice(settings, origin, field):
    value = settings[field]
    if value is None:
        return DEFAULTS[field]
    if value not in ALLOWED[field]:
        raise PlanError(
            origin.get(field), field, f"unknown value {value!r}; allowed: {', '.join(ALLOWED[field])}"
        )
    return value


# --------------------------------------------------------------------------------------------------
# the planner


def build_plan(nodes, hubs=(), ledger=None):
    """Plan the mesh.

    nodes: ordered mapping inventory_hostname -> dict of that host's variables (see NODE_FIELDS and
    MESH_WIDE_FIELDS); hubs: names of the hubs (group ikemesh_hubs); ledger: name -> index from the
    previous run (or None).  Returns the plan dict; raises PlanError for any invalid input.

    Lists inside the result may be shared between entries (e.g. a node's own one-element selector
    list is used by all its peer entries): treat the result as read-only or serialise it.
    """
    # The plan is a tree of up to millions of small dicts without reference cycles; the cyclic
    # garbage collector would repeatedly scan them all while they are being built.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_plan(nodes, hubs, ledger)
    finally:
        if enabled:
            gc.enable()


def _build_plan(nodes, hubs, ledger):
    if not nodes:
        raise PlanError(None, "ikemesh_nodes", "no mesh nodes: the inventory group ikemesh_nodes is empty")
    names_in = list(nodes)
    for host in names_in:
        if not isinstance(host, str) or not host:
            raise PlanError(host, "inventory_hostname", "inventory hostnames must be non-empty strings")
        if not hasattr(nodes[host], "get"):
            raise PlanError(
                host, "hostvars", f"expected a mapping of variables, got {type(nodes[host]).__name__}"
            )

    settings, origin = _mesh_settings(nodes)
    topology = _choice(settings, origin, "ikemesh_topology")
    tunnel_mode = _choice(settings, origin, "ikemesh_tunnel_mode")
    backend = _choice(settings, origin, "ikemesh_ipsec_backend")
    node_mode = {}  # host -> its tunnel interface mode (xfrm or vti); unset: the mesh's
    if tunnel_mode in _INTERFACE_MODES:
        own = {}
        for host in names_in:
            value = nodes[host].get("ikemesh_tunnel_mode")
            if value is not None:
                own[host] = _as_str(host, "ikemesh_tunnel_mode", value)
        if len(set(own.values())) > 1:
            tunnel_mode = "xfrm"  # a mesh mixing both is an xfrm mesh with some vti nodes
        node_mode = {host: own.get(host, tunnel_mode) for host in names_in}
    route_based = tunnel_mode != "policy"
    if tunnel_mode == "policy" and backend == "libipsec" and topology != "full_mesh":
        # libipsec installs a route per outbound policy and needs a local address inside each local
        # selector; a hub has none in the spoke subnets it relays, so it rejects those CHILD SAs.
        raise PlanError(
            origin.get("ikemesh_tunnel_mode"),
            "ikemesh_tunnel_mode",
            f"policy mode cannot relay through hubs with the libipsec backend ({topology}); "
            "use ikemesh_tunnel_mode: vxlan (route-based, BGP) or the kernel backend",
        )
    if tunnel_mode == "vxlan" and backend != "libipsec":
        raise PlanError(
            origin.get("ikemesh_tunnel_mode"),
            "ikemesh_tunnel_mode",
            "vxlan mode is for the libipsec backend; with the kernel backend use xfrm (or vti)",
        )
    if tunnel_mode in _INTERFACE_MODES and backend != "kernel":
        raise PlanError(
            origin.get("ikemesh_tunnel_mode"),
            "ikemesh_tunnel_mode",
            f"{tunnel_mode} interfaces are a kernel IPsec feature and need ikemesh_ipsec_backend: kernel; "
            "with the libipsec backend use vxlan (route-based) or policy",
        )

    # ---- overlay pool / prefix
    pool = settings["ikemesh_overlay_pool"]
    if pool is None:
        pool = _parse_network(None, "ikemesh_overlay_pool", DEFAULTS["ikemesh_overlay_pool"])
    version = pool.version
    bits = _BITS[version]
    fmt = _fmt4 if version == 4 else _fmt6
    prefix = settings["ikemesh_overlay_prefix"]
    if prefix is None:
        prefix = max(_DEFAULT_PREFIX[version], pool.prefixlen)
    if prefix < pool.prefixlen or prefix > bits - 1:
        raise PlanError(
            origin.get("ikemesh_overlay_prefix"),
            "ikemesh_overlay_prefix",
            f"/{prefix} does not fit the overlay pool {pool.with_prefixlen}: it must be between "
            f"/{pool.prefixlen} and /{bits - 1} (each node needs at least one address besides the network)",
        )
    pool_start = int(pool.network_address)
    pool_end = pool_start + pool.num_addresses
    sub_size = 1 << (bits - prefix)
    capacity = 1 << (prefix - pool.prefixlen)

    # ---- link pool
    link_pool = settings["ikemesh_link_pool"]
    if link_pool is None:
        link_pool = _parse_network(None, "ikemesh_link_pool", _DEFAULT_LINK_POOL[version])
    elif link_pool.version != version:
        raise PlanError(
            origin.get("ikemesh_link_pool"),
            "ikemesh_link_pool",
            f"{link_pool.with_prefixlen} is IPv{link_pool.version} but the overlay pool "
            f"{pool.with_prefixlen} is IPv{version}; both must use the same IP version",
        )
    link_start = int(link_pool.network_address)
    link_capacity = link_pool.num_addresses // 2
    link_len = bits - 1
    asn_base = settings["ikemesh_asn_base"]
    if asn_base is None:
        asn_base = DEFAULTS["ikemesh_asn_base"]
    if asn_base > _MAX_ASN:
        raise PlanError(origin.get("ikemesh_asn_base"), "ikemesh_asn_base", f"{asn_base} exceeds {_MAX_ASN}")

    # ---- hubs
    if hubs is None:
        hubs = ()
    if isinstance(hubs, str) or not hasattr(hubs, "__iter__"):
        raise PlanError(None, "ikemesh_hubs", f"hubs must be a list of inventory hostnames, got {hubs!r}")
    hub_names = set()
    for hub in hubs:
        if hub not in nodes:
            raise PlanError(
                hub,
                "ikemesh_hubs",
                "is in the group ikemesh_hubs but not in ikemesh_nodes; add it to ikemesh_nodes",
            )
        hub_names.add(hub)
    if topology == "hub_spoke" and not hub_names:
        raise PlanError(
            None, "ikemesh_hubs", "topology hub_spoke needs at least one hub: the group ikemesh_hubs is empty"
        )

    # ---- per node
    names = sorted(names_in)
    pos_of = {host: a for a, host in enumerate(names)}
    n = len(names)
    hv_list = [nodes[host] for host in names]
    is_hub = [host in hub_names for host in names]
    identity = [None] * n
    underlay = [None] * n
    underlay_version = None
    umtu = [1500] * n
    nat = [False] * n
    override = {}  # position -> (start, end)
    seen_ident = {}
    seen_underlay = {}
    for a, host in enumerate(names):
        hv = hv_list[a]
        ident = hv.get("ikemesh_identity")
        ident = host if ident is None else _as_str(host, "ikemesh_identity", ident)
        _check_identity(host, ident)
        key = ident.lower()
        if key in seen_ident:
            raise PlanError(
                host,
                "ikemesh_identity",
                f"identity {ident!r} is already used by host {seen_ident[key]}; identities must be unique",
            )
        seen_ident[key] = host
        identity[a] = ident

        raw = hv.get("ikemesh_underlay_address")
        if raw is None:
            fallback = hv.get("ansible_host")
            try:
                addr = ipaddress.ip_address(fallback.strip() if isinstance(fallback, str) else fallback)
            except ValueError:
                raise PlanError(
                    host,
                    "ikemesh_underlay_address",
                    f"not set and ansible_host ({fallback!r}) is not an IP address; set "
                    "ikemesh_underlay_address to the address peers use to reach this node",
                ) from None
        else:
            try:
                addr = ipaddress.ip_address(raw.strip() if isinstance(raw, str) else raw)
            except ValueError:
                raise PlanError(
                    host, "ikemesh_underlay_address", f"{raw!r} is not a valid IP address"
                ) from None
        if addr.is_unspecified or addr.is_multicast:
            raise PlanError(host, "ikemesh_underlay_address", f"{addr} cannot be used as a tunnel endpoint")
        if underlay_version is None:
            underlay_version = (addr.version, host)
        elif addr.version != underlay_version[0]:
            raise PlanError(
                host,
                "ikemesh_underlay_address",
                f"{addr} is IPv{addr.version} but host {underlay_version[1]} has an IPv{underlay_version[0]} "
                "underlay address; all tunnel endpoints of one mesh must use the same IP version",
            )
        if addr.version == version and pool_start <= int(addr) < pool_end:
            raise PlanError(
                host,
                "ikemesh_underlay_address",
                f"{addr} lies inside the overlay pool {pool.with_prefixlen}; the underlay must not be "
                "routed through the tunnels",
            )
        behind = hv.get("ikemesh_behind_nat")
        if behind is not None:
            nat[a] = _as_bool(host, "ikemesh_behind_nat", behind)
        text = str(addr)
        # Nodes behind NAT are never dialled at their (inside) address, so two of them behind
        # different NAT routers may share one; every address peers dial must be unique.
        other = seen_underlay.get(text)
        if other is not None and not (nat[a] and nat[other[1]]):
            raise PlanError(
                host,
                "ikemesh_underlay_address",
                f"{text} is already the underlay address of host {other[0]}; "
                "underlay addresses must be unique",
            )
        seen_underlay[text] = (host, a)
        underlay[a] = text

        mtu = hv.get("ikemesh_underlay_mtu")
        if mtu is not None:
            umtu[a] = _as_int(host, "ikemesh_underlay_mtu", mtu, 576 if addr.version == 4 else 1280, 65535)

        sub = hv.get("ikemesh_overlay_subnet")
        if sub is not None:
            net = _parse_network(host, "ikemesh_overlay_subnet", _as_str(host, "ikemesh_overlay_subnet", sub))
            if net.version != version:
                raise PlanError(
                    host,
                    "ikemesh_overlay_subnet",
                    f"{net.with_prefixlen} is IPv{net.version} but the overlay pool {pool.with_prefixlen} "
                    f"is IPv{version}",
                )
            start = int(net.network_address)
            if not (pool_start <= start and start + net.num_addresses <= pool_end):
                raise PlanError(
                    host,
                    "ikemesh_overlay_subnet",
                    f"{net.with_prefixlen} is outside the overlay pool {pool.with_prefixlen}",
                )
            if net.prefixlen > bits - 1:
                raise PlanError(
                    host,
                    "ikemesh_overlay_subnet",
                    f"{net.with_prefixlen} has no room for the node's overlay address; "
                    f"use /{bits - 1} or shorter",
                )
            override[a] = (start, start + net.num_addresses)
    uversion = underlay_version[0]

    # overrides must not overlap each other
    ov_sorted = sorted((s, e, a) for a, (s, e) in override.items())
    for (s1, e1, a1), (s2, _e2, a2) in zip(ov_sorted, ov_sorted[1:]):
        if s2 < e1:
            raise PlanError(
                names[a2],
                "ikemesh_overlay_subnet",
                f"{_cidr(s2, override[a2][1], bits, fmt)} overlaps {_cidr(s1, e1, bits, fmt)} of host "
                f"{names[a1]}; overlay subnets must not overlap",
            )
    # automatic-subnet index ranges covered by overrides: (lo, hi, owner), sorted
    reserved = [((s - pool_start) // sub_size, (e - 1 - pool_start) // sub_size, a) for s, e, a in ov_sorted]
    res_lo = [r[0] for r in reserved]

    def reserved_by(i, exclude):
        """Owner position of an override overlapping automatic subnet i (other than exclude), or None."""
        k = bisect_right(res_lo, i) - 1
        while k >= 0 and reserved[k][1] >= i:
            if reserved[k][2] != exclude:
                return reserved[k][2]
            k -= 1
        return None

    # ---- indices (ledger)
    if ledger is None:
        ledger = {}
    if not isinstance(ledger, dict):
        raise PlanError(
            None, "ledger", f"the ledger must be a mapping name -> index, got {type(ledger).__name__}"
        )
    index = [None] * n
    used = {}
    for a, host in enumerate(names):
        if host not in ledger:
            continue
        i = ledger[host]
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise PlanError(
                host, "ledger", f"index {i!r} is not a non-negative integer; the ledger file is corrupt"
            )
        if i in used:
            raise PlanError(
                host,
                "ledger",
                f"index {i} is also assigned to host {names[used[i]]}; the ledger file is corrupt "
                "(fix or remove it; removing it renumbers the mesh)",
            )
        if a not in override:
            if i >= capacity:
                raise PlanError(
                    host,
                    "ikemesh_overlay_pool",
                    f"ledger index {i} has no subnet in {pool.with_prefixlen} split into /{prefix} "
                    f"({capacity} subnets); use a pool at least as large as before "
                    "or set ikemesh_overlay_subnet",
                )
            other = reserved_by(i, a)
            auto = pool_start + i * sub_size
            if other is not None:
                raise PlanError(
                    host,
                    "ikemesh_overlay_subnet",
                    f"the automatic subnet {_cidr(auto, auto + sub_size, bits, fmt)} of this host "
                    f"(ledger index {i}) overlaps the ikemesh_overlay_subnet of host {names[other]}; "
                    f"choose another subnet for {names[other]}",
                )
        used[i] = a
        index[a] = i
    nxt = 0
    for a, host in enumerate(names):
        if index[a] is not None:
            continue
        while True:
            if nxt in used:
                nxt += 1
                continue
            k = bisect_right(res_lo, nxt) - 1
            if k >= 0 and reserved[k][1] >= nxt:
                nxt = reserved[k][1] + 1
                continue
            break
        if nxt >= capacity and a not in override:
            blocked = sum(min(hi, capacity - 1) - lo + 1 for lo, hi, _o in reserved if lo < capacity)
            raise PlanError(
                host,
                "ikemesh_overlay_pool",
                f"the overlay pool {pool.with_prefixlen} split into /{prefix} holds {capacity} node subnets "
                f"(at most {blocked} of them overlap ikemesh_overlay_subnet overrides) and all are taken; "
                f"{n} nodes need one each: use a larger ikemesh_overlay_pool "
                "or a longer ikemesh_overlay_prefix",
            )
        used[nxt] = a
        index[a] = nxt
        nxt += 1
    max_index = max(index)
    if asn_base + max_index > _MAX_ASN:
        raise PlanError(
            names[index.index(max_index)],
            "ikemesh_asn_base",
            f"ASN {asn_base} + index {max_index} exceeds {_MAX_ASN}; lower ikemesh_asn_base",
        )

    # ---- per node derived values
    cidr_cache = {}
    sub_start = [0] * n
    sub_end = [0] * n
    sub_str = [None] * n
    own_ts = [None] * n
    for a in range(n):
        if a in override:
            s, e = override[a]
        else:
            s = pool_start + index[a] * sub_size
            e = s + sub_size
        sub_start[a] = s
        sub_end[a] = e
        sub_str[a] = _cidr(s, e, bits, fmt, cidr_cache)
        own_ts[a] = [sub_str[a]]

    # ---- topology: adjacency (None = full mesh) and per-node region
    region = [None] * n
    adj = None
    if topology == "hub_spoke":
        adj = _hub_spoke_adjacency(names, hv_list, is_hub, pos_of)
    elif topology == "partial_mesh":
        adj = _partial_mesh_adjacency(names, hv_list, is_hub, pos_of, region)
    for a, host in enumerate(names):
        if topology == "partial_mesh":
            continue
        r = hv_list[a].get("ikemesh_region")
        region[a] = None if r is None else _as_str(host, "ikemesh_region", r)
    # extra/excluded peers must name known nodes even where they are not used
    if topology != "partial_mesh":
        for a, host in enumerate(names):
            for field in ("ikemesh_extra_peers", "ikemesh_excluded_peers"):
                value = hv_list[a].get(field)
                if value is not None:
                    for peer in _as_name_list(host, field, value):
                        if peer not in pos_of:
                            raise PlanError(
                                host, field, f"{peer!r} is not a mesh node (not in ikemesh_nodes)"
                            )

    # ---- nodes behind NAT: they initiate every SA they have, so two of them never peer directly
    natted = [a for a in range(n) if nat[a]]
    if len(natted) >= 2:
        if adj is None:
            raise PlanError(
                names[natted[1]],
                "ikemesh_behind_nat",
                f"{names[natted[0]]} and {names[natted[1]]} are both behind NAT, so neither can reach the "
                "other, and a full_mesh has no node that relays between them; use ikemesh_topology "
                "hub_spoke or partial_mesh with a hub that is not behind NAT",
            )
        for a in natted:
            for b in sorted(adj[a]):
                if b < a or not nat[b]:
                    continue
                if is_hub[a] and is_hub[b]:
                    raise PlanError(
                        names[b],
                        "ikemesh_behind_nat",
                        f"hubs {names[a]} and {names[b]} are both behind NAT and cannot reach each other, "
                        "but hubs must stay fully meshed; at most one hub may be behind NAT",
                    )
                # the pair talks through a hub, as if it were in ikemesh_excluded_peers
                adj[a] = set(adj[a])
                adj[a].discard(b)
                adj[b] = set(adj[b])
                adj[b].discard(a)
        for a in natted:
            if not is_hub[a] and not any(is_hub[b] for b in adj[a]):
                raise PlanError(
                    names[a],
                    "ikemesh_behind_nat",
                    "the node is behind NAT and so are all of its hubs, so it has no tunnel to any hub; "
                    "give it a hub that is not behind NAT (ikemesh_spoke_hubs, or a hub in its region)",
                )

    # ---- traffic selectors for policy mode through hubs
    via_hub = {}  # (non-hub v, hub h) -> remote_ts of v on its SA with h (== local_ts of h)
    hub_pair = {}  # (hub h1, hub h2) -> remote_ts of h1 on its SA with h2
    if tunnel_mode == "policy" and adj is not None:
        # Complemented selector sets are taken within the smallest CIDR block holding all node subnets.
        lo, hi = min(sub_start), max(sub_end)
        span = 1 << (bits - pool.prefixlen)
        while span > 1 and (lo // (span >> 1)) == ((hi - 1) // (span >> 1)):
            span >>= 1
        ts_start = lo // span * span
        _hub_selectors(
            n,
            names,
            is_hub,
            adj,
            index,
            region,
            sub_start,
            sub_end,
            ts_start,
            ts_start + span,
            bits,
            fmt,
            cidr_cache,
            via_hub,
            hub_pair,
        )
    vti_nodes = [host for host in names if node_mode.get(host) == "vti"]
    if vti_nodes and uversion != version:
        # ip_vti carries IPv4 in IPv4 and ip6_vti IPv6 in IPv6; XFRM interfaces carry any mix.
        raise PlanError(
            vti_nodes[0],
            "ikemesh_tunnel_mode",
            f"vti carries IPv{version} overlays only over an IPv{version} underlay (the underlay is "
            f"IPv{uversion}); use ikemesh_tunnel_mode: xfrm",
        )
    # Route-based SAs carry whatever the routes send into the tunnel interface, of both families.
    any_ts = ["0.0.0.0/0", "::/0"]
    if tunnel_mode == "vxlan":
        # VXLAN runs between the nodes' overlay addresses: each has a local address on its node, so
        # libipsec can route it, and it never collides with the IKE peer (underlay) address.
        host_len = 32 if version == 4 else 128
        own_ts = [[f"{fmt(sub_start[a] + 1)}/{host_len}"] for a in range(n)]

    # ---- MTU
    mtu_cache = {}
    node_mtu = [None] * n
    for a in range(n):
        m = umtu[a]
        # NAT-T puts ESP in UDP on every SA of a node behind NAT and on its peers' SAs with it
        encap = backend == "libipsec" or (
            bool(natted) and (nat[a] or any(nat[b] for b in (range(n) if adj is None else adj[a])))
        )
        if (m, encap) not in mtu_cache:
            try:
                mtu = tunnel_mtu(
                    m,
                    underlay_ip_version=uversion,
                    overlay_ip_version=version,
                    cipher="aes-gcm",
                    mode="tunnel",
                    udp_encap=encap,
                    extra_encap=_VXLAN_OVERHEAD[version] if tunnel_mode == "vxlan" else 0,
                    max_mtu=_LIBIPSEC_MTU if backend == "libipsec" else None,
                )
            except ValueError as exc:
                raise PlanError(names[a], "ikemesh_underlay_mtu", str(exc)) from None
            mtu_cache[m, encap] = (mtu, tcp_mss(mtu, version))
        node_mtu[a] = mtu_cache[m, encap]

    # ---- output
    base = []
    for a in range(n):
        base.append(
            {
                "name": names[a],
                "identity": identity[a],
                "underlay_address": underlay[a],
                "overlay_subnet": sub_str[a],
                "overlay_address": fmt(sub_start[a] + 1),
                "asn": asn_base + index[a],
                "is_hub": is_hub[a],
                "if_id": index[a] + 1,
                "behind_nat": nat[a],
            }
        )
    forwarding = topology != "full_mesh"
    pending = [[] for _index in range(n)] if route_based else None  # link strings, lower -> higher position

    def link_pair(k):
        x = link_start + 2 * k
        if version == 4:  # x is even: the odd address differs only in the last octet
            head = f"{x >> 24}.{x >> 16 & 255}.{x >> 8 & 255}."
            return f"{head}{x & 255}/31", f"{head}{(x & 255) + 1}/31"
        return f"{fmt(x)}/{link_len}", f"{fmt(x + 1)}/{link_len}"

    hub_spoke = topology == "hub_spoke"
    out_nodes = {}
    for a in range(n):
        peers = []
        ia = index[a]
        own = own_ts[a]
        hub_a = is_hub[a]
        mode_a = node_mode.get(names[a], tunnel_mode)
        steered = mode_a == "xfrm"  # its links are pointed at an SA (receive link, idle id)
        order = range(n) if adj is None else sorted(adj[a])
        if route_based:
            mine = pending[a]
            pending[a] = None
            taken = 0
        for b in order:
            if b == a:
                continue
            ib = index[b]
            # hub_spoke: the spoke initiates to its hubs; otherwise the name sorting first
            # a node behind NAT always initiates (nobody can dial it)
            if nat[a] != nat[b]:
                initiator = nat[a]
            else:
                initiator = (not hub_a) if hub_spoke and hub_a != is_hub[b] else a < b
            if route_based:
                if b > a:
                    k = ib * (ib - 1) // 2 + ia if ia < ib else ia * (ia - 1) // 2 + ib
                    if k >= link_capacity:
                        raise PlanError(
                            names[a],
                            "ikemesh_link_pool",
                            f"the link pool {link_pool.with_prefixlen} has {link_capacity} point-to-point "
                            f"links but the pair {names[a]}/{names[b]} (indices {ia}/{ib}) needs link "
                            f"number {k}; use a larger ikemesh_link_pool",
                        )
                    even, odd = link_pair(k)
                    if ia < ib:
                        link_address, link_peer = even, odd
                    else:
                        link_address, link_peer = odd, even
                    pending[b].append((link_peer, link_address, k))
                else:  # computed when the lower position was planned, in this very order
                    link_address, link_peer, k = mine[taken]
                    taken += 1
                if tunnel_mode == "vxlan":
                    local, remote = own, own_ts[b]
                else:
                    local = remote = any_ts
            else:
                link_address = link_peer = k = None
                if adj is None or hub_a == is_hub[b] and not hub_a:
                    local, remote = own, own_ts[b]
                elif hub_a and is_hub[b]:
                    local, remote = hub_pair[b, a], hub_pair[a, b]
                elif hub_a:
                    local, remote = via_hub[b, a], own_ts[b]
                else:
                    local, remote = own, via_hub[a, b]
            entry = base[b].copy()
            entry["initiator"] = initiator
            entry["link"] = f"{LINK_PREFIX}{entry['if_id']}" if route_based else None
            entry["reqid"] = _REQID_BASE + entry["if_id"]
            entry["receive_link"] = f"{entry['link']}r" if steered else None
            entry["receive_if_id"] = _RECEIVE_IF_ID_BASE + entry["if_id"] if steered else None
            entry["idle_if_id"] = _IDLE_IF_ID_BASE + entry["if_id"] if steered else None
            entry["link_address"] = link_address
            entry["link_peer_address"] = link_peer
            # VXLAN network identifier of the pair's link (the link number + 1; 0 is not a VNI)
            entry["vni"] = k + 1 if tunnel_mode == "vxlan" else None
            entry["local_ts"] = local
            entry["remote_ts"] = remote
            peers.append(entry)
        node = base[a].copy()
        del node["if_id"]
        node["index"] = ia
        node["tunnel_mode"] = mode_a
        node["region"] = region[a]
        node["forwards"] = forwarding and hub_a
        node["underlay_mtu"] = umtu[a]
        node["mtu"], node["mss"] = node_mtu[a]
        node["peers"] = peers
        out_nodes[names[a]] = node

    return {
        "topology": topology,
        "tunnel_mode": tunnel_mode,
        "ipsec_backend": backend,
        "overlay_pool": pool.with_prefixlen,
        "overlay_prefix": prefix,
        "link_pool": link_pool.with_prefixlen,
        "link_prefix": LINK_PREFIX,
        "ip_version": version,
        "underlay_ip_version": uversion,
        "ledger": {host: index[pos_of[host]] for host in names},
        "nodes": {host: out_nodes[host] for host in names_in},
    }


def _cidr(start, end, bits, fmt, cache=None):
    out = []
    _range_cidrs(start, end, bits, fmt, {} if cache is None else cache, out)
    return out[0] if len(out) == 1 else ", ".join(out)


# --------------------------------------------------------------------------------------------------
# topologies


def _names_to_positions(host, field, value, pos_of):
    out = []
    for peer in _as_name_list(host, field, value):
        b = pos_of.get(peer)
        if b is None:
            raise PlanError(host, field, f"{peer!r} is not a mesh node (not in ikemesh_nodes)")
        out.append(b)
    return out


def _hub_spoke_adjacency(names, hv_list, is_hub, pos_of):
    n = len(names)
    hubs = [a for a in range(n) if is_hub[a]]
    adj = [None] * n
    for h in hubs:
        adj[h] = set(hubs)
        adj[h].discard(h)
    all_hubs = frozenset(hubs)
    for a in range(n):
        if is_hub[a]:
            continue
        value = hv_list[a].get("ikemesh_spoke_hubs")
        if value is None:
            mine = all_hubs
        else:
            chosen = _names_to_positions(names[a], "ikemesh_spoke_hubs", value, pos_of)
            for h in chosen:
                if not is_hub[h]:
                    raise PlanError(
                        names[a],
                        "ikemesh_spoke_hubs",
                        f"{names[h]!r} is not a hub (not in the group ikemesh_hubs)",
                    )
            if not chosen:
                raise PlanError(names[a], "ikemesh_spoke_hubs", "must name at least one hub")
            mine = frozenset(chosen)
        adj[a] = mine
        for h in mine:
            adj[h].add(a)
    return adj


def _partial_mesh_adjacency(names, hv_list, is_hub, pos_of, region):
    n = len(names)
    members = {}
    for a, host in enumerate(names):
        r = hv_list[a].get("ikemesh_region")
        if r is None:
            raise PlanError(host, "ikemesh_region", "topology partial_mesh needs a region for every node")
        r = region[a] = _as_str(host, "ikemesh_region", r)
        members.setdefault(r, []).append(a)
    for r, group in members.items():
        if not any(is_hub[a] for a in group):
            raise PlanError(
                names[group[0]],
                "ikemesh_region",
                f"region {r!r} (hosts {', '.join(names[a] for a in group[:5])}"
                f"{', ...' if len(group) > 5 else ''}) has no hub; add one of its hosts to ikemesh_hubs",
            )
    hubs = [a for a in range(n) if is_hub[a]]
    adj = [None] * n
    for a in range(n):
        s = set(members[region[a]])
        if is_hub[a]:
            s.update(hubs)
        s.discard(a)
        adj[a] = s
    for a, host in enumerate(names):
        value = hv_list[a].get("ikemesh_extra_peers")
        if value is None:
            continue
        for b in _names_to_positions(host, "ikemesh_extra_peers", value, pos_of):
            if b == a:
                raise PlanError(host, "ikemesh_extra_peers", "names the host itself")
            adj[a].add(b)
            adj[b].add(a)
    for a, host in enumerate(names):
        value = hv_list[a].get("ikemesh_excluded_peers")
        if value is None:
            continue
        for b in _names_to_positions(host, "ikemesh_excluded_peers", value, pos_of):
            if b == a:
                raise PlanError(host, "ikemesh_excluded_peers", "names the host itself")
            if is_hub[a] and is_hub[b]:
                raise PlanError(
                    host,
                    "ikemesh_excluded_peers",
                    f"{names[b]!r}: hubs must stay fully meshed (traffic between regions transits them)",
                )
            adj[a].discard(b)
            adj[b].discard(a)
    for a, host in enumerate(names):
        if not is_hub[a] and not any(is_hub[b] for b in adj[a]):
            raise PlanError(
                host,
                "ikemesh_excluded_peers",
                "the node has no tunnel to any hub left, so it cannot reach nodes of other regions; "
                "keep at least one hub of its region",
            )
    return adj


def _hub_selectors(
    n,
    names,
    is_hub,
    adj,
    index,
    region,
    sub_start,
    sub_end,
    pool_start,
    pool_end,
    bits,
    fmt,
    cache,
    via_hub,
    hub_pair,
):
    """Fill via_hub[(v, h)] and hub_pair[(h1, h2)] with remote selectors (see the module docstring)."""
    hubs = [a for a in range(n) if is_hub[a]]
    all_hubs = frozenset(hubs)
    hs = [None] * n
    primary = [None] * n
    groups = {}
    prim_of = {h: [] for h in hubs}
    for v in range(n):
        if is_hub[v]:
            continue
        mine = all_hubs.intersection(adj[v])
        hs[v] = mine
        cands = sorted(h for h in mine if region[h] == region[v]) or sorted(mine)
        p = cands[index[v] % len(cands)]
        primary[v] = p
        prim_of[p].append(v)
        groups.setdefault(mine, []).append(v)

    def cidrs_of_positions(positions):
        ivs = sorted((sub_start[x], sub_end[x]) for x in positions)
        out = []
        cur_s = cur_e = None
        for s, e in ivs:
            if cur_e == s:
                cur_e = e
                continue
            if cur_s is not None:
                _range_cidrs(cur_s, cur_e, bits, fmt, cache, out)
            cur_s, cur_e = s, e
        if cur_s is not None:
            _range_cidrs(cur_s, cur_e, bits, fmt, cache, out)
        return out

    # hub <-> hub: what h1 sends to h2 = h2 plus the non-hubs whose primary is h2 and that h1 has no SA with
    for h1 in hubs:
        adj1 = adj[h1]
        for h2 in adj1:
            if is_hub[h2]:
                hub_pair[h1, h2] = cidrs_of_positions([h2] + [d for d in prim_of[h2] if d not in adj1])

    qcache = {}
    for v in range(n):
        if is_hub[v]:
            continue
        hsv = hs[v]
        adj_v = adj[v]
        for h in hsv:
            prim = h == primary[v]
            key = (hsv, h, prim)
            cq = qcache.get(key)
            if cq is None:
                cq = qcache[key] = _q_entry(hsv, h, prim, groups, all_hubs)
            qset, qlen, structs = cq
            rm = [x for x in adj_v if x != h and x in qset]
            if v in qset:
                rm.append(v)
            # few members: list them; many: the enclosing block minus the non-members
            explicit = (qlen - len(rm)) * 2 <= n
            struct = structs.get(explicit)
            if struct is None:
                struct = structs[explicit] = _free_intervals(
                    n, qset, explicit, sub_start, sub_end, pool_start, pool_end, bits, fmt, cache
                )
            fstarts, fends, flat, offs = struct
            # cut the removed subnets (all inside the cached intervals) out of the cached CIDR lists
            out = []
            last = 0
            cur_j = -1
            cur_pos = 0
            for s, e in sorted((sub_start[x], sub_end[x]) for x in rm):
                j = bisect_right(fstarts, s) - 1
                if j != cur_j:
                    if cur_j >= 0:
                        _range_cidrs(cur_pos, fends[cur_j], bits, fmt, cache, out)
                    out += flat[last : offs[j]]
                    cur_j = j
                    cur_pos = fstarts[j]
                    last = offs[j + 1]
                _range_cidrs(cur_pos, s, bits, fmt, cache, out)
                cur_pos = e
            if cur_j >= 0:
                _range_cidrs(cur_pos, fends[cur_j], bits, fmt, cache, out)
            out += flat[last:]
            via_hub[v, h] = out


def _q_entry(hsv, h, prim, groups, all_hubs):
    """Destinations a non-hub with hub set hsv may send through hub h (before removing its direct peers).

    Returns (set, size, {}) - the dict caches _free_intervals() results.
    """
    qset = {h}
    for sig, members in groups.items():
        if h in sig or (prim and not (sig & hsv)):
            qset.update(members)
    if prim:
        qset.update(all_hubs - hsv)
    return qset, len(qset), {}


def _free_intervals(n, qset, explicit, sub_start, sub_end, span_start, span_end, bits, fmt, cache):
    """Integer intervals covering the subnets of qset, with their CIDRs flattened.

    explicit: the merged subnets of the members only; otherwise the block [span_start, span_end) minus
    the subnets of all non-members.  Returns (starts, ends, flat CIDR list, offsets into flat, one more
    than intervals).
    """
    if explicit:
        ivs = sorted((sub_start[x], sub_end[x]) for x in qset)
        merged = []
        for s, e in ivs:
            if merged and merged[-1][1] == s:
                merged[-1][1] = e
            else:
                merged.append([s, e])
    else:
        merged = []
        pos = span_start
        blocked = sorted((sub_start[x], sub_end[x]) for x in range(n) if x not in qset)
        for s, e in blocked + [(span_end, span_end)]:
            if s > pos:
                merged.append([pos, s])
            pos = max(pos, e)
    starts, ends, flat, offs = [], [], [], [0]
    for s, e in merged:
        starts.append(s)
        ends.append(e)
        _range_cidrs(s, e, bits, fmt, cache, flat)
        offs.append(len(flat))
    return starts, ends, flat, offs
