from __future__ import annotations

import datetime
import json

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils.vici import ViciSession
from ansible_collections.ikemesh.mesh.plugins.modules import mesh_status
from ansible_collections.ikemesh.mesh.tests.unit.plugins.module_utils.vici_fake_charon import (
    FakeCharon,
    make_ike_sa,
)
from ansible_collections.ikemesh.mesh.tests.unit.plugins.modules.module_harness import (
    AnsibleExitJson,
    AnsibleFailJson,
    patch_module_args,
)


def make_cert_der(cn="node1", serial=0x1A2B3C):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikemesh"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
        .not_valid_after(datetime.datetime(2026, 1, 1, 12, 30, tzinfo=datetime.timezone.utc))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def charon(tmp_path):
    with FakeCharon(tmp_path / "c.vici") as fake:
        fake.conns = {
            "node2": {
                "local_addrs": ["192.0.2.1"],
                "remote_addrs": ["192.0.2.2"],
                "version": "IKEv2",
                "local-1": {"class": "public key", "id": "CN=node1"},
                "children": {"node2": {"mode": "TUNNEL", "local-ts": ["10.0.0.1/32"]}},
            },
            "node3": {"local_addrs": ["%any"], "remote_addrs": ["192.0.2.3"], "children": {"node3": {}}},
        }
        fake.sas = [
            make_ike_sa("node2", 1, children=[("node2", "INSTALLED")], **{"nat-remote": "yes"}),
            make_ike_sa("old-peer", 7, children=[("old-peer", "INSTALLED"), ("old-peer", "REKEYED")]),
            make_ike_sa("node3", 9, state="CONNECTING", **{"rekey-time": "", "initiator": "no"}),
        ]
        fake.certs = [
            {"type": "X509", "flag": "NONE", "has_privkey": "yes", "data": make_cert_der()},
            {"type": "X509", "flag": "CA", "data": make_cert_der("ca", 1)},
            {"type": "X509", "flag": "NONE", "data": make_cert_der("node2", 0xABCDEF0123)},
        ]
        yield fake


def test_collect_status(charon):
    with ViciSession(charon.path, timeout=5) as session:
        result = mesh_status.collect_status(session)

    assert result["version"]["version"] == "5.9.8"
    assert result["sa_count"] == {"ike_established": 2, "child_installed": 2}

    conns = result["connections"]
    assert sorted(conns) == ["node2", "node3", "old-peer"]
    node2 = conns["node2"]
    assert node2["loaded"] is True
    assert node2["local_addrs"] == ["192.0.2.1"]
    assert node2["remote_addrs"] == ["192.0.2.2"]
    assert node2["children"] == ["node2"]
    [ike] = node2["ike_sas"]
    assert ike == {
        "uniqueid": 1,
        "state": "ESTABLISHED",
        "local_host": "192.0.2.1",
        "local_port": 500,
        "remote_host": "192.0.2.2",
        "remote_port": 500,
        "local_id": "CN=node1",
        "remote_id": "CN=node2",
        "initiator": True,
        "nat_local": False,
        "nat_remote": True,
        "encr_alg": "AES_GCM_16",
        "encr_keysize": 256,
        "integ_alg": None,
        "prf_alg": "PRF_HMAC_SHA2_384",
        "dh_group": "CURVE_25519",
        "established": 120,
        "rekey_time": 13000,
        "reauth_time": None,
        "child_sas": [
            {
                "name": "node2",
                "uniqueid": 100,
                "reqid": 1,
                "state": "INSTALLED",
                "mode": "TUNNEL",
                "protocol": "ESP",
                "encap": False,
                "encr_alg": "AES_GCM_16",
                "encr_keysize": 256,
                "integ_alg": None,
                "bytes_in": 1234,
                "bytes_out": 2345,
                "packets_in": 12,
                "packets_out": 23,
                "install_time": 120,
                "rekey_time": 3200,
                "life_time": 3600,
                "local_ts": ["10.0.0.1/32"],
                "remote_ts": ["10.0.0.2/32"],
                "spi_in": "c1a2b3c4",
                "spi_out": "d1a2b3c4",
                "if_id_in": None,
                "if_id_out": None,
            }
        ],
    }

    node3 = conns["node3"]
    assert node3["loaded"] is True
    assert node3["ike_sas"][0]["state"] == "CONNECTING"
    assert node3["ike_sas"][0]["rekey_time"] is None
    assert node3["ike_sas"][0]["initiator"] is False
    assert node3["ike_sas"][0]["child_sas"] == []

    old = conns["old-peer"]
    assert old["loaded"] is False
    assert old["local_addrs"] == [] and old["remote_addrs"] == [] and old["children"] == []
    assert [child["state"] for child in old["ike_sas"][0]["child_sas"]] == ["INSTALLED", "REKEYED"]

    assert result["certificates"] == [
        {
            "subject": "O=ikemesh, CN=node1",
            "serial": "1a2b3c",
            "not_before": "2024-01-01T00:00:00Z",
            "not_after": "2026-01-01T12:30:00Z",
            "has_private_key": True,
        },
        {
            "subject": "O=ikemesh, CN=node2",
            "serial": "abcdef0123",
            "not_before": "2024-01-01T00:00:00Z",
            "not_after": "2026-01-01T12:30:00Z",
            "has_private_key": False,
        },
    ]
    assert ("list-certs", {"type": "X509", "flag": "NONE"}) in charon.requests
    # the result must be JSON serializable (no bytes)
    json.dumps(result)


