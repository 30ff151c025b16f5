#!/usr/bin/python
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mesh_status
short_description: Report strongSwan connections, IKE/CHILD SAs and certificates via VICI
version_added: "0.1.0"
description:
  - Queries the local charon daemon over its VICI socket (the interface C(swanctl) uses) and returns
    the loaded connections with their configured traffic selectors, their active IKE and CHILD SAs
    (endpoints, NAT flags, established/rekey/reauth times, bytes and packets), the certificates of
    each connection's local and remote identity (serial, expiry), summary counters, the loaded X.509
    end-entity certificates and the daemon version.
  - SAs whose connection is not loaded (any more) are reported as well, with C(loaded=false), so
    unexpected SAs are visible.
  - The VICI protocol is implemented natively; no Python packages besides the standard library are
    needed on the node. Certificate details are parsed with the C(cryptography) package if it is
    available (Debian package C(python3-cryptography)).
  - This module never changes anything.
author: ikemesh developers (@ikemesh)
options:
  socket:
    description:
      - Path of charon's VICI unix socket.
    type: path
    default: /var/run/charon.vici
  timeout:
    description:
      - Timeout in seconds for connecting to and reading from the VICI socket.
    type: int
    default: 30
extends_documentation_fragment:
  - ikemesh.mesh.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - Fails with a clear message if charon is not running or the VICI socket does not exist.
"""

EXAMPLES = r"""
- name: Collect the IPsec mesh state
  ikemesh.mesh.mesh_status:
  register: mesh

- name: All IKE SAs are established
  ansible.builtin.assert:
    that:
      - mesh.connections[item].ike_sas | selectattr('state', 'eq', 'ESTABLISHED') | list | length > 0
  loop: "{{ mesh.connections | dict2items | selectattr('value.loaded') | map(attribute='key') | list }}"

- name: No SAs of connections that are not configured
  ansible.builtin.assert:
    that:
      - mesh.connections | dict2items | rejectattr('value.loaded') | list | length == 0

- name: Use a non-default socket
  ikemesh.mesh.mesh_status:
    socket: /run/strongswan/charon.vici
    timeout: 10
