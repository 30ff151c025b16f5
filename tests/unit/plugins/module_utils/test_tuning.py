"""Host and charon tuning (plugins/module_utils/tuning.py)."""

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan
from ansible_collections.ikemesh.mesh.plugins.module_utils.tuning import (
    TuningError,
    charon_tuning,
    node_sysctls,
    parse_probe,
)


def _pow2(x):
    return x > 0 and x & (x - 1) == 0


@pytest.mark.parametrize(
    "peers, threads, size, segments",
    [(0, 16, 1, 1), (1, 17, 2, 2), (2, 17, 4, 4), (4, 18, 8, 8), (40, 36, 128, 32), (999, 128, 2048, 128)],
)
def test_charon_tuning(peers, threads, size, segments):
    expected = {"threads": threads, "ikesa_table_size": size, "ikesa_table_segments": segments}
    assert charon_tuning(peers) == expected


@pytest.mark.parametrize("peers", range(0, 300))
def test_charon_tuning_invariants(peers):
    t = charon_tuning(peers)
    assert _pow2(t["ikesa_table_size"]) and _pow2(t["ikesa_table_segments"])
    assert t["ikesa_table_size"] >= 2 * peers
    assert t["ikesa_table_segments"] <= min(t["ikesa_table_size"], t["threads"])
    assert 16 <= t["threads"] <= 128


@pytest.mark.parametrize("bad", [-1, "3", 2.0, True, None])
def test_charon_tuning_rejects(bad):
    with pytest.raises(TuningError, match="peer_count"):
        charon_tuning(bad)


def plan_of(topology="full_mesh", nat=(), version=4):
    nodes = {}
    for i, name in enumerate(["h1", "s1", "s2"]):
        nodes[name] = {"ikemesh_underlay_address": f"203.0.113.{10 + i}", "ikemesh_topology": topology}
        if version == 6:
            nodes[name]["ikemesh_overlay_pool"] = "fd00:99::/48"
        if name in nat:
            nodes[name]["ikemesh_behind_nat"] = True
    return build_plan(nodes, ["h1"] if topology != "full_mesh" else [], None)


def names(entries):
    return [e["name"] for e in entries]


def test_forwarding_follows_the_plan_and_the_option():
    plan = plan_of("hub_spoke")
    hub = node_sysctls(plan, "h1")
    assert hub[0] == {
        "name": "net.ipv4.ip_forward",
        "value": 1,
        "required": True,
        "why": "hub: relays traffic between the peers it connects",
        "writable": False,
        "current": None,
    }
    assert "net.ipv4.ip_forward" not in names(node_sysctls(plan, "s1"))
    assert "net.ipv4.ip_forward" in names(node_sysctls(plan, "s1", forwarding=True))
    assert "net.ipv4.ip_forward" not in names(node_sysctls(plan, "h1", forwarding=False))
    assert "net.ipv6.conf.all.forwarding" in names(node_sysctls(plan_of("hub_spoke", version=6), "h1"))


def test_buffers_always_conntrack_only_with_nat():
    assert names(node_sysctls(plan_of(), "s1")) == ["net.core.rmem_max", "net.core.wmem_max"]
    plan = plan_of("hub_spoke", nat=("s2",))
    assert "net.netfilter.nf_conntrack_max" in names(node_sysctls(plan, "h1"))  # its peer s2 is NATed
    assert "net.netfilter.nf_conntrack_max" in names(node_sysctls(plan, "s2"))  # behind NAT itself
    assert "net.netfilter.nf_conntrack_max" not in names(node_sysctls(plan, "s1"))  # no NAT on its SAs
    assert not any("rp_filter" in n for n in names(node_sysctls(plan, "h1")))  # owned by role tunnel


def test_sizes_are_only_raised_and_writability_is_read_from_the_probe():
    probe = "net.core.rmem_max rw 33554432\nnet.core.wmem_max ro 212992\n"
    entries = {e["name"]: e for e in node_sysctls(plan_of(), "s1", socket_buffer_max=16777216, live=probe)}
    assert entries["net.core.rmem_max"]["value"] == 33554432  # the host already had more
    assert entries["net.core.rmem_max"]["writable"] is True
    assert entries["net.core.wmem_max"]["value"] == 16777216
    assert entries["net.core.wmem_max"]["writable"] is False
    assert entries["net.core.wmem_max"]["current"] == "212992"


def test_parse_probe():
    assert parse_probe("a.b rw 1\nc.d absent\ne.f ro 4096\t87380\t6291456\n") == {
        "a.b": ("rw", "1"),
        "c.d": ("absent", None),
        "e.f": ("ro", "4096\t87380\t6291456"),
    }
    with pytest.raises(TuningError, match="unexpected probe line"):
        parse_probe("a.b maybe 1")


def test_bad_input():
    with pytest.raises(TuningError, match="host x: not in the plan"):
        node_sysctls(plan_of(), "x")
    with pytest.raises(TuningError, match="socket_buffer_max"):
        node_sysctls(plan_of(), "s1", socket_buffer_max=10)
