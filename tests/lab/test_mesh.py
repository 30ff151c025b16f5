"""Live facts of a deployed mesh, per node: planned SAs up, nothing else, overlay reachable."""

import pytest
import testinfra


def _nodes(plan):
    return sorted(plan["nodes"])


def _host(name):
    return testinfra.get_host(f"podman://{name}")


def _ike_sas(events):
    """Flatten list-sa events into (connection name, IKE SA dict)."""
    return [(name, sa) for event in events for name, sa in event.items()]


@pytest.fixture(scope="module")
def live(lab_plan, vici_state):
    return {name: vici_state(_host(name))["sas"] for name in _nodes(lab_plan)}


def test_every_planned_peer_has_exactly_one_established_ike_sa(lab_plan, live):
    for name in _nodes(lab_plan):
        sas = _ike_sas(live[name])
        for peer in lab_plan["nodes"][name]["peers"]:
            established = [sa for conn, sa in sas if conn == peer["name"] and sa["state"] == "ESTABLISHED"]
            assert len(established) == 1, f"{name} -> {peer['name']}: {len(established)} ESTABLISHED IKE SAs"


def test_every_planned_peer_has_an_installed_child_sa_with_planned_selectors(lab_plan, live):
    for name in _nodes(lab_plan):
        sas = dict(_ike_sas(live[name]))
        for peer in lab_plan["nodes"][name]["peers"]:
            children = list(sas[peer["name"]]["child-sas"].values())
            installed = [c for c in children if c["state"] == "INSTALLED"]
            assert len(installed) == 1, f"{name} -> {peer['name']}: CHILD SAs {children}"
            assert installed[0]["local-ts"] == peer["local_ts"]
            assert installed[0]["remote-ts"] == peer["remote_ts"]
            assert installed[0]["encr-alg"] in ("AES_GCM_16", "CHACHA20_POLY1305")


def test_no_sa_with_anyone_outside_the_plan(lab_plan, live):
    for name in _nodes(lab_plan):
        expected = {p["name"] for p in lab_plan["nodes"][name]["peers"]}
        assert {conn for conn, _sa in _ike_sas(live[name])} <= expected


def test_overlay_ping_to_every_peer(lab_plan):
    for name in _nodes(lab_plan):
        node = lab_plan["nodes"][name]
        host = _host(name)
        for peer in node["peers"]:
            result = host.run(
                "ping -n -q -c 2 -W 2 -I %s %s", node["overlay_address"], peer["overlay_address"]
            )
            assert result.rc == 0, f"{name} -> {peer['name']} ({peer['overlay_address']}): {result.stdout}"
