"""Tests for plugins/module_utils/diagnose.py: every cause from realistic facts, a healthy mesh silent."""

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.filter.diagnose import FilterModule
from ansible_collections.ikemesh.mesh.plugins.module_utils.diagnose import (
    clock_offsets,
    diagnose,
    findings_table,
    mesh_summary,
    planned_pairs,
)
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import build_plan

NOW = 1_800_000_000.0
WINDOW = (NOW - 1, NOW + 2)
NODES = ["n1", "n2", "n3"]
IKE = ["aes256gcm16-prfsha384-ecp384", "chacha20poly1305-prfsha384-ecp384", "aes256gcm16-prfsha384-x25519"]
ESP = ["aes256gcm16-ecp384", "chacha20poly1305-ecp384", "aes256gcm16-x25519"]


@pytest.fixture(scope="module")
def plan():
    nodes = {
        n: {"ikemesh_underlay_address": f"203.0.113.1{i + 1}", "ikemesh_ipsec_backend": "libipsec"}
        for i, n in enumerate(NODES)
    }
    return build_plan(nodes, [], {})


def _ike_sa(name, peer, plan, state="ESTABLISHED", child_state="INSTALLED", initiator=True):
    entry = next(p for p in plan["nodes"][name]["peers"] if p["name"] == peer)
    children = []
    if child_state:
        children.append(
            {
                "name": peer,
                "state": child_state,
                "mode": "TUNNEL",
                "protocol": "ESP",
                "encap": True,
                "local_ts": entry["local_ts"],
                "remote_ts": entry["remote_ts"],
                "bytes_in": 840,
                "bytes_out": 840,
                "packets_in": 10,
                "packets_out": 10,
            }
        )
    return {
        "uniqueid": 1,
        "state": state,
        "local_host": plan["nodes"][name]["underlay_address"],
        "remote_host": entry["underlay_address"],
        "local_port": 4500,
        "remote_port": 4500,
        "initiator": initiator,
        "nat_local": False,
        "nat_remote": False,
        "established": 100,
        "child_sas": children,
    }


def _connection(name, peer, plan, **ike):
    entry = next(p for p in plan["nodes"][name]["peers"] if p["name"] == peer)
    return {
        "loaded": True,
        "local_addrs": [plan["nodes"][name]["underlay_address"]],
        "remote_addrs": [entry["underlay_address"]],
        "children": [peer],
        "child_configs": {
            peer: {
                "mode": "TUNNEL",
                "local_ts": list(entry["local_ts"]),
                "remote_ts": list(entry["remote_ts"]),
            }
        },
        "ike_sas": [_ike_sa(name, peer, plan, **ike)] if ike.get("state", "ESTABLISHED") else [],
    }


def _healthy(plan):
    facts = {}
    for name in NODES:
        node = plan["nodes"][name]
        peers = [p["name"] for p in node["peers"]]
        facts[name] = {
            "status": {
                "changed": False,
                "connections": {p: _connection(name, p, plan) for p in peers},
                "sa_count": {"ike_established": 2, "child_installed": 2},
            },
            "probes": [f"reach {p['overlay_address']} ok" for p in node["peers"]]
            + [f"mtu {p} ok blocked" for p in peers],
            "node": {
                "time": NOW + 0.5,
                "cert": {
                    "subject": f"CN={name}",
                    "issuer": "CN=ikemesh intermediate CA",
                    "serial": "1f2e3d",
                    "not_before": NOW - 86400,
                    "not_after": NOW + 29 * 86400,
                    "chain_ok": True,
                    "chain_error": "",
                },
                # Errors from the initial deployment (peers configured later) must not count.
                "log": [f"<{peers[0]}|1> received NO_PROPOSAL_CHOSEN notify error"]
                + [
                    f"<{p}|2> CHILD_SA {p}{{1}} established with SPIs c3a1f2e4_i cb0e2f71_o and TS "
                    f"{plan['nodes'][name]['overlay_subnet']} === {plan['nodes'][p]['overlay_subnet']}"
                    for p in peers
                ],
                "proposals": {p: {"ike": list(IKE), "esp": list(ESP)} for p in peers},
                "underlay_interface": "eth0",
                "underlay_mtu": 1500,
                "routes": {p: {"ok": True, "dev": "ipsec0", "error": ""} for p in peers},
                "udp": {p: {"500": True, "4500": True} for p in peers},
            },
            "bgp": None,
        }
    return facts


