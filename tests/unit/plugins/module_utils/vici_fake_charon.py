"""A fake charon speaking the VICI protocol on a real unix socket, for unit tests.

Import as ``ansible_collections.ikemesh.mesh.tests.unit.plugins.module_utils.vici_fake_charon``.
Packets are built by hand here (only the message body codec of the module
under test is reused), so the transport framing is tested independently.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading

from ansible_collections.ikemesh.mesh.plugins.module_utils.vici import decode_message, encode_message

CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = 3, 4, 5, 6, 7

KNOWN_EVENTS = {"list-sa", "list-conn", "list-cert", "control-log", "log", "ike-updown", "child-updown"}


def make_ike_sa(name, uniqueid=1, state="ESTABLISHED", children=None, **extra):
    """Build a list-sa event message like charon 5.9 does (child-sas keyed '<name>-<uniqueid>')."""
    sa = {
        "uniqueid": str(uniqueid),
        "version": "2",
        "state": state,
        "local-host": "192.0.2.1",
        "local-port": "500",
        "local-id": "CN=node1",
        "remote-host": "192.0.2.2",
        "remote-port": "500",
        "remote-id": f"CN={name}",
        "initiator": "yes",
        "initiator-spi": "1122334455667788",
        "responder-spi": "8877665544332211",
        "encr-alg": "AES_GCM_16",
        "encr-keysize": "256",
        "prf-alg": "PRF_HMAC_SHA2_384",
        "dh-group": "CURVE_25519",
        "established": "120",
        "rekey-time": "13000",
        "child-sas": {},
    }
    for index, (child, child_state) in enumerate(children or []):
        child_id = uniqueid * 100 + index
        sa["child-sas"][f"{child}-{child_id}"] = {
            "name": child,
            "uniqueid": str(child_id),
            "reqid": str(index + 1),
            "state": child_state,
            "mode": "TUNNEL",
            "protocol": "ESP",
            "spi-in": "c1a2b3c4",
            "spi-out": "d1a2b3c4",
            "encr-alg": "AES_GCM_16",
            "encr-keysize": "256",
            "bytes-in": "1234",
            "packets-in": "12",
            "bytes-out": "2345",
            "packets-out": "23",
            "rekey-time": "3200",
            "life-time": "3600",
            "install-time": "120",
            "local-ts": ["10.0.0.1/32"],
            "remote-ts": ["10.0.0.2/32"],
        }
    sa.update(extra)
    return {name: sa}


class FakeCharon:
    """Serve VICI on ``path`` from a background thread.

    * ``conns``: dict name -> list-conn section
    * ``sas``: list of list-sa event messages (see make_ike_sa)
    * ``certs``: list of list-cert event messages
    * ``initiate_outcomes``: dict "ike/child" -> list of outcomes consumed per
      initiate: "ok" (adds an established SA), "fail", "hang" (no answer),
      "up-anyway" (fails, but the SA shows up, e.g. initiated by the peer).
      When the list is empty, initiate succeeds.
    * ``requests``: log of (command, message) received.
    """

    def __init__(self, path):
        self.path = str(path)
        self.version = {
            "daemon": "charon-systemd",
            "version": "5.9.8",
            "sysname": "Linux",
            "release": "6.1.0",
            "machine": "x86_64",
        }
        self.conns = {}
        self.sas = []
        self.certs = []
        self.initiate_outcomes = {}
        self.requests = []
        self.registrations = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(8)
        self._server.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._clients = []

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._server.close()
        for client in self._clients:
            client.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # -- transport ------------------------------------------------------------

    def _serve(self):
        while not self._stop.is_set():
            try:
                client, _addr = self._server.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(0.2)
            self._clients.append(client)
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _recv_exact(self, client, length):
        data = b""
        while len(data) < length:
            try:
                chunk = client.recv(length - len(data))
            except socket.timeout:
                if self._stop.is_set():
                    return None
                continue
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    @staticmethod
    def _send(client, packet_type, name=None, message=None):
        payload = bytes([packet_type])
        if name is not None:
            raw = name.encode()
            payload += bytes([len(raw)]) + raw
        if message:
            payload += encode_message(message)
        with contextlib.suppress(OSError):
            client.sendall(struct.pack("!I", len(payload)) + payload)

    def _handle(self, client):
        registered = set()
        while not self._stop.is_set():
            header = self._recv_exact(client, 4)
            if header is None:
                return
            payload = self._recv_exact(client, struct.unpack("!I", header)[0])
            if payload is None:
                return
            ptype = payload[0]
            name = payload[2 : 2 + payload[1]].decode()
            body = payload[2 + payload[1] :]
            if ptype == EVENT_REGISTER:
                self.registrations.append(("register", name))
                if name in KNOWN_EVENTS:
                    registered.add(name)
                    self._send(client, EVENT_CONFIRM)
                else:
                    self._send(client, EVENT_UNKNOWN)
            elif ptype == EVENT_UNREGISTER:
                self.registrations.append(("unregister", name))
                registered.discard(name)
                self._send(client, EVENT_CONFIRM)
            elif ptype == CMD_REQUEST:
                message = decode_message(body)
                with self._lock:
                    self.requests.append((name, message))
                if self._command(client, registered, name, message) == "hang":
                    continue
            else:
                return

    # -- commands -------------------------------------------------------------

    def _event(self, client, registered, event, message):
        if event in registered:
            self._send(client, EVENT, event, message)

    def _command(self, client, registered, command, message):
        if command == "version":
            self._send(client, CMD_RESPONSE, message=self.version)
        elif command == "list-conns":
            for name, conf in self.conns.items():
                if message.get("ike") in (None, name):
                    self._event(client, registered, "list-conn", {name: conf})
            self._send(client, CMD_RESPONSE)
        elif command == "list-sas":
            for sa in list(self.sas):
                if message.get("ike") in (None, *sa):
                    self._event(client, registered, "list-sa", sa)
            self._send(client, CMD_RESPONSE)
        elif command == "list-certs":
            for cert in self.certs:
                if message.get("type", "ANY") in ("ANY", cert.get("type")) and message.get("flag", "ANY") in (
                    "ANY",
                    cert.get("flag"),
                ):
                    self._event(client, registered, "list-cert", cert)
            self._send(client, CMD_RESPONSE)
        elif command == "initiate":
            return self._initiate(client, registered, message)
        elif command == "fail":
            self._send(client, CMD_RESPONSE, message={"success": "no", "errmsg": "it broke"})
        elif command == "hang":
            return "hang"
        else:
            self._send(client, CMD_UNKNOWN)
        return None

    def _initiate(self, client, registered, message):
        ike, child = message.get("ike"), message.get("child")
        key = f"{ike}/{child}"
        outcomes = self.initiate_outcomes.get(key) or []
        outcome = outcomes.pop(0) if outcomes else "ok"
        if outcome == "hang":
            return "hang"
        self._event(
            client, registered, "control-log", {"group": "IKE", "level": "1", "msg": f"initiating {key}"}
        )
        if ike not in self.conns:
            self._send(
                client,
                CMD_RESPONSE,
                message={"success": "no", "errmsg": f"CHILD_SA config '{child}' not found"},
            )
        elif outcome == "ok":
            self.sas.append(make_ike_sa(ike, uniqueid=len(self.sas) + 10, children=[(child, "INSTALLED")]))
            self._event(
                client, registered, "control-log", {"group": "CHD", "level": "0", "msg": "CHILD_SA up"}
            )
            self._send(client, CMD_RESPONSE, message={"success": "yes"})
        else:
            if outcome == "up-anyway":
                self.sas.append(
                    make_ike_sa(ike, uniqueid=len(self.sas) + 10, children=[(child, "INSTALLED")])
                )
            self._event(
                client,
                registered,
                "control-log",
                {"group": "IKE", "level": "1", "msg": "giving up after 5 retransmits"},
            )
            self._send(
                client,
                CMD_RESPONSE,
                message={"success": "no", "errmsg": f"establishing CHILD_SA '{child}' failed"},
            )
        return None
