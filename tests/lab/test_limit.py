"""`--limit` safety: a run limited to one node plans the whole mesh, so it changes nothing there
and tears down none of that node's SAs (the plan reads the inventory groups, not the play hosts)."""

import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ike_ids(events):
    """Connection name -> unique id of its ESTABLISHED IKE SA."""
    return {
        name: sa["uniqueid"] for event in events for name, sa in event.items() if sa["state"] == "ESTABLISHED"
    }


def test_run_limited_to_one_node_keeps_all_its_peers(
    lab_inventory, lab_plan, vici_state, lab_host, run_playbook
):
    if lab_plan["ipsec_backend"] == "kernel":
        # The plan and the roles decide this, not the data path; a site.yml run on a TCG VM would cost
        # the kernel scenario minutes of its budget.
        pytest.skip("proved by the container scenarios")
    node = sorted(lab_plan["nodes"])[0]
    before = _ike_ids(vici_state(lab_host(node)))
    assert set(before) == {p["name"] for p in lab_plan["nodes"][node]["peers"]}
    returncode, output, recap = run_playbook(os.path.join(ROOT, "site.yml"), lab_inventory, "--limit", node)
    assert returncode == 0, output[-6000:]
    assert [(host, changed) for host, changed, _u, _f in recap] == [(node, 0)], recap
    assert _ike_ids(vici_state(lab_host(node))) == before
