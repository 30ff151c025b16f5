# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tunnel MTU and TCP MSS arithmetic for ESP (pure Python, no Ansible imports).

ESP packet layout on the wire (RFC 4303, RFC 3948 for NAT-T)::

    [outer IP] [UDP 8, NAT-T only] [SPI 4 + seq 4] [IV] [payload][padding][pad len 1][next hdr 1] [ICV]

* outer IP header: 20 bytes (IPv4) or 40 bytes (IPv6) in tunnel mode; in transport mode the inner
  IP header is reused as the outer one, so it adds nothing (but it is not part of the encrypted payload);
* payload + 2-byte trailer is padded to the cipher's block alignment: 4 bytes for AES-GCM and
  ChaCha20-Poly1305 (stream-like AEADs, RFC 4106 / RFC 7634), 16 bytes for AES-CBC;
* IV: 8 bytes for AES-GCM and ChaCha20-Poly1305, 16 bytes for AES-CBC;
* ICV: 16 bytes for the AEADs; for AES-CBC the truncated HMAC: SHA-256 16, SHA-384 24, SHA-512 32.

Worked example: 1500-byte underlay, IPv4, AES-GCM, NAT-T (UDP encapsulation, e.g. libipsec or a NAT
in the path), tunnel mode::

    fixed overhead = 20 (outer IPv4) + 8 (UDP) + 8 (SPI+seq) + 8 (IV) + 16 (ICV) = 60
    room for the padded payload = 1500 - 60 = 1440 (already a multiple of 4)
    largest payload = 1440 - 2 (pad length + next header) = 1438
    tunnel_mtu(1500, udp_encap=True) == 1438, tcp_mss(1438) == 1398
    esp_wire_size(1438, udp_encap=True) == 20 + 8 + 8 + 8 + (1438 + 2 -> 1440) + 16 == 1500

Without NAT-T the UDP header disappears: tunnel_mtu(1500) == 1446 (tcp_mss 1406).  libipsec's
ipsec0 TUN device has a fixed MTU of 1400, hence max_mtu=1400 for that backend; a 1400-byte inner
packet is then 20 + 8 + 8 + 8 + 1404 + 16 = 1464 bytes on the wire (measured in the lab).
"""

from __future__ import annotations

__all__ = ["CIPHERS", "esp_wire_size", "tcp_mss", "tunnel_mtu"]

# cipher name -> (IV bytes, ICV bytes, padding alignment)
CIPHERS = {
    "aes-gcm": (8, 16, 4),
    "chacha20-poly1305": (8, 16, 4),
    "aes-cbc-sha256": (16, 16, 16),
    "aes-cbc-sha384": (16, 24, 16),
    "aes-cbc-sha512": (16, 32, 16),
}

_IP_HEADER = {4: 20, 6: 40}
_MIN_MTU = {4: 68, 6: 1280}
_UDP_HEADER = 8
_ESP_HEADER = 8  # SPI + sequence number
_ESP_TRAILER = 2  # pad length + next header


def _check_int(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_version(name, value):
    if value not in _IP_HEADER:
        raise ValueError(f"{name} must be 4 or 6, got {value!r}")
    return value


def _cipher(cipher):
    try:
        return CIPHERS[cipher]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cipher {cipher!r}; expected one of {', '.join(sorted(CIPHERS))}") from None


def _overheads(underlay_ip_version, overlay_ip_version, cipher, mode, udp_encap, extra_encap):
    """Return (bytes outside the padded block, bytes of the inner packet outside the ESP payload, align).

    The second value is the part of the inner packet that is not encrypted payload: in transport mode
    the (reused) IP header of the packet, in tunnel mode nothing.
    """
    _check_version("underlay_ip_version", underlay_ip_version)
    _check_version("overlay_ip_version", overlay_ip_version)
    _check_int("extra_encap", extra_encap)
    iv, icv, align = _cipher(cipher)
    if mode == "tunnel":
        outer, reused = _IP_HEADER[underlay_ip_version], 0
    elif mode == "transport":
        # The packet handed to ESP is an underlay packet; its IP header becomes the outer header.
        outer = reused = _IP_HEADER[underlay_ip_version]
    else:
        raise ValueError(f"unknown ESP mode {mode!r}; expected 'tunnel' or 'transport'")
    fixed = outer + (_UDP_HEADER if udp_encap else 0) + _ESP_HEADER + iv + icv
    return fixed, reused, align


def esp_wire_size(
    inner_size,
    underlay_ip_version=4,
    overlay_ip_version=4,
    cipher="aes-gcm",
    mode="tunnel",
    udp_encap=False,
    extra_encap=0,
):
    """Size in bytes on the underlay wire of an ESP packet carrying an inner packet of inner_size bytes.

    extra_encap bytes (e.g. 50 for VXLAN over IPv4) are added to the inner packet before ESP.
    """
    _check_int("inner_size", inner_size, 1)
    fixed, reused, align = _overheads(
        underlay_ip_version, overlay_ip_version, cipher, mode, udp_encap, extra_encap
    )
    payload = inner_size + extra_encap - reused
    if payload < 0:
        raise ValueError(f"inner_size {inner_size} is smaller than the reused IP header")
    padded = -(-(payload + _ESP_TRAILER) // align) * align
    return fixed + padded


def tunnel_mtu(
    underlay_mtu=1500,
    underlay_ip_version=4,
    overlay_ip_version=4,
    cipher="aes-gcm",
    mode="tunnel",
    udp_encap=False,
    extra_encap=0,
    max_mtu=None,
):
    """Largest inner packet that fits into one underlay packet of underlay_mtu bytes (no fragmentation).

    This is the largest x with esp_wire_size(x, ...) <= underlay_mtu, minus nothing else: extra_encap is
    already accounted for, so the result is the MTU of the inner interface (e.g. the VXLAN device).
    The ESP payload (inner packet plus extra_encap) is capped at max_mtu when given.  Raises ValueError
    for bad arguments or when the result would be below
    the minimum MTU of the overlay IP version (68 for IPv4, 1280 for IPv6).
    """
    _check_int("underlay_mtu", underlay_mtu, 1)
    fixed, reused, align = _overheads(
        underlay_ip_version, overlay_ip_version, cipher, mode, udp_encap, extra_encap
    )
    room = (underlay_mtu - fixed) // align * align
    payload = room - _ESP_TRAILER + reused
    if max_mtu is not None:
        # the cap is the MTU of the device ESP reads from (libipsec's ipsec0), which carries the
        # extra encapsulation too, so it applies before that is subtracted
        _check_int("max_mtu", max_mtu, 1)
        payload = min(payload, max_mtu)
    mtu = payload - extra_encap
    minimum = _MIN_MTU[overlay_ip_version]
    if mtu < minimum:
        raise ValueError(
            f"underlay MTU {underlay_mtu} leaves an inner MTU of {mtu}, below the IPv{overlay_ip_version} "
            f"minimum of {minimum}; raise the underlay MTU or reduce the encapsulation overhead"
        )
    return mtu


def tcp_mss(mtu, ip_version=4):
    """TCP MSS for an interface MTU: MTU minus IP (20 or 40) and TCP (20) headers."""
    _check_int("mtu", mtu, 1)
    _check_version("ip_version", ip_version)
    mss = mtu - _IP_HEADER[ip_version] - 20
    if mss <= 0:
        raise ValueError(f"MTU {mtu} is too small to carry TCP over IPv{ip_version}")
    return mss
