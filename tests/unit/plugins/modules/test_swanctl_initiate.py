from __future__ import annotations

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils.vici import ViciSession
from ansible_collections.ikemesh.mesh.plugins.modules import swanctl_initiate
from ansible_collections.ikemesh.mesh.tests.unit.plugins.module_utils.vici_fake_charon import (
    FakeCharon,
    make_ike_sa,
)
from ansible_collections.ikemesh.mesh.tests.unit.plugins.modules.module_harness import (
    AnsibleExitJson,
    AnsibleFailJson,
    patch_module_args,
)


@pytest.fixture
def charon(tmp_path):
    with FakeCharon(tmp_path / "c.vici") as fake:
        fake.conns = {name: {"children": {name: {}}} for name in ("node2", "node3", "node4")}
        fake.sas = [
            # up
            make_ike_sa("node2", 1, children=[("node2", "INSTALLED")]),
            # IKE SA up but CHILD SA missing / not installed
            make_ike_sa("node3", 2, children=[("node3", "REKEYED")]),
            # IKE SA still connecting
            make_ike_sa("node4", 3, state="CONNECTING"),
        ]
        yield fake


CHILDREN = [
    {"ike": "node2", "child": "node2"},
    {"ike": "node3", "child": "node3"},
    {"ike": "node4", "child": "node4"},
]


def initiates(charon):
    return [(msg["ike"], msg["child"]) for command, msg in charon.requests if command == "initiate"]


def test_child_is_up(charon):
    with ViciSession(charon.path, timeout=5) as session:
        assert swanctl_initiate.child_is_up(session, "node2", "node2") is True
        assert swanctl_initiate.child_is_up(session, "node2", "other") is False
        assert swanctl_initiate.child_is_up(session, "node3", "node3") is False
        assert swanctl_initiate.child_is_up(session, "node4", "node4") is False
        assert swanctl_initiate.child_is_up(session, "nope", "nope") is False
    assert ("list-sas", {"ike": "node2"}) in charon.requests


def test_initiates_missing(charon):
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(session, CHILDREN + CHILDREN[:1], timeout=3, delay=0)
    assert result == {
        "changed": True,
        "initiated": ["node3/node3", "node4/node4"],
        "already_up": ["node2/node2"],
        "failures": [],
    }
    assert initiates(charon) == [("node3", "node3"), ("node4", "node4")]
    msg = [msg for command, msg in charon.requests if command == "initiate"][0]
    assert msg == {"child": "node3", "ike": "node3", "timeout": "3000", "init-limits": "no"}


def test_all_up_is_unchanged(charon):
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(session, CHILDREN[:1], delay=0)
    assert result == {"changed": False, "initiated": [], "already_up": ["node2/node2"], "failures": []}
    assert initiates(charon) == []


def test_check_mode(charon):
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(session, CHILDREN, check_mode=True)
    assert result == {
        "changed": True,
        "initiated": ["node3/node3", "node4/node4"],
        "already_up": ["node2/node2"],
        "failures": [],
    }
    assert initiates(charon) == []


def test_retries_then_success(charon):
    charon.initiate_outcomes = {"node3/node3": ["fail", "fail"]}
    sleeps = []
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(
            session, CHILDREN[1:2], retries=3, delay=2, sleep=sleeps.append
        )
    assert result["initiated"] == ["node3/node3"] and result["failures"] == []
    assert initiates(charon) == [("node3", "node3")] * 3
    assert sleeps == [2, 2]


def test_retries_exhausted(charon):
    charon.initiate_outcomes = {"node4/node4": ["fail"] * 10}
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(session, CHILDREN, retries=2, sleep=lambda _s: None)
    assert result["initiated"] == ["node3/node3"]
    assert result["already_up"] == ["node2/node2"]
    assert result["failures"] == [
        {
            "name": "node4/node4",
            "error": "establishing CHILD_SA 'node4' failed",
            "log": ["initiating node4/node4", "giving up after 5 retransmits"],
        }
    ]
    assert initiates(charon).count(("node4", "node4")) == 3


