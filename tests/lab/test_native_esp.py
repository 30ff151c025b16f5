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
                    # route-based: the SA belongs to the peer's tunnel interfaces (xfrm: inbound SAs
                    # carry the receive link's id, each outbound SA its own id, for the link to be
                    # pointed at; vti: the mark on the outbound SA, the VTI's key)
                    mode, outbound = node["tunnel_mode"], src == node["underlay_address"]
                    if mode == "xfrm" and not outbound:
                        assert state["if_id"] == peer["receive_if_id"], f"{name}: {src} -> {dst}: {state}"
                    elif mode == "xfrm":
                        assert state["if_id"] not in (None, peer["receive_if_id"]), f"{name}: {state}"
                    elif mode == "vti" and outbound:
                        assert state["mark"] == peer["if_id"], f"{name}: {src} -> {dst}: mark {state}"


def test_tunnel_links_are_the_node_s_interface_kind(lab_plan, lab_host):
    """xfrm: an XFRM interface that sends on one of the peer's live outbound SAs and one that receives
    with the peer's inbound SAs' id; vti: a VTI whose key is the if_id (one mesh may mix both)."""
    if lab_plan["ipsec_backend"] == "libipsec" or lab_plan["tunnel_mode"] == "policy":
        pytest.skip("no kernel tunnel interfaces: libipsec backend or policy mode")
    for name in sorted(lab_plan["nodes"]):
        node = lab_plan["nodes"][name]
        host = lab_host(name)
        states = _xfrm_states(host.check_output("ip xfrm state"))
        for peer in node["peers"]:
            details = host.check_output("ip -d -o link show %s", peer["link"])
            if node["tunnel_mode"] == "xfrm":
                sending = _hex_field(r" xfrm if_id (0x[0-9a-f]+) ", details)
                outbound = [
                    s["if_id"]
                    for s in states
                    if (s["src"], s["dst"]) == (node["underlay_address"], peer["underlay_address"])
                ]
                assert sending in outbound, f"{name}: {peer['link']} sends on {sending}, SAs {outbound}"
                receiving = host.check_output("ip -d -o link show %s", peer["receive_link"])
                assert f"xfrm if_id {peer['receive_if_id']:#x} " in receiving, f"{name}: {receiving}"
            else:
                key = ".".join(str(peer["if_id"] >> shift & 255) for shift in (24, 16, 8, 0))
                expected = f"vti remote {peer['underlay_address']} local {node['underlay_address']} "
                assert expected in details and f"ikey {key} okey {key} " in details, f"{name}: {details}"