def test_child_if_ids_and_encap():
    child = mesh_status.parse_child_sa(
        "mesh-3", {"uniqueid": "3", "encap": "yes", "if-id-in": "0000002a", "if-id-out": "0000002b"}
    )
    assert child["name"] == "mesh-3"
    assert child["encap"] is True
    assert (child["if_id_in"], child["if_id_out"]) == (42, 43)
    assert child["bytes_in"] is None and child["local_ts"] == []


def test_certificates_without_cryptography(charon, monkeypatch):
    monkeypatch.setattr(mesh_status, "HAS_CRYPTOGRAPHY", False)
    with ViciSession(charon.path, timeout=5) as session:
        result = mesh_status.collect_status(session)
    assert result["certificates"] == [{"has_private_key": True}, {"has_private_key": False}]


def test_unparsable_certificate():
    assert mesh_status.parse_certificate({"type": "X509", "data": b"garbage"}) == {"has_private_key": False}


def test_main(charon, module_patches):
    with (
        patch_module_args({"socket": charon.path, "timeout": 5, "_ansible_check_mode": True}),
        pytest.raises(AnsibleExitJson) as excinfo,
    ):
        mesh_status.main()
    result = excinfo.value.args[0]
    assert result["changed"] is False
    assert result["sa_count"] == {"ike_established": 2, "child_installed": 2}
    assert result["connections"]["old-peer"]["loaded"] is False
    assert len(result["certificates"]) == 2


def test_main_no_charon(tmp_path, module_patches):
    path = str(tmp_path / "missing.vici")
    with patch_module_args({"socket": path}), pytest.raises(AnsibleFailJson) as excinfo:
        mesh_status.main()
    msg = excinfo.value.args[0]["msg"]
    assert f"charon is not running or VICI socket {path} not found" in msg


def test_child_configs_and_certificates_per_connection(charon):
    charon.conns["node2"]["remote-1"] = {"class": "public key", "id": "node2"}
    with ViciSession(charon.path, timeout=5) as session:
        conns = mesh_status.collect_status(session)["connections"]

    node2 = conns["node2"]
    assert node2["child_configs"] == {
        "node2": {"mode": "TUNNEL", "local_ts": ["10.0.0.1/32"], "remote_ts": []}
    }
    assert node2["certificate"] == {
        "subject": "O=ikemesh, CN=node1",
        "serial": "1a2b3c",
        "not_before": "2024-01-01T00:00:00Z",
        "not_after": "2026-01-01T12:30:00Z",
    }
    assert node2["peer_certificate"]["serial"] == "abcdef0123"
    assert "_ids" not in node2
    assert conns["node3"]["child_configs"] == {"node3": {"mode": None, "local_ts": [], "remote_ts": []}}
    assert conns["old-peer"]["child_configs"] == {} and conns["old-peer"]["peer_certificate"] is None
