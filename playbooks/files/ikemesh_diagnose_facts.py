#!/usr/bin/python3
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Collect a node's troubleshooting facts for playbooks/diagnose.yml; prints one JSON document.

Reads, changes nothing: the node's clock, its certificate and whether the installed CA chain signs
it, the charon log lines that name an IKE failure since a given time, the proposals of the ikemesh
connection files, the underlay interface's MTU, the route to every peer's overlay address, and
whether every peer's charon answers on UDP 500 and 4500 (an IKE_SA_INIT offering only an algorithm
set no peer accepts: charon answers NO_PROPOSAL_CHOSEN without creating anything).

Usage: ikemesh_diagnose_facts.py '<json>' with keys underlay_address, overlay_address, since (epoch),
cert, intermediate, root (paths), conf_dir, peers [{name, underlay_address, overlay_address, behind_nat}].
"""

import concurrent.futures
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

LOG_PATTERN = re.compile(
    r"received (NO_PROPOSAL_CHOSEN|AUTHENTICATION_FAILED|INVALID_ID_INFORMATION|TS_UNACCEPTABLE)"
    r"|no trusted .* public key found|certificate .* (expired|not valid)|constraint check failed"
    r"|CHILD_SA \S+ established|giving up after \d+ retransmits|retransmit \d+ of request"
)


def run(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, "", str(exc)
    return out.returncode, out.stdout, out.stderr


def certificate(paths):
    """Own certificate facts and whether intermediate -> root signs it."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    except ImportError:
        return {"error": "python3-cryptography is not installed"}

    def load(path):
        with open(path, "rb") as handle:
            data = handle.read()
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)

    def signed_by(cert, issuer):
        if cert.issuer != issuer.subject:
            return False
        key = issuer.public_key()
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(
                    cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
                )
            elif isinstance(key, rsa.RSAPublicKey):
                key.verify(
                    cert.signature,
                    cert.tbs_certificate_bytes,
                    padding.PKCS1v15(),
                    cert.signature_hash_algorithm,
                )
            else:
                key.verify(cert.signature, cert.tbs_certificate_bytes)
        except Exception:
            return False
        return True

    def epoch(cert, name):
        value = getattr(cert, name + "_utc", None) or getattr(cert, name)
        if value.tzinfo is None:
            return int(time.mktime(value.timetuple()) - time.timezone)
        return int(value.timestamp())

    try:
        cert = load(paths["cert"])
    except (OSError, ValueError) as exc:
        return {"error": f"cannot read {paths['cert']}: {exc}"}
    result = {
        "path": paths["cert"],
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format(cert.serial_number, "x"),
        "not_before": epoch(cert, "not_valid_before"),
        "not_after": epoch(cert, "not_valid_after"),
    }
    try:
        intermediate, root = load(paths["intermediate"]), load(paths["root"])
    except (OSError, ValueError) as exc:
        result.update(chain_ok=False, chain_error=f"CA certificates unreadable: {exc}")
        return result
    if not signed_by(cert, intermediate):
        result.update(
            chain_ok=False,
            chain_error="not signed by the installed intermediate CA "
            + intermediate.subject.rfc4514_string(),
        )
    elif not signed_by(intermediate, root):
        result.update(
            chain_ok=False, chain_error="the intermediate CA is not signed by the installed root CA"
        )
    else:
        result.update(chain_ok=True, chain_error="")
    return result


def charon_log(since):
    """charon's matching journal lines since ``since``, as "<IKE SA name|unique id> message"."""
    code, out, err = run(
        [
            "journalctl",
            "-u",
            "strongswan",
            "--since",
            f"@{int(since)}",
            "-o",
            "json",
            "--output-fields=MESSAGE,IKE_SA_NAME,IKE_SA_UNIQUE_ID",
            "--no-pager",
            "-q",
        ]
    )
    if code != 0:
        return [f"journalctl failed: {err.strip()}"]
    lines = []
    for raw in out.splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        message = entry.get("MESSAGE")
        if not isinstance(message, str) or not LOG_PATTERN.search(message):
            continue
        if entry.get("IKE_SA_NAME"):
            message = f"<{entry['IKE_SA_NAME']}|{entry.get('IKE_SA_UNIQUE_ID', '?')}> {message}"
        lines.append(message)
    return lines[-200:]


def parse_swanctl_conf(text):
    """A small swanctl.conf reader: nested sections of key = value lines (no includes)."""
    root = {}
    stack = [root]
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            section = {}
            stack[-1][line[:-1].strip()] = section
            stack.append(section)
        elif line == "}":
            if len(stack) > 1:
                stack.pop()
        elif "=" in line:
            key, value = line.split("=", 1)
            stack[-1][key.strip()] = value.strip()
    return root


