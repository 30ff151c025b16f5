import pytest
from ansible.module_utils import basic
from ansible_collections.ikemesh.mesh.tests.unit.plugins.modules.module_harness import exit_json, fail_json


@pytest.fixture
def module_patches(monkeypatch):
    """Make AnsibleModule.exit_json/fail_json raise AnsibleExitJson/AnsibleFailJson."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
