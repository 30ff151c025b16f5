# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter adapters: firewall_ruleset, charon_tuning, node_sysctls."""

from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.filter.mesh import _plain
from ansible_collections.ikemesh.mesh.plugins.module_utils.firewall import (
    FirewallError,
)
from ansible_collections.ikemesh.mesh.plugins.module_utils.firewall import (
    firewall_ruleset as _firewall_ruleset,
)
from ansible_collections.ikemesh.mesh.plugins.module_utils.tuning import TuningError
from ansible_collections.ikemesh.mesh.plugins.module_utils.tuning import charon_tuning as _charon_tuning
from ansible_collections.ikemesh.mesh.plugins.module_utils.tuning import node_sysctls as _node_sysctls


def _shape(name, plan):
    if not isinstance(plan, dict) or "nodes" not in plan:
        raise AnsibleFilterError(
            f"ikemesh.mesh.{name}: the input must be the plan (ikemesh_plan), got {str(plan)[:80]!r}"
        )


def firewall_ruleset(plan, host, strict=False, mss_clamp=True, extra_ike_sources=None, table="ikemesh"):
    """nft file of host's firewall: see module_utils/firewall.py firewall_ruleset."""
    plan = _plain(plan)
    _shape("firewall_ruleset", plan)
    try:
        return _firewall_ruleset(
            plan,
            str(host),
            strict=bool(strict),
            mss_clamp=bool(mss_clamp),
            extra_ike_sources=_plain(extra_ike_sources or []),
            table=_plain(table),
        )
    except (FirewallError, KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.firewall_ruleset: {exc}") from None


def charon_tuning(peer_count):
    """charon threads and IKE SA table sizing: see module_utils/tuning.py charon_tuning."""
    try:
        return _charon_tuning(_plain(peer_count))
    except TuningError as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.charon_tuning: {exc}") from None


def node_sysctls(plan, host, forwarding=None, socket_buffer_max=16777216, conntrack_max=262144, live=None):
    """sysctls of host: see module_utils/tuning.py node_sysctls."""
    plan = _plain(plan)
    _shape("node_sysctls", plan)
    try:
        return _node_sysctls(
            plan,
            str(host),
            forwarding=_plain(forwarding),
            socket_buffer_max=_plain(socket_buffer_max),
            conntrack_max=_plain(conntrack_max),
            live=_plain(live),
        )
    except (TuningError, KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.node_sysctls: {exc}") from None


class FilterModule:
    def filters(self):
        return {
            "firewall_ruleset": firewall_ruleset,
            "charon_tuning": charon_tuning,
            "node_sysctls": node_sysctls,
        }
