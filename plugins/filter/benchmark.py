"""Filter that turns the cipher benchmark's measurements into its report: cipher_report."""

from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.module_utils.benchmark import cipher_report


def _cipher_report(measurements, aes_ni):
    try:
        return cipher_report(list(measurements), dict(aes_ni))
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.cipher_report: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"cipher_report": _cipher_report}