"""

RETURN = r"""
connections:
  description:
    - Connections by name. Contains every connection loaded in charon (C(list-conns)) plus every
      connection name that has an IKE SA but is not loaded (C(loaded=false)).
    - Missing numeric values are C(null).
  returned: success
  type: dict
  sample:
    node2:
      loaded: true
      local_addrs: ["192.0.2.1"]
      remote_addrs: ["192.0.2.2"]
      children: ["node2"]
      child_configs:
        node2: {mode: TUNNEL, local_ts: ["10.0.0.1/32"], remote_ts: ["10.0.0.2/32"]}
      certificate: {subject: "CN=node1", serial: 1a2b3c, not_before: "2024-01-01T00:00:00Z",
                    not_after: "2024-01-31T00:00:00Z"}
      peer_certificate: {subject: "CN=node2", serial: 4d5e6f, not_before: "2024-01-01T00:00:00Z",
                         not_after: "2024-01-31T00:00:00Z"}
      ike_sas:
        - uniqueid: 3
          state: ESTABLISHED
          local_host: 192.0.2.1
          local_port: 500
          remote_host: 192.0.2.2
          remote_port: 500
          local_id: CN=node1
          remote_id: CN=node2
          initiator: true
          nat_local: false
          nat_remote: false
          encr_alg: AES_GCM_16
          encr_keysize: 256
          integ_alg: null
          prf_alg: PRF_HMAC_SHA2_384
          dh_group: CURVE_25519
          established: 120
          rekey_time: 13000
          reauth_time: null
          child_sas:
            - name: node2
              uniqueid: 5
              reqid: 1
              state: INSTALLED
              mode: TUNNEL
              protocol: ESP
              encap: false
              encr_alg: AES_GCM_16
              encr_keysize: 256
              integ_alg: null
              bytes_in: 1234
              bytes_out: 2345
              packets_in: 12
              packets_out: 23
              install_time: 120
              rekey_time: 3200
              life_time: 3600
              local_ts: ["10.0.0.1/32"]
              remote_ts: ["10.0.0.2/32"]
              spi_in: c1a2b3c4
              spi_out: d1a2b3c4
              if_id_in: null
              if_id_out: null
  contains:
    loaded:
      description: Whether the connection is loaded in charon.
      type: bool
    local_addrs:
      description: Configured local addresses (empty if not loaded).
      type: list
      elements: str
    remote_addrs:
      description: Configured remote addresses (empty if not loaded).
      type: list
      elements: str
    children:
      description: Names of the configured CHILD SAs (empty if not loaded).
      type: list
      elements: str
    child_configs:
      description:
        - The configured CHILD SAs by name (empty if not loaded) with C(mode), C(local_ts) and
          C(remote_ts) (the configured traffic selectors, lists of strings). Compared with the
          peer's by C(playbooks/diagnose.yml).
      type: dict
    certificate:
      description:
        - The loaded certificate of the connection's local identity (the one charon has the private
          key of), with C(subject), C(serial) (hex), C(not_before), C(not_after) (ISO 8601 UTC);
          C(null) if none matches or C(cryptography) is missing.
      type: dict
    peer_certificate:
      description:
        - The certificate of the connection's remote identity if charon holds it (received from the
          peer during IKE_AUTH and cached), same keys as C(certificate); else C(null).
      type: dict
    ike_sas:
      description:
        - Active IKE SAs of the connection. Keys as in C(list-sas) with C(-) replaced by C(_).
        - "Endpoints: C(local_host), C(local_port), C(remote_host), C(remote_port); NAT: C(nat_local)
          (this node is behind NAT), C(nat_remote) (the peer is); times in seconds: C(established)
          (age), C(rekey_time) and C(reauth_time) (until the next rekey / reauthentication)."
        - Numeric values (C(uniqueid), ports, C(encr_keysize), C(established), C(rekey_time),
          C(reauth_time)) are integers or C(null); C(initiator), C(nat_local), C(nat_remote) booleans.
        - Each contains C(child_sas), a list of CHILD SAs with C(name), C(uniqueid), C(reqid), C(state),
          C(mode), C(protocol), C(encap) (bool), C(encr_alg), C(encr_keysize), C(integ_alg), C(bytes_in),
          C(bytes_out), C(packets_in), C(packets_out), C(install_time), C(rekey_time), C(life_time),
          C(local_ts), C(remote_ts), C(spi_in), C(spi_out) (hex strings), C(if_id_in), C(if_id_out)
          (integers or C(null)).
      type: list
      elements: dict
sa_count:
  description: Summary counters over all connections.
  returned: success
  type: dict
  sample: {"ike_established": 2, "child_installed": 2}
  contains:
    ike_established:
      description: Number of IKE SAs in state ESTABLISHED.
      type: int
    child_installed:
      description: Number of CHILD SAs in state INSTALLED (of any IKE SA).
      type: int
certificates:
  description:
    - Loaded X.509 end-entity certificates (C(list-certs) with type X509, flag NONE).
    - C(subject), C(serial), C(not_before) and C(not_after) are only present if the C(cryptography)
      Python package is available on the node and the certificate could be parsed.
  returned: success
  type: list
  elements: dict
  sample:
    - subject: O=ikemesh, CN=node1
      serial: 1a2b3c
      not_before: "2024-01-01T00:00:00Z"
      not_after: "2026-01-01T00:00:00Z"
      has_private_key: true
  contains:
    subject:
      description: Subject DN in strongSwan order (most significant RDN first), joined with C(", ").
      type: str
    serial:
      description: Serial number as lowercase hex without colons.
      type: str
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
    has_private_key:
      description: Whether charon has the matching private key.
      type: bool
version:
  description: Result of the VICI C(version) command.
  returned: success
  type: dict
  sample: {"daemon": "charon-systemd", "version": "5.9.8", "sysname": "Linux", "release": "6.1.0-18-amd64",
           "machine": "x86_64"}