def _take_down(facts, plan, a, b, **ike):
    """Make the SAs between a and b not up on both sides."""
    ike = ike or {"state": "CONNECTING", "child_state": None}
    facts[a]["status"]["connections"][b] = _connection(a, b, plan, **ike)
    facts[b]["status"]["connections"][a] = _connection(b, a, plan, state=None)


def _causes(findings):
    return sorted({(f["pair"], f["cause"]) for f in findings})


def test_planned_pairs(plan):
    assert planned_pairs(plan) == [("n1", "n2"), ("n1", "n3"), ("n2", "n3")]


def test_healthy_mesh_has_no_findings(plan):
    findings = diagnose(plan, _healthy(plan), WINDOW)
    assert findings == []
    assert findings_table(findings) == ["no findings: every planned pair is up and every check passed"]


def test_udp_4500_blocked_on_one_node(plan):
    facts = _healthy(plan)
    for other in ("n1", "n3"):
        _take_down(facts, plan, other, "n2")
        facts[other]["node"]["udp"]["n2"] = {"500": True, "4500": False}
        facts[other]["node"]["log"].append("<n2|7> retransmit 2 of request with message ID 1")
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n2", "udp_blocked"), ("n2<->n3", "udp_blocked")]
    assert "n1 -> n2 UDP 4500" in findings[0]["evidence"]
    assert "answered: n1 -> n2 UDP 500" in findings[0]["evidence"]
    assert "4500" in findings[0]["fix"]


def test_peer_unreachable_when_nothing_answers(plan):
    facts = _healthy(plan)
    _take_down(facts, plan, "n1", "n3")
    facts["n1"]["node"]["udp"]["n3"] = {"500": False, "4500": False}
    facts["n3"]["node"]["udp"]["n1"] = {"500": False, "4500": False}
    assert _causes(diagnose(plan, facts, WINDOW)) == [("n1<->n3", "peer_unreachable")]


def test_expired_certificate(plan):
    facts = _healthy(plan)
    facts["n2"]["node"]["cert"].update(not_before=NOW - 2 * 86400, not_after=NOW - 86400, serial="abc123")
    _take_down(facts, plan, "n1", "n2")
    _take_down(facts, plan, "n2", "n3")
    facts["n1"]["node"]["log"].append("<n2|9> received AUTHENTICATION_FAILED notify error")
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n2", "cert_expired"), ("n2<->n3", "cert_expired")]
    assert "n2: certificate serial abc123 expired 1.0 days ago" in findings[0]["evidence"]
    assert "AUTHENTICATION_FAILED" in findings[0]["evidence"]


def test_expired_certificate_with_sas_still_up(plan):
    facts = _healthy(plan)
    facts["n3"]["node"]["cert"]["not_after"] = NOW - 10
    assert _causes(diagnose(plan, facts, WINDOW)) == [
        ("n1<->n3", "cert_expired"),
        ("n2<->n3", "cert_expired"),
    ]


def test_certificate_not_yet_valid_and_expiring(plan):
    facts = _healthy(plan)
    facts["n1"]["node"]["cert"]["not_before"] = NOW + 3600
    facts["n3"]["node"]["cert"]["not_after"] = NOW + 2 * 86400
    causes = _causes(diagnose(plan, facts, WINDOW))
    assert ("n1<->n2", "cert_not_yet_valid") in causes
    assert ("n3", "cert_expiring") in causes
    assert _causes(diagnose(plan, facts, WINDOW, cert_warn_days=1)) == [
        ("n1<->n2", "cert_not_yet_valid"),
        ("n1<->n3", "cert_not_yet_valid"),
    ]


def test_certificate_from_a_foreign_ca(plan):
    facts = _healthy(plan)
    facts["n3"]["node"]["cert"].update(
        issuer="CN=foreign CA",
        chain_ok=False,
        chain_error="not signed by the installed intermediate CA CN=ikemesh intermediate CA",
    )
    _take_down(facts, plan, "n1", "n3")
    _take_down(facts, plan, "n2", "n3")
    facts["n3"]["node"]["log"].append("<n1|4> received AUTHENTICATION_FAILED notify error")
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n3", "cert_untrusted"), ("n2<->n3", "cert_untrusted")]
    assert "CN=foreign CA" in findings[0]["evidence"]


def test_mismatched_ike_proposal(plan):
    facts = _healthy(plan)
    facts["n2"]["node"]["proposals"]["n3"]["ike"] = ["aes128-sha256-modp3072"]
    _take_down(facts, plan, "n2", "n3")
    facts["n2"]["node"]["log"].append("<n3|12> received NO_PROPOSAL_CHOSEN notify error")
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n2<->n3", "proposal_mismatch")]
    assert "IKE: n2 offers aes128-sha256-modp3072" in findings[0]["evidence"]
    assert "received NO_PROPOSAL_CHOSEN" in findings[0]["evidence"]


