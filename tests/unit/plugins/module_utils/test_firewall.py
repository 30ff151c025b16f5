"""Rule generation of the mesh firewall (plugins/module_utils/firewall.py)."""

import os
import shutil
import subprocess

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils.firewall import (
    FirewallError,
    firewall_ruleset,
    tunnel_interfaces,
)
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan


def plan_of(mode="policy", backend="kernel", n=3, nat=(), **extra):
    nodes = {}
    for i in range(1, n + 1):
        name = f"n{i}"
        nodes[name] = {
            "ikemesh_underlay_address": f"203.0.113.{10 + i}",
            "ikemesh_ipsec_backend": backend,
            "ikemesh_tunnel_mode": mode,
            "ikemesh_overlay_pool": "10.98.0.0/16",
            **extra,
        }
        if name in nat:
            nodes[name]["ikemesh_behind_nat"] = True
    topology = extra.get("ikemesh_topology")
    return build_plan(nodes, ["n1"] if topology else [], None)


def chain(text, name):
    start = text.index(f"    chain {name} {{")
    return text[start : text.index("\n    }", start)]


def test_only_our_table_is_replaced_in_one_file():
    text = firewall_ruleset(plan_of(), "n1")
    lines = text.splitlines()
    assert "table inet ikemesh {}" in lines
    assert lines.index("table inet ikemesh {}") < lines.index("delete table inet ikemesh")
    assert "flush ruleset" not in text
    assert [line for line in lines if line.startswith(("table", "delete", "flush"))] == [
        "table inet ikemesh {}",
        "delete table inet ikemesh",
        "table inet ikemesh {",
    ]
    # every base chain leaves the verdict on everything else to the host's rules
    assert text.count("policy accept;") == text.count("type filter hook")
    assert "policy drop" not in text


def test_ike_from_peers_only():
    text = firewall_ruleset(plan_of(), "n1")
    ike = text[text.index("set ike_peers") : text.index("set esp_peers")]
    assert "elements = { 203.0.113.12, 203.0.113.13 }" in ike
    inp = chain(text, "input")
    assert 'udp dport { 500, 4500 } ip saddr @ike_peers counter accept comment "IKE/NAT-T from peers"' in inp
    accept = inp.index("@ike_peers counter accept")
    drop = inp.index("udp dport { 500, 4500 } counter drop")
    assert accept < drop
    # the node itself is not its own peer
    assert "203.0.113.11" not in text


def test_esp_only_for_kernel_backend_without_nat():
    kernel = firewall_ruleset(plan_of(), "n1")
    assert kernel.count("elements = { 203.0.113.12, 203.0.113.13 }") == 2  # ike_peers and esp_peers
    assert "meta l4proto esp ip saddr @esp_peers counter accept" in kernel
    libipsec = firewall_ruleset(plan_of(backend="libipsec"), "n1")
    # libipsec always encapsulates ESP in UDP 4500: protocol 50 is accepted from nobody
    assert libipsec.count("elements =") == 1
    assert "meta l4proto esp counter drop" in libipsec


def test_peer_behind_nat_ike_from_anyone_no_esp_from_it():
    plan = plan_of(mode="policy", backend="kernel", n=3, nat=("n3",), ikemesh_topology="hub_spoke")
    text = firewall_ruleset(plan, "n1")  # the hub: n3 dials in from an unknown address
    inp = chain(text, "input")
    assert "udp dport { 500, 4500 } counter accept" in inp
    assert "udp dport { 500, 4500 } counter drop" not in inp
    esp = text[text.index("set esp_peers") : text.index("chain input")]
    assert "203.0.113.12" in esp and "203.0.113.13" not in esp
    # n3's own (inside) address never shows up as a source: it is not listed as an IKE peer
    ike = text[text.index("set ike_peers") : text.index("set esp_peers")]
    assert "203.0.113.12" in ike and "203.0.113.13" not in ike
    # the node behind NAT itself: all its SAs are encapsulated, no ESP from anyone
    natted = firewall_ruleset(plan, "n3")
    esp = natted[natted.index("set esp_peers") : natted.index("chain input")]
    assert "elements" not in esp


def test_extra_ike_sources_and_bad_input():
    text = firewall_ruleset(plan_of(), "n1", extra_ike_sources=["198.51.100.0/24", "198.51.100.7"])
    assert "198.51.100.0/24" in text and "198.51.100.7" in text
    with pytest.raises(FirewallError, match="2001:db8::1 is IPv6 but the underlay is IPv4"):
        firewall_ruleset(plan_of(), "n1", extra_ike_sources=["2001:db8::1"])
    with pytest.raises(FirewallError, match="not an IP address"):
        firewall_ruleset(plan_of(), "n1", extra_ike_sources=["peer.example"])
    with pytest.raises(FirewallError, match="must be a list"):
        firewall_ruleset(plan_of(), "n1", extra_ike_sources="198.51.100.7")
    with pytest.raises(FirewallError, match="host nope: not in the plan"):
        firewall_ruleset(plan_of(), "nope")
    with pytest.raises(FirewallError, match="table"):
        firewall_ruleset(plan_of(), "n1", table="x; flush ruleset")