"""

import datetime  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.ikemesh.mesh.plugins.module_utils.vici import (  # noqa: E402
    DEFAULT_SOCKET,
    DEFAULT_TIMEOUT,
    ViciConnectionError,
    ViciError,
    ViciSession,
)

try:
    from cryptography import x509

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - depends on the node
    x509 = None
    HAS_CRYPTOGRAPHY = False


IKE_STR_FIELDS = (
    "state",
    "local_host",
    "remote_host",
    "local_id",
    "remote_id",
    "encr_alg",
    "integ_alg",
    "prf_alg",
    "dh_group",
)
IKE_INT_FIELDS = ("local_port", "remote_port", "encr_keysize", "established", "rekey_time", "reauth_time")
IKE_BOOL_FIELDS = ("initiator", "nat_local", "nat_remote")

CHILD_STR_FIELDS = ("state", "mode", "protocol", "encr_alg", "integ_alg", "spi_in", "spi_out")
CHILD_INT_FIELDS = (
    "reqid",
    "encr_keysize",
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
    "install_time",
    "rekey_time",
    "life_time",
)


def to_int(value, base=10):
    """Convert a VICI value to int, None if missing or not numeric."""
    if value is None or isinstance(value, (dict, list)):
        return None
    try:
        return int(value, base) if isinstance(value, str) else int(value)
    except ValueError:
        return None


def to_bool(value):
    return value in ("yes", "1", "true")


def _get(data, field):
    """VICI uses dashes in list-sas keys; accept underscores as well."""
    if field in data:
        return data[field]
    return data.get(field.replace("_", "-"))


def _as_list(value):
    if isinstance(value, list):
        return list(value)
    if value is None or isinstance(value, dict):
        return []
    return [value]


def parse_child_sa(key, data):
    child = {"name": data.get("name", key), "uniqueid": to_int(data.get("uniqueid"))}
    for field in CHILD_STR_FIELDS:
        value = _get(data, field)
        child[field] = value if isinstance(value, str) else None
    for field in CHILD_INT_FIELDS:
        child[field] = to_int(_get(data, field))
    child["encap"] = to_bool(data.get("encap"))
    child["local_ts"] = _as_list(_get(data, "local_ts"))
    child["remote_ts"] = _as_list(_get(data, "remote_ts"))
    for field in ("if_id_in", "if_id_out"):
        # printed as %.8x by charon
        child[field] = to_int(_get(data, field), 16)
    return child


def parse_ike_sa(data):
    ike = {"uniqueid": to_int(data.get("uniqueid"))}
    for field in IKE_STR_FIELDS:
        value = _get(data, field)
        ike[field] = value if isinstance(value, str) else None
    for field in IKE_INT_FIELDS:
        ike[field] = to_int(_get(data, field))
    for field in IKE_BOOL_FIELDS:
        ike[field] = to_bool(_get(data, field))
    children = _get(data, "child_sas")
    ike["child_sas"] = [
        parse_child_sa(key, value)
        for key, value in (children.items() if isinstance(children, dict) else [])
        if isinstance(value, dict)
    ]
    return ike


def _new_connection(loaded, conf=None):
    conf = conf or {}
    children = conf.get("children")
    children = children if isinstance(children, dict) else {}
    return {
        "loaded": loaded,
        "local_addrs": _as_list(conf.get("local_addrs")),
        "remote_addrs": _as_list(conf.get("remote_addrs")),
        "children": sorted(children),
        "child_configs": {
            name: {
                "mode": child.get("mode"),
                "local_ts": _as_list(_get(child, "local_ts")),
                "remote_ts": _as_list(_get(child, "remote_ts")),
            }
            for name, child in children.items()
            if isinstance(child, dict)
        },
        "ike_sas": [],
    }


def _format_time(value):
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_certificate(event):
    """Turn a list-cert event into the returned certificate dict."""
    cert = {"has_private_key": to_bool(event.get("has_privkey"))}
    data = event.get("data")
    if not HAS_CRYPTOGRAPHY or not data:
        return cert
    if isinstance(data, str):
        data = data.encode("latin-1", errors="replace")
    try:
        parsed = x509.load_der_x509_certificate(data)
        not_before = getattr(parsed, "not_valid_before_utc", None) or parsed.not_valid_before
        not_after = getattr(parsed, "not_valid_after_utc", None) or parsed.not_valid_after
        details = {
            "subject": ", ".join(rdn.rfc4514_string() for rdn in parsed.subject.rdns),
            "serial": format(parsed.serial_number, "x"),
            "not_before": _format_time(not_before),
            "not_after": _format_time(not_after),
        }
    except Exception:  # unparsable blob: report what we know
        return cert
    details.update(cert)
    return details


def _cert_matches(cert, identity):
    """True if the certificate's subject is ``identity`` (a DN, or the value of its CN)."""
    subject = cert.get("subject")
    if not identity or not subject:
        return False
    if identity == subject or identity.replace(" ", "") == subject.replace(" ", ""):
        return True
    parts = {part.strip() for part in subject.split(",")}
    return identity in parts or f"CN={identity}" in parts


