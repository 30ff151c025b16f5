"""Filters that judge live state against the plan: node_report and summary_table."""

from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.module_utils.verify import node_report, summary_table


def _node_report(connections, node_plan, destinations, probe_lines, bgp=None):
    try:
        return node_report(node_plan, dict(connections), list(destinations), list(probe_lines), bgp)
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.node_report: malformed input: {exc}") from exc


def _summary_table(reports):
    try:
        return summary_table(dict(reports))
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.summary_table: malformed report: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"node_report": _node_report, "summary_table": _summary_table}