def test_mismatched_esp_proposal_seen_only_in_the_log(plan):
    facts = _healthy(plan)
    _take_down(facts, plan, "n1", "n2", state="ESTABLISHED", child_state=None)
    facts["n1"]["node"]["proposals"].pop("n2")  # a connection not managed by ikemesh files
    facts["n1"]["node"]["log"].append("<n2|3> received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built")
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n2", "proposal_mismatch")]


def test_wrong_traffic_selector(plan):
    facts = _healthy(plan)
    _take_down(facts, plan, "n1", "n3", state="ESTABLISHED", child_state=None)
    conf = facts["n3"]["status"]["connections"]["n1"]["child_configs"]["n1"]
    conf["remote_ts"] = ["10.97.0.0/24"]
    facts["n1"]["node"]["log"].append("<n3|5> received TS_UNACCEPTABLE notify, no CHILD_SA built")
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n3", "ts_mismatch")]
    assert "n3 expects remote_ts 10.97.0.0/24" in findings[0]["evidence"]


def test_traffic_selector_against_the_plan_when_one_side_is_not_loaded(plan):
    facts = _healthy(plan)
    _take_down(facts, plan, "n1", "n3", state="ESTABLISHED", child_state=None)
    facts["n3"]["status"]["connections"]["n1"]["loaded"] = False
    facts["n1"]["status"]["connections"]["n3"]["child_configs"]["n3"]["local_ts"] = ["10.0.0.0/8"]
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n3", "ts_mismatch")]
    assert "planned 10.99.0.0/24" in findings[0]["evidence"]


def test_log_notifies_without_config_evidence(plan):
    facts = _healthy(plan)
    _take_down(facts, plan, "n1", "n2")
    facts["n1"]["node"]["log"].append("<n2|3> received INVALID_ID_INFORMATION notify error")
    assert _causes(diagnose(plan, facts, WINDOW)) == [("n1<->n2", "id_mismatch")]
    facts["n1"]["node"]["log"][-1] = "<n2|3> received AUTHENTICATION_FAILED notify error"
    assert _causes(diagnose(plan, facts, WINDOW)) == [("n1<->n2", "auth_failed")]


def test_sa_down_without_evidence(plan):
    facts = _healthy(plan)
    _take_down(facts, plan, "n2", "n3")
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n2<->n3", "sa_down")]
    assert "n2: IKE CONNECTING, CHILD down" in findings[0]["evidence"]


def test_mtu_black_hole_on_a_lowered_underlay(plan):
    facts = _healthy(plan)
    facts["n2"]["node"]["underlay_mtu"] = 1300
    for a, b in (("n1", "n2"), ("n2", "n1"), ("n2", "n3"), ("n3", "n2")):
        facts[a]["probes"] = [line.replace(f"mtu {b} ok", f"mtu {b} fail") for line in facts[a]["probes"]]
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n2", "mtu_black_hole"), ("n2<->n3", "mtu_black_hole")]
    assert "n2's underlay eth0 has MTU 1300, planned 1500" in findings[0]["evidence"]
    assert "probes of 1400 bytes lost (n1 -> n2, n2 -> n1)" in findings[0]["evidence"]


def test_no_mtu_finding_when_small_packets_are_lost_too(plan):
    facts = _healthy(plan)
    target = plan["nodes"]["n3"]["overlay_address"]
    facts["n1"]["probes"] = [f"reach {target} fail", "mtu n3 fail blocked"]
    assert diagnose(plan, facts, WINDOW) == []


def test_clock_skewed_by_a_day(plan):
    facts = _healthy(plan)
    facts["n3"]["node"]["time"] = NOW - 86400 - 100
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1<->n3", "clock_skew"), ("n2<->n3", "clock_skew")]
    assert "n3 is 1.0 days behind the controller" in findings[0]["evidence"]
    assert "synchronise the clock of n3" in findings[0]["fix"]


def test_clock_skew_explains_the_authentication_failures_it_causes(plan):
    facts = _healthy(plan)
    facts["n1"]["node"]["time"] = NOW + 86400 + 100
    for other in ("n2", "n3"):
        _take_down(facts, plan, "n1", other)
        facts[other]["node"]["log"].append("<n1|8> received AUTHENTICATION_FAILED notify error")
    assert _causes(diagnose(plan, facts, WINDOW)) == [("n1<->n2", "clock_skew"), ("n1<->n3", "clock_skew")]


