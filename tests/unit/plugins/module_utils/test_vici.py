from __future__ import annotations

import struct
import time

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils import vici
from ansible_collections.ikemesh.mesh.plugins.module_utils.vici import (
    ViciCommandError,
    ViciConnectionError,
    ViciError,
    ViciProtocolError,
    ViciSession,
    ViciTimeoutError,
    decode_message,
    decode_packet,
    encode_message,
    encode_packet,
)
from ansible_collections.ikemesh.mesh.tests.unit.plugins.module_utils.vici_fake_charon import (
    FakeCharon,
    make_ike_sa,
)

# The encoding example from strongSwan's src/libcharon/plugins/vici/README.md
README_EXAMPLE = bytes(
    [3, 4]
    + list(b"key1")
    + [0, 6]
    + list(b"value1")
    + [1, 8]
    + list(b"section1")
    + [1, 11]
    + list(b"sub-section")
    + [3, 4]
    + list(b"key2")
    + [0, 6]
    + list(b"value2")
    + [2]
    + [4, 5]
    + list(b"list1")
    + [5, 0, 5]
    + list(b"item1")
    + [5, 0, 5]
    + list(b"item2")
    + [6]
    + [2]
)
README_STRUCT = {
    "key1": "value1",
    "section1": {"sub-section": {"key2": "value2"}, "list1": ["item1", "item2"]},
}


@pytest.fixture
def charon(tmp_path):
    with FakeCharon(tmp_path / "c.vici") as fake:
        yield fake


def test_encode_readme_example():
    assert encode_message(README_STRUCT) == README_EXAMPLE


def test_decode_readme_example():
    assert decode_message(README_EXAMPLE) == README_STRUCT


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"a": ""},
        {"empty-list": [], "empty-section": {}},
        {"l": ["", "x", ""]},
        {"deep": {"er": {"est": {"k": "v", "l": ["1", "2"]}}, "sibling": "s"}, "top": "t"},
        {"unicode": "Grüße ✓", "CN": "CN=node1, O=ikemesh"},
        {"conn": {"children": {"c1": {"local-ts": ["10.0.0.0/24"], "mode": "tunnel"}}, "version": "2"}},
    ],
)
def test_round_trip(message):
    assert decode_message(encode_message(message)) == message


def test_encode_value_types():
    encoded = encode_message(
        {"b": True, "n": False, "i": 42, "raw": b"\x00\xff", "skip": None, "t": ("1", 2)}
    )
    assert decode_message(encoded, binary_keys={"raw"}) == {
        "b": "yes",
        "n": "no",
        "i": "42",
        "raw": b"\x00\xff",
        "t": ["1", "2"],
    }


def test_data_stays_bytes_other_values_replace():
    blob = bytes(range(256))
    message = encode_message({"data": blob, "text": b"ok\xff"})
    decoded = decode_message(message)
    assert decoded["data"] == blob
    assert decoded["text"] == "ok\ufffd"
    assert decode_message(message, binary_keys=())["data"] == blob.decode("utf-8", errors="replace")


def test_large_value():
    value = "x" * 65535
    assert decode_message(encode_message({"k": value})) == {"k": value}
    with pytest.raises(ValueError):
        encode_message({"k": value + "x"})


@pytest.mark.parametrize(
    "message",
    [{"l": [["nested"]]}, {"l": [{"k": "v"}]}, {"x" * 256: "v"}, {"": "v"}, {"k": object()}],
)
def test_encode_invalid(message):
    with pytest.raises(ValueError):
        encode_message(message)


@pytest.mark.parametrize(
    "data",
    [
        b"\x03\x04key",  # truncated name
        b"\x03\x01k\x00\x05abc",  # truncated value
        b"\x01\x01s",  # unterminated section
        b"\x02",  # unbalanced end
        b"\x04\x01l\x05\x00\x01a",  # unterminated list
        b"\x04\x01l\x03\x01k\x00\x00\x06",  # key/value in a list
        b"\x05\x00\x00",  # item outside list
        b"\x06",  # list end outside list
        b"\x09",  # unknown element
    ],
)
def test_decode_invalid(data):
    with pytest.raises(ViciProtocolError):
        decode_message(data)


def test_packet_framing():
    packet = encode_packet(vici.CMD_REQUEST, "version")
    assert packet == struct.pack("!I", 9) + b"\x00\x07version"
    assert decode_packet(packet[4:]) == (vici.CMD_REQUEST, "version", b"")

    packet = encode_packet(vici.CMD_RESPONSE, message={"a": "b"})
    assert packet[4] == vici.CMD_RESPONSE
    assert decode_packet(packet[4:]) == (vici.CMD_RESPONSE, None, b"\x03\x01a\x00\x01b")

    with pytest.raises(ValueError):
        encode_packet(vici.EVENT_REGISTER)
    with pytest.raises(ViciProtocolError):
        decode_packet(b"")
    with pytest.raises(ViciProtocolError):
        decode_packet(b"\x07\x09abc")


