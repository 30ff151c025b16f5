from ansible_collections.ikemesh.mesh.plugins.module_utils.verify import node_report, summary_table

PLAN = {
    "peers": [{"name": "b", "overlay_address": "10.99.1.1"}, {"name": "c", "overlay_address": "10.99.2.1"}]
}


def _conn(*ike_states, child_state="INSTALLED", child_name=None):
    return {
        "loaded": True,
        "ike_sas": [
            {"state": s, "child_sas": [{"name": child_name, "state": child_state}]} for s in ike_states
        ],
    }


def _healthy():
    b, c = _conn("ESTABLISHED", child_name="b"), _conn("ESTABLISHED", child_name="c")
    return {"b": b, "c": c}


def test_healthy_node_is_ok():
    report = node_report(PLAN, _healthy(), {"10.99.1.1": True, "10.99.2.1": True})
    assert report == {
        "peers_expected": 2,
        "ike_established": 2,
        "child_installed": 2,
        "pings_ok": 2,
        "problems": [],
        "ok": True,
    }


def test_missing_duplicate_and_unexpected_sas_are_problems():
    conns = _healthy()
    conns["b"] = _conn("ESTABLISHED", "ESTABLISHED", child_name="b")
    conns["c"] = _conn("CONNECTING", child_name="c", child_state="CREATED")
    conns["stranger"] = _conn("ESTABLISHED", child_name="stranger")
    report = node_report(PLAN, conns, {"10.99.1.1": True, "10.99.2.1": False})
    assert not report["ok"]
    assert report["ike_established"] == 0
    assert "b: 2 ESTABLISHED IKE SAs, expected exactly 1" in report["problems"]
    assert "c: no ESTABLISHED IKE SA (IKE SA states: CONNECTING)" in report["problems"]
    assert "c: no answer to ping 10.99.2.1 from the overlay" in report["problems"]
    assert "stranger: unexpected SA with a peer that is not in the plan" in report["problems"]


def test_child_not_installed_is_a_problem():
    conns = _healthy()
    conns["c"] = _conn("ESTABLISHED", child_name="c", child_state="REKEYING")
    report = node_report(PLAN, conns, {"10.99.1.1": True, "10.99.2.1": True})
    assert report["child_installed"] == 1
    assert report["problems"] == ["c: CHILD SA c not INSTALLED"]


def test_summary_table_lists_nodes_and_problems():
    good = node_report(PLAN, _healthy(), {"10.99.1.1": True, "10.99.2.1": True})
    bad = node_report(PLAN, {}, {})
    lines = summary_table({"n2": bad, "n1": good})
    assert lines[0].split() == ["node", "peers", "IKE", "up", "CHILD", "up", "pings", "OK", "status"]
    assert lines[2].split() == ["n1", "2", "2/2", "2/2", "2/2", "OK"]
    assert lines[3].split() == ["n2", "2", "0/2", "0/2", "0/2", "FAIL"]
    assert "n2: b: no ESTABLISHED IKE SA (IKE SA states: none)" in lines
