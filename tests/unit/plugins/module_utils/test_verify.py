from ansible_collections.ikemesh.mesh.plugins.module_utils.verify import (
    node_report,
    parse_probes,
    summary_table,
)

PLAN = {
    "mtu": 1400,
    "peers": [{"name": "b", "overlay_address": "10.99.1.1"}, {"name": "c", "overlay_address": "10.99.2.1"}],
}
DESTS = ["10.99.1.1", "10.99.2.1", "10.99.3.1"]
GOOD_PROBES = [
    "reach 10.99.1.1 ok",
    "reach 10.99.2.1 ok",
    "reach 10.99.3.1 ok",
    "mtu b ok blocked",
    "mtu c ok blocked",
]


def _conn(name, *ike_states, child_state="INSTALLED"):
    sas = [{"state": s, "child_sas": [{"name": name, "state": child_state}]} for s in ike_states]
    return {"loaded": True, "ike_sas": sas}


def _healthy():
    return {"b": _conn("b", "ESTABLISHED"), "c": _conn("c", "ESTABLISHED")}


def test_parse_probes():
    reach, mtu = parse_probes(["reach 10.0.0.1 ok", "reach 10.0.0.2 fail", "mtu 10.0.0.1 ok passed", "junk"])
    assert reach == {"10.0.0.1": True, "10.0.0.2": False}
    assert mtu == {"10.0.0.1": (True, True)}


def test_healthy_node_is_ok():
    report = node_report(PLAN, _healthy(), DESTS, GOOD_PROBES)
    assert report == {
        "peers_expected": 2,
        "ike_established": 2,
        "child_installed": 2,
        "mtu_confirmed": 2,
        "bgp_established": None,
        "destinations": 3,
        "reached": 3,
        "problems": [],
        "ok": True,
    }


def test_missing_duplicate_and_unexpected_sas_are_problems():
    conns = _healthy()
    conns["b"] = _conn("b", "ESTABLISHED", "ESTABLISHED")
    conns["c"] = _conn("c", "CONNECTING", child_state="CREATED")
    conns["stranger"] = _conn("stranger", "ESTABLISHED")
    report = node_report(PLAN, conns, DESTS, GOOD_PROBES)
    assert not report["ok"]
    assert report["ike_established"] == 0
    assert "b: 2 ESTABLISHED IKE SAs, expected exactly 1" in report["problems"]
    assert "c: no ESTABLISHED IKE SA (IKE SA states: CONNECTING)" in report["problems"]
    assert "stranger: unexpected SA with a peer that is not in the plan" in report["problems"]


def test_child_not_installed_is_a_problem():
    conns = _healthy()
    conns["c"] = _conn("c", "ESTABLISHED", child_state="REKEYING")
    report = node_report(PLAN, conns, DESTS, GOOD_PROBES)
    assert report["child_installed"] == 1
    assert report["problems"] == ["c: CHILD SA c not INSTALLED"]


def test_unreached_destination_and_unconfirmed_mtu_are_problems():
    probes = [p for p in GOOD_PROBES if "10.99.3.1" not in p and not p.startswith("mtu")]
    probes += ["mtu b fail blocked", "mtu c ok passed"]
    report = node_report(PLAN, _healthy(), DESTS, probes)
    assert report["reached"] == 2
    assert report["mtu_confirmed"] == 0
    assert "no answer from 10.99.3.1 over the overlay" in report["problems"]
    assert (
        "b: tunnel MTU 1400 not confirmed (a DF packet of that size is lost; one byte more is blocked)"
        in report["problems"]
    )
    assert "c: tunnel MTU 1400 not confirmed (fits; one byte more passes)" in report["problems"]


def test_summary_table_lists_nodes_and_problems():
    good = node_report(PLAN, _healthy(), DESTS, GOOD_PROBES)
    bad = node_report(PLAN, {}, DESTS, [])
    lines = summary_table({"n2": bad, "n1": good})
    assert lines[0].split() == [
        "node",
        "peers",
        "IKE",
        "up",
        "CHILD",
        "up",
        "BGP",
        "up",
        "MTU",
        "ok",
        "overlay",
        "reach",
        "status",
    ]
    assert lines[2].split() == ["n1", "2", "2/2", "2/2", "-", "2/2", "3/3", "OK"]
    assert lines[3].split() == ["n2", "2", "0/2", "0/2", "-", "0/2", "0/3", "FAIL"]
    assert "n2: b: no ESTABLISHED IKE SA (IKE SA states: none)" in lines


def test_bgp_sessions_are_judged_in_route_based_modes():
    plan = {
        "mtu": 1350,
        "peers": [
            {"name": "b", "overlay_address": "10.99.1.1", "link_peer_address": "169.254.0.1/31"},
            {"name": "c", "overlay_address": "10.99.2.1", "link_peer_address": "169.254.0.3/31"},
        ],
    }
    summary = {
        "ipv4Unicast": {
            "peers": {"169.254.0.1": {"state": "Established"}, "169.254.0.3": {"state": "Active"}}
        }
    }
    probes = ["reach 10.99.1.1 ok", "reach 10.99.2.1 ok", "mtu b ok blocked", "mtu c ok blocked"]
    report = node_report(plan, _healthy(), ["10.99.1.1", "10.99.2.1"], probes, summary)
    assert report["bgp_established"] == 1
    assert report["problems"] == ["c: BGP session to 169.254.0.3 is Active, not Established"]
    assert summary_table({"a": report})[2].split()[4] == "1/2"