def test_came_up_meanwhile(charon):
    charon.initiate_outcomes = {"node4/node4": ["up-anyway", "fail"]}
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(session, CHILDREN[2:], sleep=lambda _s: None)
    assert result["initiated"] == ["node4/node4"] and result["failures"] == []
    assert initiates(charon) == [("node4", "node4")]


def test_unknown_config_not_retried(charon):
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(session, [{"ike": "ghost", "child": "ghost"}], sleep=None)
    assert result["failures"][0]["name"] == "ghost/ghost"
    assert "not found" in result["failures"][0]["error"]
    assert initiates(charon) == [("ghost", "ghost")]


def test_socket_timeout_is_retried(charon, monkeypatch):
    monkeypatch.setattr(swanctl_initiate, "SOCKET_GRACE", 0)
    charon.initiate_outcomes = {"node3/node3": ["hang"]}
    with ViciSession(charon.path, timeout=5) as session:
        result = swanctl_initiate.ensure_children(session, CHILDREN[1:2], timeout=0.3, sleep=lambda _s: None)
    assert result["initiated"] == ["node3/node3"]
    assert initiates(charon) == [("node3", "node3")] * 2


def test_main_changed(charon, module_patches):
    with (
        patch_module_args({"socket": charon.path, "children": CHILDREN, "timeout": 3, "delay": 0}),
        pytest.raises(AnsibleExitJson) as excinfo,
    ):
        swanctl_initiate.main()
    result = excinfo.value.args[0]
    assert result["changed"] is True
    assert result["initiated"] == ["node3/node3", "node4/node4"]
    assert result["already_up"] == ["node2/node2"]
    assert result["failures"] == []


def test_main_check_mode(charon, module_patches):
    args = {"socket": charon.path, "children": CHILDREN, "_ansible_check_mode": True}
    with patch_module_args(args), pytest.raises(AnsibleExitJson) as excinfo:
        swanctl_initiate.main()
    result = excinfo.value.args[0]
    assert result["changed"] is True
    assert result["initiated"] == ["node3/node3", "node4/node4"]
    assert initiates(charon) == []


def test_main_failure_names_peers(charon, module_patches):
    charon.initiate_outcomes = {"node4/node4": ["fail"] * 10}
    args = {"socket": charon.path, "children": CHILDREN, "retries": 1, "delay": 0}
    with patch_module_args(args), pytest.raises(AnsibleFailJson) as excinfo:
        swanctl_initiate.main()
    result = excinfo.value.args[0]
    assert "node4/node4" in result["msg"] and "node3" not in result["msg"]
    assert result["initiated"] == ["node3/node3"]
    assert result["changed"] is True
    assert [item["name"] for item in result["failures"]] == ["node4/node4"]


def test_main_no_charon(tmp_path, module_patches):
    path = str(tmp_path / "missing.vici")
    with patch_module_args({"socket": path, "children": CHILDREN}), pytest.raises(AnsibleFailJson) as excinfo:
        swanctl_initiate.main()
    assert f"charon is not running or VICI socket {path} not found" in excinfo.value.args[0]["msg"]


def test_main_requires_children(module_patches):
    with patch_module_args({}), pytest.raises(AnsibleFailJson) as excinfo:
        swanctl_initiate.main()
    assert "children" in excinfo.value.args[0]["msg"]


def test_normalize_children_accepts_names_and_dicts():
    from ansible_collections.ikemesh.mesh.plugins.modules.swanctl_initiate import normalize_children

    assert normalize_children(["node2", {"ike": "hub", "child": "lan"}]) == [
        {"ike": "node2", "child": "node2"},
        {"ike": "hub", "child": "lan"},
    ]
    with pytest.raises(ValueError, match="children"):
        normalize_children([{"ike": "x"}])
