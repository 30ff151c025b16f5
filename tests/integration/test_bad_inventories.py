"""Broken inventories are rejected by site.yml before any host is contacted or changed.

Each inventory's first line says which message it must produce (`# expect: ...`). The hosts are
podman containers that do not exist: had any task reached a host, the run would fail with a
connection error instead of the planner's message.
"""

import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CASES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad_inventories")
CASES = sorted(f[:-4] for f in os.listdir(CASES_DIR) if f.endswith(".yml"))


@pytest.mark.parametrize("case", CASES)
def test_bad_inventory_is_rejected_before_any_change(case, tmp_path, run_playbook):
    source = os.path.join(CASES_DIR, f"{case}.yml")
    with open(source) as handle:
        expected = handle.readline().removeprefix("# expect:").strip()
    inventory = tmp_path / "hosts.yml"
    shutil.copy(source, inventory)
    returncode, output, recap = run_playbook(os.path.join(ROOT, "site.yml"), inventory)
    assert returncode == 2, output
    # the last task started is the plan role's, which runs on the controller only
    failed_task = output.rsplit("TASK [", 1)[1].split("]", 1)[0]
    assert failed_task.startswith("ikemesh.mesh.plan : "), output
    assert "Persist the allocation ledger" not in output
    assert expected in " ".join(output.split()), output
    assert recap and all(changed == 0 and unreachable == 0 for _h, changed, unreachable, _f in recap), recap
    assert not (tmp_path / "ikemesh_allocations.json").exists()
