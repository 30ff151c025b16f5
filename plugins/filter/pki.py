# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter adapter: cert_renewal (see module_utils/pki.py)."""

import datetime

from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.module_utils.pki import renewal_reason


def cert_renewal(info, renew_fraction=0.66, issued_before="", issuer_key_id="", now=None):
    """Why the certificate described by community.crypto.x509_certificate_info must be reissued, or ""."""
    if not isinstance(info, dict) or "not_before" not in info or "not_after" not in info:
        raise AnsibleFilterError(
            "ikemesh.mesh.cert_renewal: the input must be a community.crypto.x509_certificate_info result"
        )
    try:
        return renewal_reason(
            info["not_before"],
            info["not_after"],
            now or datetime.datetime.now(datetime.timezone.utc),
            renew_fraction,
            issued_before or None,
            info.get("authority_key_identifier"),
            issuer_key_id or None,
        )
    except ValueError as exc:
        raise AnsibleFilterError(f"ikemesh.mesh.cert_renewal: {exc}") from None


class FilterModule:
    def filters(self):
        return {"cert_renewal": cert_renewal}
