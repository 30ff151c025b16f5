"""Kernel backend only: the SAs are native ESP in the kernel's SAD, not userspace or UDP-encapsulated."""

import re

import pytest

NATIVE_AEADS = ("rfc4106(gcm(aes))", "rfc7539esp(chacha20,poly1305)")


def _hex_field(pattern, block):
    found = re.search(pattern, block, re.M)
    return int(found.group(1), 16) if found else None


def _xfrm_states(text):
    """Parse `ip xfrm state` into dicts (src, dst, proto, mode, aead, encap, if_id, mark), without keys."""
    states = []
    for block in re.split(r"^(?=src )", text, flags=re.M):
        head = re.match(r"src (\S+) dst (\S+)", block)
        if not head:
            continue
        proto = re.search(r"^\s+proto (\S+) spi \S+ reqid \S+ mode (\S+)", block, re.M)
        aead = re.search(r"^\s+aead (\S+) ", block, re.M)
        states.append(
            {
                "src": head.group(1),
                "dst": head.group(2),
                "proto": proto.group(1) if proto else None,
                "mode": proto.group(2) if proto else None,
                "aead": aead.group(1) if aead else None,
                "encap": bool(re.search(r"^\s+encap ", block, re.M)),
                "if_id": _hex_field(r"^\s+if_id (0x[0-9a-f]+)", block),
                "mark": _hex_field(r"^\s+mark (0x[0-9a-f]+)/", block),
            }
        )
    return states


def test_every_peer_pair_has_native_esp_sas_in_the_kernel(lab_plan, lab_host):
    if lab_plan["ipsec_backend"] == "libipsec":
        pytest.skip("libipsec backend: ESP runs in userspace, the kernel's SAD is empty by design")
    for name in sorted(lab_plan["nodes"]):
        node = lab_plan["nodes"][name]
        result = lab_host(name).run("ip xfrm state")
        assert result.rc == 0, result.stderr
        states = _xfrm_states(result.stdout)
        for peer in node["peers"]:
            for src, dst in (
                (node["underlay_address"], peer["underlay_address"]),
                (peer["underlay_address"], node["underlay_address"]),
            ):
                matching = [s for s in states if s["src"] == src and s["dst"] == dst]
                assert matching, f"{name}: no xfrm state {src} -> {dst} (peer {peer['name']}): {states}"
                for state in matching:
                    assert state["proto"] == "esp" and state["mode"] == "tunnel", f"{name}: {state}"
                    assert state["aead"] in NATIVE_AEADS, f"{name}: {src} -> {dst}: {state}"
                    assert not state["encap"], f"{name}: {src} -> {dst} is UDP-encapsulated: {state}"
                    # route-based: the SA belongs to the peer's tunnel interface ikm<if_id> (xfrm:
                    # if_id in both directions; vti: the mark on the outbound SA, the VTI's key)
                    mode = node["tunnel_mode"]
                    if mode == "xfrm" or (mode == "vti" and src == node["underlay_address"]):
                        binding = "if_id" if mode == "xfrm" else "mark"
                        assert state[binding] == peer["if_id"], f"{name}: {src} -> {dst}: {binding} {state}"


def test_tunnel_links_are_the_node_s_interface_kind(lab_plan, lab_host):
    """xfrm: an XFRM interface with the peer's if_id; vti: a VTI whose key is the if_id (one mesh may mix)."""
    if lab_plan["ipsec_backend"] == "libipsec" or lab_plan["tunnel_mode"] == "policy":
        pytest.skip("no kernel tunnel interfaces: libipsec backend or policy mode")
    for name in sorted(lab_plan["nodes"]):
        node = lab_plan["nodes"][name]
        for peer in node["peers"]:
            details = lab_host(name).check_output("ip -d -o link show %s", peer["link"])
            if node["tunnel_mode"] == "xfrm":
                assert f"xfrm if_id {peer['if_id']:#x} " in details, f"{name}: {details}"
            else:
                key = ".".join(str(peer["if_id"] >> shift & 255) for shift in (24, 16, 8, 0))
                expected = f"vti remote {peer['underlay_address']} local {node['underlay_address']} "
                assert expected in details and f"ikey {key} okey {key} " in details, f"{name}: {details}"