def proposals(conf_dir):
    """{connection: {"ike": [...], "esp": [...]}} from the ikemesh connection files."""
    result = {}
    try:
        names = sorted(os.listdir(conf_dir))
    except OSError:
        return result
    for name in names:
        if not name.endswith(".conf"):
            continue
        try:
            with open(os.path.join(conf_dir, name)) as handle:
                tree = parse_swanctl_conf(handle.read())
        except OSError:
            continue
        for conn, body in tree.get("connections", {}).items():
            if not isinstance(body, dict):
                continue
            esp = []
            for child in body.get("children", {}).values():
                if isinstance(child, dict):
                    esp += [p.strip() for p in child.get("esp_proposals", "default").split(",")]
            result[conn] = {
                "ike": [p.strip() for p in body.get("proposals", "default").split(",")],
                "esp": esp,
            }
    return result


def underlay_mtu(address):
    code, out, _err = run(["ip", "-j", "addr", "show"])
    if code != 0:
        return None, None
    for link in json.loads(out or "[]"):
        for info in link.get("addr_info", []):
            if info.get("local") == address:
                return link.get("ifname"), link.get("mtu")
    return None, None


def route(destination, source):
    argv = ["ip", "-j", "route", "get", destination]
    if source:
        argv += ["from", source]
    code, out, err = run(argv)
    if code != 0:
        return {"ok": False, "error": err.strip()}
    entries = json.loads(out or "[]")
    if not entries:
        return {"ok": False, "error": "no route"}
    entry = entries[0]
    return {"ok": entry.get("type", "unicast") == "unicast", "dev": entry.get("dev"), "error": ""}


def ike_probe(source, target, port, timeout=1.5, tries=2):
    """True if charon on target answers an IKE_SA_INIT on UDP port (500, or 4500 with the marker)."""
    spi = os.urandom(8)
    transforms = [(1, 3), (2, 1), (3, 1), (4, 1)]  # 3DES, PRF_HMAC_MD5, HMAC_MD5_96, MODP_768
    body = b""
    for index, (ttype, tid) in enumerate(transforms):
        more = 0 if index == len(transforms) - 1 else 3
        body += struct.pack("!BBHBBH", more, 0, 8, ttype, 0, tid)
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(body), 1, 1, 0, len(transforms)) + body
    sa = struct.pack("!BBH", 34, 0, 4 + len(proposal)) + proposal
    ke_data = os.urandom(96)
    ke = struct.pack("!BBHHH", 40, 0, 8 + len(ke_data), 1, 0) + ke_data
    nonce_data = os.urandom(32)
    nonce = struct.pack("!BBH", 0, 0, 4 + len(nonce_data)) + nonce_data
    payloads = sa + ke + nonce
    header = spi + b"\0" * 8 + struct.pack("!BBBBII", 33, 0x20, 34, 0x08, 0, 28 + len(payloads))
    packet = header + payloads
    if port == 4500:
        packet = b"\0\0\0\0" + packet
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((source, 0))
        sock.settimeout(timeout)
        for _try in range(tries):
            sock.sendto(packet, (target, port))
            deadline = time.time() + timeout
            while time.time() < deadline:
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    break
                if port == 4500:
                    data = data[4:]
                if data[:8] == spi:
                    return True
    except OSError:
        return False
    finally:
        sock.close()
    return False


def udp_probes(source, peers):
    """{peer: {"500": answered, "4500": answered}}, probed in parallel (unanswered ones wait)."""
    # A peer behind NAT can not be dialled at its (inside) address: only its own probes towards us count.
    jobs = [
        (peer["name"], peer["underlay_address"], port)
        for peer in peers
        if not peer.get("behind_nat")
        for port in (500, 4500)
    ]
    result = {peer["name"]: {} for peer in peers}
    if not jobs:
        return result
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(jobs))) as pool:
        answers = pool.map(lambda job: ike_probe(source, job[1], job[2]), jobs)
        for (name, _target, port), answered in zip(jobs, answers):
            result[name][str(port)] = answered
    return result


def main():
    args = json.loads(sys.argv[1])
    peers = args.get("peers", [])
    interface, mtu = underlay_mtu(args["underlay_address"])
    facts = {
        "time": time.time(),
        "cert": certificate(args),
        "log": charon_log(args.get("since", time.time() - 600)),
        "proposals": proposals(args.get("conf_dir", "/etc/swanctl/conf.d")),
        "underlay_interface": interface,
        "underlay_mtu": mtu,
        "routes": {
            peer["name"]: route(peer["overlay_address"], args.get("overlay_address"))
            for peer in peers
            if peer.get("overlay_address")
        },
        "udp": udp_probes(args["underlay_address"], peers),
    }
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
