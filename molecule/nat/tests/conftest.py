"""Fixtures of the nat scenario's tests: the live-lab fixtures of tests/lab, loaded from their file
(pytest only applies a conftest to the tests below it). The verifier runs these tests together with
tests/lab, whose conftest already registers --lab-inventory."""

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

_spec = importlib.util.spec_from_file_location(
    "ikemesh_lab_conftest_nat", os.path.join(ROOT, "tests/lab/conftest.py")
)
_lab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lab)


pytest_addoption = _lab.pytest_addoption  # tolerates a second registration in the same run


lab_inventory = _lab.lab_inventory
lab_nodes = _lab.lab_nodes
lab_plan = _lab.lab_plan
lab_host = _lab.lab_host
vici_state = _lab.vici_state


@pytest.fixture(scope="module")
def lab_inventory_data(lab_inventory):
    """The whole inventory as ansible-inventory --list gives it (the lab_routers group included)."""
    return _lab._inventory(lab_inventory)