@pytest.mark.parametrize(
    "mode, backend, out_match, in_match",
    [
        ("policy", "libipsec", 'oifname "ipsec0"', 'iifname "ipsec0"'),
        ("vxlan", "libipsec", 'oifname { "ikm2", "ikm3" }', 'iifname { "ikm2", "ikm3" }'),
        # xfrm: decrypted packets arrive on the receive links
        ("xfrm", "kernel", 'oifname { "ikm2", "ikm3" }', 'iifname { "ikm2", "ikm2r", "ikm3", "ikm3r" }'),
        ("vti", "kernel", 'oifname { "ikm2", "ikm3" }', 'iifname { "ikm2", "ikm3" }'),
        ("policy", "kernel", "rt ipsec exists", "meta ipsec exists"),
    ],
)
def test_mss_clamp_where_the_tunnel_is(mode, backend, out_match, in_match):
    plan = plan_of(mode=mode, backend=backend)
    mss = plan["nodes"]["n1"]["mss"]
    text = firewall_ruleset(plan, "n1")
    clamp = f"tcp option maxseg size > {mss} counter tcp option maxseg size set {mss}"
    assert f"meta nfproto ipv4 {out_match} {clamp}" in chain(text, "mss_out")
    assert f"meta nfproto ipv4 {in_match} {clamp}" in chain(text, "mss_in")
    # SYN and SYN-ACK, forwarded and locally originated; "in" only where the packet was received
    assert "tcp flags & (syn | rst) == syn jump mss_out" in chain(text, "forward")
    assert "tcp flags & (syn | rst) == syn jump mss_in" in chain(text, "forward")
    assert "jump mss_out" in chain(text, "output") and "mss_in" not in chain(text, "output")
    assert "meta ipsec" not in chain(text, "mss_out")
    off = firewall_ruleset(plan, "n1", mss_clamp=False)
    assert "maxseg" not in off and "chain forward" not in off


def test_mss_values_come_from_the_plan():
    assert firewall_ruleset(plan_of(backend="libipsec"), "n1").count("size set 1360") == 2  # ipsec0: 1400
    assert firewall_ruleset(plan_of(mode="vxlan", backend="libipsec"), "n1").count("size set 1310") == 2
    xfrm = firewall_ruleset(plan_of(mode="xfrm"), "n1")
    assert "ipv4 oifname" in xfrm and "size set 1406" in xfrm and "size set 1386" in xfrm  # v6 over the link


def test_per_peer_mtu_gets_its_own_clamp():
    plan = plan_of(mode="xfrm")
    plan["nodes"]["n1"]["peers"][1]["mtu"] = 1300
    text = chain(firewall_ruleset(plan, "n1"), "mss_out")
    assert 'ipv4 oifname { "ikm2" } tcp option maxseg size > 1406' in text
    assert 'ipv4 oifname { "ikm3" } tcp option maxseg size > 1260' in text


def test_strict_mode():
    assert "strict" not in firewall_ruleset(plan_of(), "n1")
    libipsec = firewall_ruleset(plan_of(backend="libipsec"), "n1", strict=True)
    sin = chain(libipsec, "strict_in")
    assert "meta nfproto != ipv4 return" in sin
    assert "ip saddr != 10.98.0.0/16 return" in sin
    assert "ip saddr 10.98.0.0/24 return" in sin  # hosts behind this node
    assert 'iifname { "ipsec0" } return' in sin
    assert sin.rstrip().endswith('counter drop comment "overlay source outside the tunnels"')
    assert "meta ipsec" not in sin
    sout = chain(libipsec, "strict_out")
    assert 'oifname { "ipsec0" } return' in sout and "rt ipsec" not in sout
    kernel = firewall_ruleset(plan_of(), "n1", strict=True)
    assert "meta ipsec exists return" in chain(kernel, "strict_in")
    assert "rt ipsec exists return" in chain(kernel, "strict_out")
    xfrm = firewall_ruleset(plan_of(mode="xfrm"), "n1", strict=True)
    assert 'iifname { "ikm2", "ikm2r", "ikm3", "ikm3r" } return' in chain(xfrm, "strict_in")


def test_tunnel_interfaces():
    assert tunnel_interfaces(plan_of(backend="libipsec"), "n1") == ["ipsec0"]
    assert tunnel_interfaces(plan_of(), "n1") == []
    assert tunnel_interfaces(plan_of(mode="vxlan", backend="libipsec"), "n2") == ["ikm1", "ikm3", "ipsec0"]
    assert tunnel_interfaces(plan_of(mode="xfrm"), "n1") == ["ikm2", "ikm2r", "ikm3", "ikm3r"]
    assert tunnel_interfaces(plan_of(mode="vti"), "n1") == ["ikm2", "ikm3"]


def _nft_usable():
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "nft", "list", "ruleset"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _nft_usable(), reason="needs root, nft and unshare (a throwaway network namespace)")
@pytest.mark.parametrize(
    "mode, backend", [("policy", "kernel"), ("xfrm", "kernel"), ("vti", "kernel"), ("vxlan", "libipsec")]
)
def test_the_kernel_accepts_the_ruleset_and_a_reload_keeps_foreign_tables(mode, backend):
    """Loaded for real into a throwaway network namespace (not the host's ruleset): twice, beside a
    foreign table, which must survive both loads."""
    text = firewall_ruleset(plan_of(mode=mode, backend=backend), "n1", strict=True)
    script = (
        "set -e\n"
        "nft add table inet host_fw\n"
        "nft add chain inet host_fw input '{ type filter hook input priority 0; }'\n"
        "nft add rule inet host_fw input tcp dport 22 accept\n"
        'nft -f "$1"\nnft -f "$1"\n'
        "nft list ruleset\n"
    )
    path = f"/tmp/ikemesh-test-{os.getpid()}.nft"
    with open(path, "w") as handle:
        handle.write(text)
    try:
        result = subprocess.run(
            ["unshare", "-n", "bash", "-c", script, "nft-test", path], capture_output=True, text=True
        )
    finally:
        os.unlink(path)
    assert result.returncode == 0, result.stderr
    assert "table inet host_fw" in result.stdout and "tcp dport 22 accept" in result.stdout
    assert result.stdout.count("table inet ikemesh {") == 1
