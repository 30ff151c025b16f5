"""The mesh firewall and MSS clamping (roles firewall), proven on the live nodes.

- our table lists exactly the peers' underlay addresses; IKE (UDP 500) from a non-peer source and,
  where no SA uses it, raw ESP are dropped (the drop counters move by what the test sent);
- the host's own table (loaded by molecule/resources/prepare.yml before converge) is intact after
  converge and the idempotence rerun;
- a TCP connection from a host behind one node (a network namespace inside the node) to a host behind
  a peer carries the clamped MSS when it arrives; in policy mode the test also shows that a 5 MB
  transfer completes with the clamp while ICMP "fragmentation needed" is dropped, and black-holes
  without the clamp (the clamp is removed and restored by reloading the firewall unit).
"""

import ipaddress
import json
import re
import time

import pytest

TABLE = "ikemesh"
NETNS = "ikemesh-t"
VETH = "ikmsh0"  # not "ikm<digits>": ikemesh-tunnels deletes those it does not know
PAYLOAD = 5 * 1024 * 1024

SPOOF = r"""
import socket, struct, sys
src, dst, proto, port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if proto == 17:
    body = struct.pack("!HHHH", 40000, port, 8 + 16, 0) + b"ikemesh-fw-test!"
else:
    body = struct.pack("!II", 0x4d455348, 1) + b"\0" * 16
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0, 64, proto, 0,
                  socket.inet_aton(src), socket.inet_aton(dst))
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for _ in range(5):
    s.sendto(hdr + body, (dst, 0))
"""

SERVER = r"""
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
srv = socket.socket(family, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(1)
conn, _ = srv.accept()
total = 0
while True:
    data = conn.recv(65536)
    if not data:
        break
    total += len(data)
conn.sendall(str(total).encode())
conn.close()
"""

CLIENT = r"""
import socket, sys, time
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
size, timeout = int(sys.argv[3]), float(sys.argv[4])
start = time.time()
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(timeout)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"x" * size)
    s.shutdown(socket.SHUT_WR)
    print("ok", s.recv(64).decode() or "0", round(time.time() - start, 2))
except OSError as exc:
    print("failed", type(exc).__name__, round(time.time() - start, 2))
"""


def _nodes(plan):
    return sorted(plan["nodes"])


def _rules(host, chain):
    data = json.loads(host.check_output(f"nft -j list chain inet {TABLE} {chain}"))
    return [item["rule"] for item in data["nftables"] if "rule" in item]


def _counter(host, chain, comment):
    for rule in _rules(host, chain):
        if rule.get("comment") == comment:
            for expr in rule["expr"]:
                if "counter" in expr:
                    return expr["counter"]["packets"]
    raise AssertionError(f"no rule with comment {comment!r} in chain {chain}")


def _addresses(elements):
    """Addresses covered by nft JSON set elements (auto-merge turns neighbours into prefixes/ranges)."""
    out = set()
    for e in elements:
        if isinstance(e, str):
            out.add(e)
        elif "prefix" in e:
            net = ipaddress.ip_network(f"{e['prefix']['addr']}/{e['prefix']['len']}")
            out |= {str(a) for a in net}
        elif "range" in e:
            low, high = (ipaddress.ip_address(x) for x in e["range"])
            out |= {str(low + i) for i in range(int(high) - int(low) + 1)}
    return out


def test_table_lists_the_peers_underlay_addresses(lab_plan, lab_host):
    for name in _nodes(lab_plan):
        node = lab_plan["nodes"][name]
        data = json.loads(lab_host(name).check_output(f"nft -j list set inet {TABLE} ike_peers"))
        elements = next(item["set"] for item in data["nftables"] if "set" in item).get("elem", [])
        listed = _addresses(elements)
        planned = {p["underlay_address"] for p in node["peers"] if not p.get("behind_nat")}
        assert planned <= listed, f"{name}: peers {planned - listed} missing from ike_peers"
        assert listed <= planned, f"{name}: non-peers {listed - planned} in ike_peers"
        esp = json.loads(lab_host(name).check_output(f"nft -j list set inet {TABLE} esp_peers"))
        esp_elements = next(item["set"] for item in esp["nftables"] if "set" in item).get("elem", [])
        if lab_plan["ipsec_backend"] == "libipsec":
            assert esp_elements == [], f"{name}: libipsec encapsulates all ESP, yet ESP is allowed"