def test_request_version(charon):
    with ViciSession(charon.path, timeout=5) as session:
        assert session.request("version")["version"] == "5.9.8"
        # the connection is reusable
        assert session.request("version")["daemon"] == "charon-systemd"
    assert [command for command, _msg in charon.requests] == ["version", "version"]


def test_request_sends_message(charon):
    charon.conns = {"node2": {"local_addrs": ["192.0.2.1"]}, "node3": {}}
    with ViciSession(charon.path, timeout=5) as session:
        events = session.streamed_request("list-conns", "list-conn", {"ike": "node2"})
    assert events == [{"node2": {"local_addrs": ["192.0.2.1"]}}]
    assert charon.requests == [("list-conns", {"ike": "node2"})]


def test_streamed_request_registers_and_unregisters(charon):
    charon.sas = [make_ike_sa("node2", 1, children=[("node2", "INSTALLED")]), make_ike_sa("node3", 2)]
    with ViciSession(charon.path, timeout=5) as session:
        events = session.streamed_request("list-sas", "list-sa")
        assert [list(event) for event in events] == [["node2"], ["node3"]]
        assert events[0]["node2"]["child-sas"]["node2-100"]["local-ts"] == ["10.0.0.1/32"]
        # after unregistering, no events are delivered any more
        assert session.request("list-sas") == {}
    assert charon.registrations == [("register", "list-sa"), ("unregister", "list-sa")]


def test_empty_stream(charon):
    with ViciSession(charon.path, timeout=5) as session:
        assert session.streamed_request("list-certs", "list-cert", {"type": "X509"}) == []


def test_command_error(charon):
    with ViciSession(charon.path, timeout=5) as session:
        with pytest.raises(ViciCommandError) as excinfo:
            session.request("fail")
        assert excinfo.value.errmsg == "it broke"
        assert "it broke" in str(excinfo.value)
        assert session.request("fail", check=False) == {"success": "no", "errmsg": "it broke"}
        assert session.request("version")["version"] == "5.9.8"


def test_streamed_error_keeps_events(charon):
    charon.conns = {"node2": {}}
    charon.initiate_outcomes = {"node2/node2": ["fail"]}
    with ViciSession(charon.path, timeout=5) as session:
        with pytest.raises(ViciCommandError) as excinfo:
            session.streamed_request("initiate", "control-log", {"ike": "node2", "child": "node2"})
        assert [event["msg"] for event in excinfo.value.events] == [
            "initiating node2/node2",
            "giving up after 5 retransmits",
        ]
        # unregistered despite the error
        assert charon.registrations[-1] == ("unregister", "control-log")
        assert session.streamed_request("initiate", "control-log", {"ike": "node2", "child": "node2"})


def test_unknown_command(charon):
    with (
        ViciSession(charon.path, timeout=5) as session,
        pytest.raises(ViciProtocolError, match="does not know the command 'bogus'"),
    ):
        session.request("bogus")


def test_unknown_event(charon):
    with (
        ViciSession(charon.path, timeout=5) as session,
        pytest.raises(ViciProtocolError, match="does not know the event 'bogus'"),
    ):
        session.streamed_request("list-sas", "bogus")


def test_timeout_and_reconnect(charon):
    session = ViciSession(charon.path, timeout=5)
    start = time.monotonic()
    with pytest.raises(ViciTimeoutError):
        session.request("hang", timeout=0.3)
    assert time.monotonic() - start < 3
    # the broken connection was dropped, the next request reconnects
    assert session.request("version")["version"] == "5.9.8"
    session.close()


def test_missing_socket(tmp_path):
    path = str(tmp_path / "nothere.vici")
    with (
        pytest.raises(
            ViciConnectionError, match="charon is not running or VICI socket .*nothere.vici not found"
        ),
        ViciSession(path, timeout=1),
    ):
        pass


def test_stale_socket_file(tmp_path):
    import socket

    path = str(tmp_path / "stale.vici")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()  # file exists, nobody listens
    with pytest.raises(ViciConnectionError, match="charon is not running"):
        ViciSession(path, timeout=1).request("version")


def test_errors_share_base_class():
    for cls in (ViciCommandError, ViciConnectionError, ViciProtocolError, ViciTimeoutError):
        assert issubclass(cls, ViciError)
