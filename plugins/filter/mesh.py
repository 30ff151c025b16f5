# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter adapters around the planner and the MTU math: mesh_plan, tunnel_mtu, tcp_mss."""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.module_utils.mtu import tcp_mss as _tcp_mss
from ansible_collections.ikemesh.mesh.plugins.module_utils.mtu import tunnel_mtu as _tunnel_mtu
from ansible_collections.ikemesh.mesh.plugins.module_utils.plan import (
    MESH_WIDE_FIELDS,
    NODE_FIELDS,
    PlanError,
    build_plan,
)

_FIELDS = MESH_WIDE_FIELDS + NODE_FIELDS


def _plain(value):
    """Turn Ansible's lazy/tagged values into plain str/int/bool/list/dict (recursively)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def mesh_plan(node_names, hostvars, hubs=None, ledger=None):
    """Plan the mesh from the inventory: see module_utils/plan.py build_plan."""
    if isinstance(node_names, (str, bytes)) or not hasattr(node_names, "__iter__"):
        raise AnsibleFilterError(
            f"ikemesh.mesh.mesh_plan: the input must be a list of inventory hostnames, got {node_names!r}"
        )
    nodes = {}
    for name in node_names:
        name = str(name)
        try:
            hv = hostvars[name]
        except KeyError:
            raise AnsibleFilterError(f"ikemesh.mesh.mesh_plan: host {name}: not found in hostvars") from None
        values = {}
        for key in _FIELDS:
            value = hv.get(key)
            if value is not None:
                values[key] = _plain(value)
        nodes[name] = values
    hubs = [] if hubs is None else _plain(hubs)
    if isinstance(hubs, str):
        raise AnsibleFilterError(f"ikemesh.mesh.mesh_plan: hubs must be a list of hostnames, got {hubs!r}")
    ledger = _plain(ledger) if ledger else None
    try:
        return build_plan(nodes, hubs, ledger)
    except PlanError as exc:
        raise AnsibleFilterError(str(exc)) from None


def tunnel_mtu(underlay_mtu=1500, **kwargs):
    """Largest inner packet that fits the underlay MTU: see module_utils/mtu.py tunnel_mtu."""
    try:
        return _tunnel_mtu(_plain(underlay_mtu), **{k: _plain(v) for k, v in kwargs.items()})
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.tunnel_mtu: {exc}") from None


def tcp_mss(mtu, ip_version=4):
    """TCP MSS for an interface MTU: see module_utils/mtu.py tcp_mss."""
    try:
        return _tcp_mss(_plain(mtu), _plain(ip_version))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.tcp_mss: {exc}") from None


class FilterModule:
    def filters(self):
        return {"mesh_plan": mesh_plan, "tunnel_mtu": tunnel_mtu, "tcp_mss": tcp_mss}
