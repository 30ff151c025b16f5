"""`--limit` safety: a run limited to one node plans the whole mesh, so it changes nothing there
and tears down none of that node's SAs (the plan reads the inventory groups, not the play hosts)."""

import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ike_ids(events):
    """Connection name -> unique id of its ESTABLISHED IKE SA."""
    return {
        name: sa["uniqueid"] for event in events for name, sa in event.items() if sa["state"] == "ESTABLISHED"
    }


def test_run_limited_to_one_node_keeps_all_its_peers(lab_inventory, lab_plan, vici_state, lab_host):
    node = sorted(lab_plan["nodes"])[0]
    before = _ike_ids(vici_state(lab_host(node)))
    assert set(before) == {p["name"] for p in lab_plan["nodes"][node]["peers"]}
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    result = subprocess.run(
        ["ansible-playbook", os.path.join(ROOT, "site.yml"), "-i", lab_inventory, "--limit", node],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.M)
    assert recap == [(node, "0")], recap
    assert _ike_ids(vici_state(lab_host(node))) == before
