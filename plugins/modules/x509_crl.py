#!/usr/bin/python
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: x509_crl
short_description: Keep a CA's CRL signed, fresh and usable by strongSwan
version_added: "0.1.0"
description:
  - Writes a PEM CRL signed by a CA, with the extensions strongSwan needs to find it
    (C(authorityKeyIdentifier), which strongSwan matches against the issuer's subject key identifier
    when it checks revocation) and an increasing C(cRLNumber).
  - Re-signs only when needed, so runs are idempotent, when the file is missing, is not signed by
    this CA, lists other revoked serial numbers than O(revoked_serials), or has less than
    O(refresh_fraction) of its validity left.
  - community.crypto.x509_crl cannot add the authorityKeyIdentifier extension, without which
    strongSwan with C(revocation = strict) reports "certificate status is not available".
author: ikemesh developers (@ikemesh)
options:
  path:
    description: Where the CRL (PEM) is written.
    type: path
    required: true
  issuer_cert_path:
    description: The CA certificate (PEM) whose key signs the CRL.
    type: path
    required: true
  issuer_key_path:
    description: The CA private key (PEM).
    type: path
    required: true
  issuer_key_passphrase:
    description: Passphrase of the CA private key.
    type: str
  revoked_serials:
    description:
      - Serial numbers of revoked certificates.
      - Integers, hex with colons (C(3e:c1:da)) or C(0x)-prefixed hex.
    type: list
    elements: raw
    default: []
  validity_days:
    description: Days from now to the CRL's nextUpdate.
    type: int
    default: 14
  refresh_fraction:
    description: Re-sign when less than this fraction of the validity remains.
    type: float
    default: 0.5
  mode:
    description: File mode of the CRL.
    type: str
    default: "0644"
extends_documentation_fragment:
  - ikemesh.mesh.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
requirements:
  - cryptography >= 3.4
"""

EXAMPLES = r"""
- name: Keep the intermediate CA's CRL fresh
  ikemesh.mesh.x509_crl:
    path: /srv/pki/intermediate-ca.crl
    issuer_cert_path: /srv/pki/intermediate-ca.crt
    issuer_key_path: /srv/pki/intermediate-ca.key
    issuer_key_passphrase: "{{ vaulted_passphrase }}"
    revoked_serials: ["3e:c1:da:45"]
    validity_days: 14
  delegate_to: localhost
"""

RETURN = r"""
crl_number:
  description: The cRLNumber of the CRL on disk after the task.
  type: int
  returned: success
  sample: 3
next_update:
  description: nextUpdate of the CRL on disk after the task (ISO 8601, UTC).
  type: str
  returned: success
  sample: "2026-12-18T16:14:04Z"
reason:
  description: Why the CRL was (or would be) re-signed; empty when it was kept.
  type: str
  returned: success
  sample: "less than 0.5 of its validity left"
"""

import datetime  # noqa: E402
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
except ImportError:  # pragma: no cover - reported by the module
    x509 = None


def parse_serial(value):
    """An integer, hex with colons (as strongSwan and openssl print serials) or 0x-prefixed hex."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text.startswith("0x"):
        return int(text, 16)
    if ":" in text:
        return int(text.replace(":", ""), 16)
    return int(text)


def _utc(value, attribute):
    aware = getattr(value, attribute + "_utc", None)
    return aware if aware is not None else getattr(value, attribute).replace(tzinfo=datetime.timezone.utc)


def needs_signing(crl, issuer, revoked, now, refresh_fraction):
    """Return the reason the CRL must be (re)signed, or "" to keep it."""
    if crl is None:
        return "no CRL yet"
    if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):
        return "not signed by this CA"
    try:
        crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return "no authorityKeyIdentifier"
    if {entry.serial_number for entry in crl} != set(revoked):
        return "revoked serial numbers changed"
    last, nxt = _utc(crl, "last_update"), _utc(crl, "next_update")
    if nxt is None or (nxt - now) < (nxt - last) * refresh_fraction:
        return f"less than {refresh_fraction} of its validity left"
    return ""


def build_crl(issuer, key, revoked, number, now, validity_days):
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + datetime.timedelta(days=validity_days))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False
        )
        .add_extension(x509.CRLNumber(number), critical=False)
    )
    for serial in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    digest = hashes.SHA384() if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA256()
    return builder.sign(key, digest)


def _crl_number(crl):
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return 0


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            issuer_cert_path=dict(type="path", required=True),
            issuer_key_path=dict(type="path", required=True),
            issuer_key_passphrase=dict(type="str", no_log=True),
            revoked_serials=dict(type="list", elements="raw", default=[]),
            validity_days=dict(type="int", default=14),
            refresh_fraction=dict(type="float", default=0.5),
            mode=dict(type="str", default="0644"),
        ),
        supports_check_mode=True,
    )
    if x509 is None:
        module.fail_json(msg="the Python library cryptography is required on the host running this module")
    p = module.params
    try:
        revoked = {parse_serial(s) for s in p["revoked_serials"]}
    except ValueError as exc:
        module.fail_json(msg=f"revoked_serials: not a serial number: {exc}")
    with open(p["issuer_cert_path"], "rb") as handle:
        issuer = x509.load_pem_x509_certificate(handle.read())
    crl = None
    if os.path.exists(p["path"]):
        with open(p["path"], "rb") as handle:
            crl = x509.load_pem_x509_crl(handle.read())
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    reason = needs_signing(crl, issuer, revoked, now, p["refresh_fraction"])
    changed = bool(reason)
    if changed and not module.check_mode:
        passphrase = p["issuer_key_passphrase"].encode() if p["issuer_key_passphrase"] else None
        with open(p["issuer_key_path"], "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), passphrase)
        crl = build_crl(issuer, key, revoked, _crl_number(crl) + 1 if crl else 1, now, p["validity_days"])
        tmp = p["path"] + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(crl.public_bytes(serialization.Encoding.PEM))
        os.replace(tmp, p["path"])
    if crl is not None and os.path.exists(p["path"]):
        changed = module.set_fs_attributes_if_different(
            module.load_file_common_arguments(dict(path=p["path"], mode=p["mode"])), changed
        )
    module.exit_json(
        changed=changed,
        reason=reason,
        crl_number=_crl_number(crl) if crl is not None else 0,
        next_update=_utc(crl, "next_update").strftime("%Y-%m-%dT%H:%M:%SZ") if crl is not None else "",
    )


if __name__ == "__main__":
    main()
