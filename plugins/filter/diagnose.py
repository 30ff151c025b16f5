# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that name the cause of mesh problems: diagnose and findings_table."""

from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.module_utils.diagnose import (
    diagnose,
    findings_table,
    mesh_summary,
)


def _plain(value):
    """Ansible's lazy containers as plain dicts/lists (the judge only reads them)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _diagnose(facts, plan, window_start, window_end, max_clock_skew=None, cert_warn_days=None):
    try:
        return diagnose(
            _plain(plan),
            _plain(facts),
            (float(window_start), float(window_end)),
            None if max_clock_skew is None else float(max_clock_skew),
            None if cert_warn_days is None else float(cert_warn_days),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.diagnose: malformed input: {exc!r}") from exc


def _findings_table(findings):
    try:
        return findings_table(_plain(findings))
    except (KeyError, TypeError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.findings_table: malformed findings: {exc!r}") from exc


def _mesh_summary(statuses, plan):
    try:
        return mesh_summary(_plain(plan), _plain(statuses))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.mesh_summary: malformed input: {exc!r}") from exc


class FilterModule:
    def filters(self):
        return {"diagnose": _diagnose, "findings_table": _findings_table, "mesh_summary": _mesh_summary}