def test_ike_and_esp_from_a_non_peer_are_dropped(lab_plan, lab_host):
    """Node b sends 5 IKE packets to node a from a spoofed non-peer source (and 5 raw ESP packets on
    libipsec, where no SA uses protocol 50): a's drop counters grow by at least that much."""
    if lab_plan["underlay_ip_version"] != 4:
        pytest.skip("the spoofing probe builds IPv4 headers; the lab underlays are IPv4")
    nodes = lab_plan["nodes"]
    for name in _nodes(lab_plan):
        if any(p.get("behind_nat") for p in nodes[name]["peers"]):
            # a peer behind NAT comes from an unknown address: IKE/NAT-T is open to any source there
            inp = lab_host(name).check_output(f"nft list chain inet {TABLE} input")
            assert "a peer is behind NAT" in inp and "IKE/NAT-T from non-peers" not in inp, inp
    candidates = [
        n
        for n in _nodes(lab_plan)
        if not nodes[n].get("behind_nat") and not any(p.get("behind_nat") for p in nodes[n]["peers"])
    ]
    assert candidates, "no node without NAT on its SAs to probe"
    a = candidates[0]
    node = nodes[a]
    b = node["peers"][0]["name"]
    taken = {n["underlay_address"] for n in lab_plan["nodes"].values()}
    net = ipaddress.ip_network(node["underlay_address"] + "/24", strict=False)
    stranger = next(str(h) for h in reversed(list(net.hosts())) if str(h) not in taken)
    host_a, host_b = lab_host(a), lab_host(b)
    ike_before = _counter(host_a, "input", "IKE/NAT-T from non-peers")
    host_b.check_output("python3 -c %s %s %s 17 500", SPOOF, stranger, node["underlay_address"])
    if lab_plan["ipsec_backend"] == "libipsec":
        esp_before = _counter(host_a, "input", "ESP from non-peers or UDP-encapsulated peers")
        own_b = lab_plan["nodes"][b]["underlay_address"]
        host_b.check_output("python3 -c %s %s %s 50 0", SPOOF, own_b, node["underlay_address"])
    deadline = time.time() + 5
    while _counter(host_a, "input", "IKE/NAT-T from non-peers") < ike_before + 5 and time.time() < deadline:
        time.sleep(0.2)
    assert _counter(host_a, "input", "IKE/NAT-T from non-peers") >= ike_before + 5
    if lab_plan["ipsec_backend"] == "libipsec":
        assert _counter(host_a, "input", "ESP from non-peers or UDP-encapsulated peers") >= esp_before + 5
    # and the peers' traffic is accepted: the live SAs (NAT-T/libipsec ESP in UDP 4500, or native ESP
    # with BGP keepalives and DPD) cross the accept rules all the time
    accepted = _counter(host_a, "input", "IKE/NAT-T from peers") + _counter(host_a, "input", "ESP from peers")
    assert accepted > 0


def test_the_hosts_own_table_survives(lab_plan, lab_host):
    """molecule/resources/prepare.yml loaded `table inet hostfw` before converge."""
    for name in _nodes(lab_plan):
        host = lab_host(name)
        text = host.check_output("nft list table inet hostfw")
        assert "tcp dport 22 counter packets" in text and "host rule, must survive ikemesh" in text, (
            f"{name}: the host's own table lost its rule:\n{text}"
        )
        # our table is there beside it
        assert host.run(f"nft list table inet {TABLE}").rc == 0


# ---- hosts behind nodes: a network namespace per node, in the node's overlay subnet


def _behind_address(node):
    subnet = ipaddress.ip_network(node["overlay_subnet"])
    offset = 200 if subnet.num_addresses > 256 or subnet.prefixlen <= 24 else subnet.num_addresses - 2
    return str(subnet.network_address + offset)


@pytest.fixture(scope="module")
def behind(lab_plan, lab_host):
    """(a, b, address behind a, address behind b): a network namespace behind a and one behind its
    first peer b, routed by the nodes; removed afterwards (forwarding restored where it was off)."""
    a = _nodes(lab_plan)[0]
    b = lab_plan["nodes"][a]["peers"][0]["name"]
    made, forwarding = [], {}
    key = "net.ipv4.ip_forward" if lab_plan["ip_version"] == 4 else "net.ipv6.conf.all.forwarding"
    addresses = {}
    try:
        for name in (a, b):
            node, host = lab_plan["nodes"][name], lab_host(name)
            address = _behind_address(node)
            addresses[name] = address
            plen = "32" if lab_plan["ip_version"] == 4 else "128"
            host.run(f"ip netns del {NETNS}; ip link del {VETH}")
            made.append(name)
            host.check_output(
                f"ip netns add {NETNS} && ip link add {VETH} type veth peer name eth0 netns {NETNS}"
                f" && ip link set {VETH} up && ip route replace {address}/{plen} dev {VETH}"
                f" && ip -n {NETNS} link set lo up && ip -n {NETNS} link set eth0 up"
                f" && ip -n {NETNS} address add {address}/{plen} dev eth0"
                f" && ip -n {NETNS} route add {node['overlay_address']} dev eth0"
                f" && ip -n {NETNS} route add default via {node['overlay_address']}"
            )
            if host.check_output(f"sysctl -n {key}").strip() != "1":
                forwarding[name] = host.check_output(f"sysctl -n {key}").strip()
                host.check_output(f"sysctl -w {key}=1")
        yield a, b, addresses[a], addresses[b]
    finally:
        for name in made:
            lab_host(name).run(f"ip netns del {NETNS}; ip link del {VETH}")
        for name, value in forwarding.items():
            lab_host(name).run(f"sysctl -w {key}={value}")