def _attach_certificates(connections, certificates):
    """Per connection: the loaded certificates of its local and remote identities (or None)."""
    for conn in connections.values():
        ids = conn.pop("_ids", {})
        local_id = ids.get("local") or next(
            (sa["local_id"] for sa in conn["ike_sas"] if sa.get("local_id")), None
        )
        remote_id = ids.get("remote") or next(
            (sa["remote_id"] for sa in conn["ike_sas"] if sa.get("remote_id")), None
        )
        for key, identity, own in (("certificate", local_id, True), ("peer_certificate", remote_id, False)):
            match = next(
                (c for c in certificates if _cert_matches(c, identity) and c.get("has_private_key") is own),
                None,
            )
            conn[key] = (
                {field: match.get(field) for field in ("subject", "serial", "not_before", "not_after")}
                if match
                else None
            )


def collect_status(session):
    """Query charon through ``session`` (a ViciSession) and build the module result (without ``changed``)."""
    version = session.request("version")

    connections = {}
    for event in session.streamed_request("list-conns", "list-conn"):
        for name, conf in event.items():
            if isinstance(conf, dict):
                connections[name] = _new_connection(True, conf)
                connections[name]["_ids"] = {
                    side: conf.get(f"{side}-1", {}).get("id")
                    for side in ("local", "remote")
                    if isinstance(conf.get(f"{side}-1"), dict)
                }

    ike_established = 0
    child_installed = 0
    for event in session.streamed_request("list-sas", "list-sa"):
        for name, data in event.items():
            if not isinstance(data, dict):
                continue
            ike = parse_ike_sa(data)
            if ike["state"] == "ESTABLISHED":
                ike_established += 1
            child_installed += sum(1 for child in ike["child_sas"] if child["state"] == "INSTALLED")
            if name not in connections:
                connections[name] = _new_connection(False)
            connections[name]["ike_sas"].append(ike)

    certificates = []
    for event in session.streamed_request("list-certs", "list-cert", {"type": "X509", "flag": "NONE"}):
        if event.get("type", "X509") != "X509" or event.get("flag", "NONE") != "NONE":
            continue
        certificates.append(parse_certificate(event))

    _attach_certificates(connections, certificates)
    return {
        "connections": connections,
        "sa_count": {"ike_established": ike_established, "child_installed": child_installed},
        "certificates": certificates,
        "version": {key: value for key, value in version.items() if isinstance(value, str)},
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            socket=dict(type="path", default=DEFAULT_SOCKET),
            timeout=dict(type="int", default=DEFAULT_TIMEOUT),
        ),
        supports_check_mode=True,
    )
    try:
        with ViciSession(module.params["socket"], timeout=module.params["timeout"]) as session:
            result = collect_status(session)
    except ViciConnectionError as exc:
        module.fail_json(msg=str(exc))
    except ViciError as exc:
        module.fail_json(msg=f"querying charon over VICI failed: {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
