"""Fixtures of the lifecycle scenario: the live-lab fixtures of tests/lab (inventory, plan, testinfra
hosts, VICI state) and the ansible-playbook runner of tests/conftest.py, loaded from their files
(pytest only picks up conftest files on the path of the tests it runs)."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_checkout = _load("ikemesh_tests_conftest", "tests/conftest.py")
_lab = _load("ikemesh_lab_conftest", "tests/lab/conftest.py")

pytest_addoption = _lab.pytest_addoption
lab_inventory = _lab.lab_inventory
lab_nodes = _lab.lab_nodes
lab_plan = _lab.lab_plan
lab_host = _lab.lab_host
vici_state = _lab.vici_state
run_playbook = _checkout.run_playbook
