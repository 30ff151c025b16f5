"""Tests for the filter adapters in plugins/filter/mesh.py."""

import json

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.filter.mesh import FilterModule, mesh_plan, tcp_mss, tunnel_mtu


class TaggedStr(str):
    """Stands in for Ansible's tagged/lazy string types."""


class TaggedList(list):
    pass


class HostVars:
    """Minimal stand-in for Ansible's lazy HostVars: item access only, iterating it is forbidden."""

    def __init__(self, data):
        self._data = data
        self.accessed = []

    def __getitem__(self, name):
        self.accessed.append(name)
        return HostVarsVars(self._data[name])

    def __iter__(self):
        raise AssertionError("the filter must not iterate over all of hostvars")


class HostVarsVars:
    def __init__(self, data):
        self._data = data
        self.keys_read = []

    def get(self, key, default=None):
        self.keys_read.append(key)
        return self._data.get(key, default)


def _hostvars():
    return HostVars(
        {
            "h1": {
                "ansible_host": TaggedStr("192.0.2.1"),
                "ikemesh_topology": TaggedStr("hub_spoke"),
                "x": 1,
            },
            "s1": {
                "ikemesh_underlay_address": TaggedStr("192.0.2.2"),
                "ikemesh_spoke_hubs": TaggedList([TaggedStr("h1")]),
                "ikemesh_underlay_mtu": 1400,
            },
            "s2": {"ikemesh_underlay_address": "192.0.2.3"},
            "other": {"ikemesh_underlay_address": "192.0.2.99"},
        }
    )


def test_filters_registered():
    assert set(FilterModule().filters()) >= {"mesh_plan", "tunnel_mtu", "tcp_mss"}


def test_mesh_plan_reads_only_listed_hosts_and_returns_plain_data():
    hv = _hostvars()
    plan = mesh_plan(["h1", "s1", "s2"], hv, ["h1"], {"s2": 5})
    assert hv.accessed == ["h1", "s1", "s2"]
    assert plan["topology"] == "hub_spoke"
    assert plan["ledger"] == {"h1": 0, "s1": 1, "s2": 5}
    assert plan["nodes"]["h1"]["underlay_address"] == "192.0.2.1"
    assert plan["nodes"]["s1"]["underlay_mtu"] == 1400
    assert [p["name"] for p in plan["nodes"]["h1"]["peers"]] == ["s1", "s2"]
    text = json.dumps(plan)
    assert json.loads(text) == plan
    for value in (plan["nodes"]["h1"]["underlay_address"], plan["nodes"]["s1"]["peers"][0]["name"]):
        assert type(value) is str


def test_mesh_plan_empty_ledger_and_hubs_none():
    plan = mesh_plan(["s1", "s2"], _hostvars(), None, "")
    assert plan["ledger"] == {"s1": 0, "s2": 1}


def test_mesh_plan_error_is_filter_error_with_host_and_field():
    hv = _hostvars()
    with pytest.raises(AnsibleFilterError, match=r"^mesh: ikemesh_hubs: topology hub_spoke needs"):
        mesh_plan(["h1", "s1"], hv, [])
    hv._data["s2"]["ikemesh_overlay_subnet"] = "10.98.0.0/24"
    with pytest.raises(AnsibleFilterError, match=r"^host s2: ikemesh_overlay_subnet: .* outside"):
        mesh_plan(["h1", "s2"], hv, ["h1"])


def test_mesh_plan_bad_input():
    with pytest.raises(AnsibleFilterError, match="list of inventory hostnames"):
        mesh_plan("h1", _hostvars())
    with pytest.raises(AnsibleFilterError, match="host nope: not found"):
        mesh_plan(["nope"], _hostvars())


def test_tunnel_mtu_and_tcp_mss_filters():
    assert tunnel_mtu(1500) == 1446
    assert tunnel_mtu(1500, udp_encap=True, max_mtu=1400) == 1400
    assert tunnel_mtu(1500, udp_encap=True) == 1438
    assert tcp_mss(1438) == 1398
    assert tcp_mss(1438, 6) == 1378
    with pytest.raises(AnsibleFilterError, match="unknown cipher"):
        tunnel_mtu(1500, cipher="rot13")
    with pytest.raises(AnsibleFilterError, match="tcp_mss"):
        tcp_mss(1438, 5)
    with pytest.raises(AnsibleFilterError):
        tunnel_mtu(1500, bogus=1)