def test_clock_offsets_tolerate_the_collection_window(plan):
    facts = _healthy(plan)
    facts["n1"]["node"]["time"] = WINDOW[0] - 30
    facts["n2"]["node"]["time"] = WINDOW[1] + 5
    offsets = clock_offsets(facts, WINDOW)
    assert offsets == {"n1": -30, "n2": 5, "n3": 0.0}
    assert diagnose(plan, facts, WINDOW) == []  # within the 120 s default
    assert _causes(diagnose(plan, facts, WINDOW, max_clock_skew=10)) == [
        ("n1<->n2", "clock_skew"),
        ("n1<->n3", "clock_skew"),
    ]


def test_routes_missing_and_asymmetric(plan):
    facts = _healthy(plan)
    facts["n1"]["node"]["routes"]["n2"] = {"ok": False, "error": "RTNETLINK answers: Network is unreachable"}
    assert _causes(diagnose(plan, facts, WINDOW)) == [("n1<->n2", "route_asymmetric")]
    facts["n2"]["node"]["routes"]["n1"] = {"ok": False, "error": "no route"}
    assert _causes(diagnose(plan, facts, WINDOW)) == [("n1<->n2", "route_missing")]


def test_bgp_session_down():
    nodes = {
        f"v{i}": {
            "ikemesh_underlay_address": f"203.0.113.2{i}",
            "ikemesh_ipsec_backend": "libipsec",
            "ikemesh_tunnel_mode": "vxlan",
        }
        for i in (1, 2)
    }
    plan = build_plan(nodes, [], {})
    facts = {}
    for name in nodes:
        peer = plan["nodes"][name]["peers"][0]
        neighbour = peer["link_peer_address"].split("/")[0]
        facts[name] = {
            "status": {"connections": {peer["name"]: _connection(name, peer["name"], plan)}},
            "probes": [],
            "node": {"time": NOW},
            "bgp": {"ipv4Unicast": {"peers": {neighbour: {"state": "Established"}}}},
        }
    assert diagnose(plan, facts, WINDOW) == []
    peers = facts["v1"]["bgp"]["ipv4Unicast"]["peers"]
    peers[next(iter(peers))]["state"] = "Active"
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("v1<->v2", "bgp_down")]
    assert "is Active" in findings[0]["evidence"]


def test_charon_down(plan):
    facts = _healthy(plan)
    facts["n1"]["status"] = {
        "failed": True,
        "msg": "charon is not running or VICI socket /var/run/charon.vici not found",
    }
    findings = diagnose(plan, facts, WINDOW)
    assert _causes(findings) == [("n1", "charon_down")]


def test_findings_table_lists_evidence_and_fix(plan):
    facts = _healthy(plan)
    facts["n3"]["node"]["time"] = NOW + 7200
    lines = findings_table(diagnose(plan, facts, WINDOW))
    assert lines[0] == "n1<->n3: clock_skew (the clocks differ)"
    assert lines[1].startswith("    evidence: clocks differ by 2.0 h")
    assert lines[2].startswith("    fix: synchronise the clock of n3")


def test_input_is_not_modified(plan):
    facts = _healthy(plan)
    before = copy.deepcopy(facts)
    diagnose(plan, facts, WINDOW)
    assert facts == before


def test_mesh_summary(plan):
    facts = _healthy(plan)
    statuses = {name: facts[name]["status"] for name in NODES}
    statuses["n2"]["connections"]["n3"]["ike_sas"] = []
    statuses["n2"]["connections"]["stranger"] = {"loaded": False, "ike_sas": [{"state": "ESTABLISHED"}]}
    statuses["n3"] = {"failed": True, "msg": "charon is not running"}
    assert mesh_summary(plan, statuses) == [
        "node  peers  up   problems",
        "n1    2      2/2  -",
        "n2    2      1/2  n3 down; unexpected SA stranger",
        "n3    2      0/2  charon is not running",
    ]


def test_filter_adapters(plan):
    filters = FilterModule().filters()
    assert filters["diagnose"](_healthy(plan), plan, str(WINDOW[0]), WINDOW[1]) == []
    assert filters["findings_table"]([])[0].startswith("no findings")
    with pytest.raises(AnsibleFilterError, match="ikemesh.mesh.diagnose: malformed input"):
        filters["diagnose"]({"n1": {"status": {"connections": []}}}, {"peers": []}, 0, 1)
    with pytest.raises(AnsibleFilterError, match="mesh_summary"):
        filters["mesh_summary"]({"n1": None}, {})
