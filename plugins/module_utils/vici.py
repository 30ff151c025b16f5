# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Minimal, dependency-free client for strongSwan's VICI protocol.

Only the Python standard library is used, so this works on nodes where the
``vici`` Python package is not installed. Protocol reference:
src/libcharon/plugins/vici/README.md in the strongSwan source tree.

Messages are represented as plain Python objects:

* sections -> ``dict``
* key/values -> ``str`` (decoded as UTF-8 with ``errors="replace"``), except
  keys listed in ``binary_keys`` (default: ``data``, i.e. certificate blobs)
  which stay ``bytes``
* lists -> ``list`` of ``str``

When encoding, ``str``/``bytes`` are sent as-is, ``bool`` becomes ``yes``/``no``,
``int`` is sent in decimal, ``None`` values are skipped.
"""

from __future__ import annotations

import errno
import socket
import struct

DEFAULT_SOCKET = "/var/run/charon.vici"
DEFAULT_TIMEOUT = 30

# Packet types
CMD_REQUEST = 0
CMD_RESPONSE = 1
CMD_UNKNOWN = 2
EVENT_REGISTER = 3
EVENT_UNREGISTER = 4
EVENT_CONFIRM = 5
EVENT_UNKNOWN = 6
EVENT = 7

NAMED_PACKET_TYPES = frozenset((CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT))

# Message element types
SECTION_START = 1
SECTION_END = 2
KEY_VALUE = 3
LIST_START = 4
LIST_ITEM = 5
LIST_END = 6

# The vici plugin limits a transport segment to 512 KiB of data.
MAX_SEGMENT = 512 * 1024

BINARY_KEYS = frozenset(("data",))


class ViciError(Exception):
    """Base class of all errors raised by this module."""


class ViciConnectionError(ViciError):
    """The VICI socket is missing, refuses connections, or the connection broke."""


class ViciTimeoutError(ViciError):
    """charon did not answer within the socket timeout."""


class ViciProtocolError(ViciError):
    """Malformed data, unexpected packet types, unknown commands or events."""


class ViciCommandError(ViciError):
    """A command returned ``success = no``.

    ``errmsg`` is charon's error message, ``response`` the full decoded
    response and ``events`` the events streamed before the response (e.g.
    ``control-log`` lines of an ``initiate``).
    """

    def __init__(self, command, errmsg, response=None, events=None):
        self.command = command
        self.errmsg = errmsg
        self.response = response if response is not None else {}
        self.events = events if events is not None else []
        super().__init__(f"command '{command}' failed: {errmsg}")


# ---------------------------------------------------------------------------
# Message encoding
# ---------------------------------------------------------------------------


def _to_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, bool):
        return b"yes" if value else b"no"
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int):
        return str(value).encode("ascii")
    raise ValueError(f"unsupported VICI value type {type(value).__name__}")


def _encode_name(name):
    raw = name.encode("utf-8") if isinstance(name, str) else bytes(name)
    if not raw or len(raw) > 255:
        raise ValueError(f"VICI element name must be 1..255 bytes long: {name!r}")
    return struct.pack("!B", len(raw)) + raw


def _encode_value(value):
    raw = _to_bytes(value)
    if len(raw) > 0xFFFF:
        raise ValueError("VICI value longer than 65535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _encode_section(message, out):
    for key, value in message.items():
        if value is None:
            continue
        if isinstance(value, dict):
            out.append(struct.pack("!B", SECTION_START) + _encode_name(key))
            _encode_section(value, out)
            out.append(struct.pack("!B", SECTION_END))
        elif isinstance(value, (list, tuple)):
            out.append(struct.pack("!B", LIST_START) + _encode_name(key))
            for item in value:
                if isinstance(item, (dict, list, tuple)):
                    raise ValueError(f"VICI list items must be scalar values (key {key!r})")
                out.append(struct.pack("!B", LIST_ITEM) + _encode_value(item))
            out.append(struct.pack("!B", LIST_END))
        else:
            out.append(struct.pack("!B", KEY_VALUE) + _encode_name(key) + _encode_value(value))


def encode_message(message):
    """Encode a (possibly nested) dict as a VICI message body."""
    if not message:
        return b""
    if not isinstance(message, dict):
        raise ValueError("a VICI message must be a dict")
    out = []
    _encode_section(message, out)
    return b"".join(out)


# ---------------------------------------------------------------------------
# Message decoding
# ---------------------------------------------------------------------------


class _Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, length):
        if self.pos + length > len(self.data):
            raise ViciProtocolError("truncated VICI message")
        chunk = self.data[self.pos : self.pos + length]
        self.pos += length
        return chunk

    def u8(self):
        return self.take(1)[0]

    def name(self):
        return self.take(self.u8()).decode("utf-8", errors="replace")

    def value(self):
        (length,) = struct.unpack("!H", self.take(2))
        return self.take(length)


def _decode_value(key, raw, binary_keys):
    if key in binary_keys:
        return raw
    return raw.decode("utf-8", errors="replace")


def decode_message(data, binary_keys=BINARY_KEYS):
    """Decode a VICI message body into a nested dict.

    Values of keys in ``binary_keys`` are kept as ``bytes``, all other values
    are decoded as UTF-8 strings.
    """
    reader = _Reader(data)
    root = {}
    stack = [root]
    current_list = None
    while reader.remaining():
        element = reader.u8()
        if current_list is not None and element not in (LIST_ITEM, LIST_END):
            raise ViciProtocolError(f"unexpected element {element} inside a list")
        if element == SECTION_START:
            section = {}
            stack[-1][reader.name()] = section
            stack.append(section)
        elif element == SECTION_END:
            if len(stack) == 1:
                raise ViciProtocolError("unbalanced SECTION_END")
            stack.pop()
        elif element == KEY_VALUE:
            key = reader.name()
            stack[-1][key] = _decode_value(key, reader.value(), binary_keys)
        elif element == LIST_START:
            current_list = []
            stack[-1][reader.name()] = current_list
        elif element == LIST_ITEM:
            if current_list is None:
                raise ViciProtocolError("LIST_ITEM outside of a list")
            current_list.append(reader.value().decode("utf-8", errors="replace"))
        elif element == LIST_END:
            if current_list is None:
                raise ViciProtocolError("LIST_END outside of a list")
            current_list = None
        else:
            raise ViciProtocolError(f"unknown VICI element type {element}")
    if current_list is not None or len(stack) != 1:
        raise ViciProtocolError("unterminated section or list in VICI message")
    return root


# ---------------------------------------------------------------------------
# Packet layer
# ---------------------------------------------------------------------------


def encode_packet(packet_type, name=None, message=None):
    """Build one transport segment (length prefix included)."""
    payload = struct.pack("!B", packet_type)
    if packet_type in NAMED_PACKET_TYPES:
        if name is None:
            raise ValueError(f"packet type {packet_type} requires a name")
        payload += _encode_name(name)
    if isinstance(message, (bytes, bytearray)):
        payload += bytes(message)
    elif message:
        payload += encode_message(message)
    if len(payload) > MAX_SEGMENT:
        raise ValueError(f"VICI packet exceeds {MAX_SEGMENT} bytes")
    return struct.pack("!I", len(payload)) + payload


def decode_packet(payload):
    """Split a segment payload (without length prefix) into (type, name, body bytes)."""
    if not payload:
        raise ViciProtocolError("empty VICI packet")
    packet_type = payload[0]
    name = None
    pos = 1
    if packet_type in NAMED_PACKET_TYPES:
        if len(payload) < 2 or len(payload) < 2 + payload[1]:
            raise ViciProtocolError("truncated VICI packet name")
        name = payload[2 : 2 + payload[1]].decode("utf-8", errors="replace")
        pos = 2 + payload[1]
    return packet_type, name, payload[pos:]


class ViciSession:
    """A connection to charon's VICI socket.

    Usable as a context manager. The connection is opened lazily by the first
    request (or ``connect()``/``__enter__``). After a timeout or transport
    error the socket is closed; the next request reconnects.

    ``timeout`` (seconds) applies to connecting and to every single socket
    read/write, so a silent daemon never blocks forever.
    """

    def __init__(self, socket_path=DEFAULT_SOCKET, timeout=DEFAULT_TIMEOUT):
        self.socket_path = socket_path
        self.timeout = timeout
        self._sock = None

    # -- connection handling ------------------------------------------------

    def connect(self):
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise ViciConnectionError(
                f"charon is not running or VICI socket {self.socket_path} not found ({exc.strerror})"
            ) from exc
        except socket.timeout as exc:
            sock.close()
            raise ViciTimeoutError(f"timed out connecting to VICI socket {self.socket_path}") from exc
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                raise ViciConnectionError(
                    f"charon is not running or VICI socket {self.socket_path} not found ({exc})"
                ) from exc
            raise ViciConnectionError(f"cannot connect to VICI socket {self.socket_path}: {exc}") from exc
        self._sock = sock

    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False

    # -- raw transport --------------------------------------------------------

    def _send(self, packet_type, name=None, message=None):
        self.connect()
        data = encode_packet(packet_type, name, message)
        try:
            self._sock.sendall(data)
        except socket.timeout as exc:
            self.close()
            raise ViciTimeoutError(f"timed out writing to VICI socket {self.socket_path}") from exc
        except OSError as exc:
            self.close()
            raise ViciConnectionError(f"error writing to VICI socket {self.socket_path}: {exc}") from exc

    def _recv_exact(self, length):
        chunks = []
        while length:
            try:
                chunk = self._sock.recv(min(length, 65536))
            except socket.timeout as exc:
                self.close()
                raise ViciTimeoutError(
                    f"no answer from charon on {self.socket_path} within {self.timeout} seconds"
                ) from exc
            except OSError as exc:
                self.close()
                raise ViciConnectionError(
                    f"error reading from VICI socket {self.socket_path}: {exc}"
                ) from exc
            if not chunk:
                self.close()
                raise ViciConnectionError(f"charon closed the VICI connection on {self.socket_path}")
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def _recv(self):
        """Read one packet, returns (type, name, body bytes)."""
        if self._sock is None:
            raise ViciConnectionError("VICI connection is not open")
        (length,) = struct.unpack("!I", self._recv_exact(4))
        if length == 0 or length > MAX_SEGMENT:
            self.close()
            raise ViciProtocolError(f"invalid VICI segment length {length}")
        return decode_packet(self._recv_exact(length))

    def _set_timeout(self, timeout):
        if self._sock is not None:
            self._sock.settimeout(self.timeout if timeout is None else timeout)

    # -- event registration ---------------------------------------------------

    def _event_control(self, packet_type, event):
        self._send(packet_type, event)
        while True:
            ptype, _name, _body = self._recv()
            if ptype == EVENT_CONFIRM:
                return
            if ptype == EVENT_UNKNOWN:
                raise ViciProtocolError(f"charon does not know the event '{event}'")
            if ptype == EVENT:
                # an event of an earlier registration, not interesting here
                continue
            self.close()
            raise ViciProtocolError(f"unexpected packet type {ptype} while (un)registering '{event}'")

    def register(self, event):
        self._event_control(EVENT_REGISTER, event)

    def unregister(self, event):
        self._event_control(EVENT_UNREGISTER, event)

    # -- commands -------------------------------------------------------------

    def _read_response(self, command, event=None, events=None):
        while True:
            ptype, name, body = self._recv()
            if ptype == CMD_RESPONSE:
                return decode_message(body)
            if ptype == CMD_UNKNOWN:
                raise ViciProtocolError(f"charon does not know the command '{command}'")
            if ptype == EVENT:
                if events is not None and name == event:
                    events.append(decode_message(body))
                continue
            self.close()
            raise ViciProtocolError(f"unexpected packet type {ptype} in response to '{command}'")

    @staticmethod
    def _check(command, response, events=None, check=True):
        if check and response.get("success") == "no":
            raise ViciCommandError(command, response.get("errmsg", "unknown error"), response, events)
        return response

    def request(self, command, message=None, timeout=None, check=True):
        """Send a command and return the decoded response dict.

        Raises ViciCommandError if the response has ``success = no`` (unless
        ``check`` is false). ``timeout`` overrides the socket timeout for this
        command only.
        """
        self.connect()
        self._set_timeout(timeout)
        try:
            self._send(CMD_REQUEST, command, message)
            response = self._read_response(command)
        finally:
            self._set_timeout(None)
        return self._check(command, response, check=check)

    def streamed_request(self, command, event, message=None, timeout=None, check=True):
        """Send a command whose results are streamed as events.

        Registers ``event``, sends ``command``, collects all ``event`` messages
        until the command response arrives, unregisters, and returns the list
        of event messages. Raises ViciCommandError (with ``events`` attached) if
        the response has ``success = no`` and ``check`` is true.
        """
        self.connect()
        self.register(event)
        events = []
        response = None
        self._set_timeout(timeout)
        try:
            self._send(CMD_REQUEST, command, message)
            response = self._read_response(command, event, events)
        finally:
            self._set_timeout(None)
            if self._sock is not None:
                try:
                    self.unregister(event)
                except ViciError:
                    if response is not None:
                        raise
        self._check(command, response, events, check=check)
        return events