def _transfer(lab_host, a, b, address_b, port, size, timeout):
    """Start a receiver behind b, send size bytes from behind a; return the client's one-line result."""
    host_a, host_b = lab_host(a), lab_host(b)
    host_b.check_output(
        f"ip netns exec {NETNS} setsid -f timeout {int(timeout) + 10} python3 -c %s %s %s >/dev/null 2>&1",
        SERVER,
        address_b,
        str(port),
    )
    deadline = time.time() + 10
    while f":{port} " not in host_b.check_output(f"ip netns exec {NETNS} ss -Htln"):
        assert time.time() < deadline, "receiver did not start"
        time.sleep(0.2)
    out = host_a.check_output(
        f"ip netns exec {NETNS} python3 -c %s %s %s %s %s",
        CLIENT,
        address_b,
        str(port),
        str(size),
        str(timeout),
    )
    return out.split()


def test_tcp_between_hosts_behind_two_nodes_carries_the_clamped_mss(lab_plan, lab_host, behind):
    a, b, _address_a, address_b = behind
    expected = min(lab_plan["nodes"][a]["mss"], lab_plan["nodes"][b]["mss"])
    host_b = lab_host(b)
    port = 5101
    capture = f"/tmp/{NETNS}-syn.txt"
    host_b.run(f"rm -f {capture}")
    host_b.check_output(
        f"ip netns exec {NETNS} setsid -f timeout 20 tcpdump -l -n -v -c 1 -i eth0 dst port %s > %s 2>&1",
        str(port),
        capture,
    )
    deadline = time.time() + 10
    while "listening on" not in host_b.run(f"cat {capture}").stdout:
        assert time.time() < deadline, "tcpdump did not start"
        time.sleep(0.2)
    result = _transfer(lab_host, a, b, address_b, port, 1000, 10)
    assert result[0] == "ok", f"TCP {a} -> {b} behind the nodes: {result}"
    deadline = time.time() + 10
    while not re.search(r"mss (\d+)", host_b.run(f"cat {capture}").stdout):
        assert time.time() < deadline, host_b.run(f"cat {capture}").stdout
        time.sleep(0.2)
    seen = int(re.search(r"mss (\d+)", host_b.run(f"cat {capture}").stdout).group(1))
    # the host behind a advertised 1460 (its veth MTU is 1500); the nodes clamped it on the way
    assert seen == expected, f"SYN arrived behind {b} with MSS {seen}, planned {expected}"


def test_large_transfer_needs_the_clamp_when_icmp_is_dropped(lab_plan, lab_host, behind):
    """Policy mode (one topology is enough, ~15 s): with ICMP "fragmentation needed" dropped on both
    nodes, as real networks do, 5 MB cross with the clamp and black-hole without it."""
    if lab_plan["tunnel_mode"] != "policy":
        pytest.skip("the black-hole demonstration runs in the policy-mode scenario (molecule default)")
    a, b, _address_a, address_b = behind
    guard = [
        "nft add table inet ikemesh_test_pmtu",
        "nft add chain inet ikemesh_test_pmtu output '{ type filter hook output priority 0; }'",
        "nft add rule inet ikemesh_test_pmtu output icmp type destination-unreachable icmp code frag-needed"
        " counter drop",
        "nft add rule inet ikemesh_test_pmtu output icmpv6 type packet-too-big counter drop",
    ]
    try:
        for name in (a, b):
            lab_host(name).check_output(" && ".join(guard))
        clamped = _transfer(lab_host, a, b, address_b, 5102, PAYLOAD, 20)
        assert clamped[:2] == ["ok", str(PAYLOAD)], f"5 MB with the clamp: {clamped}"
        for name in (a, b):
            for chain in ("mss_out", "mss_in"):
                lab_host(name).check_output(f"nft flush chain inet {TABLE} {chain}")
        unclamped = _transfer(lab_host, a, b, address_b, 5103, PAYLOAD, 8)
        dropped = lab_host(a).check_output("nft list chain inet ikemesh_test_pmtu output")
        assert unclamped[0] == "failed", f"5 MB without the clamp crossed: {unclamped}"
        assert re.search(r"frag-needed counter packets [1-9]", dropped), dropped
    finally:
        for name in (a, b):
            host = lab_host(name)
            host.run("nft delete table inet ikemesh_test_pmtu")
            host.check_output("systemctl reload ikemesh-firewall.service")
            assert "maxseg size set" in host.check_output(f"nft list chain inet {TABLE} mss_out")
