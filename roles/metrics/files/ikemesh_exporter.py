#!/usr/bin/python3
# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus exporter for one ikemesh node: the live IPsec state, read over VICI at scrape time.

Every scrape asks charon (list-conns, list-sas, list-certs, get-counters) through the
dependency-free VICI client installed next to this file, so the values are those of the moment of
the scrape. Needs python3-prometheus-client (and python3-cryptography for certificate expiry).

Usage: ikemesh_exporter.py [--listen ADDRESS] [--port PORT] [--socket PATH]
"""

import argparse
import datetime
import sys
import time

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from vici import ViciError, ViciSession

try:
    from cryptography import x509
except ImportError:  # certificate expiry is then not exported
    x509 = None

COUNTER_KEYS = {
    "ike-rekey-init": ("ike", "initiated"),
    "ike-rekey-resp": ("ike", "responded"),
    "child-rekey": ("child", "both"),
}


def _int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _epoch(cert, name):
    value = getattr(cert, name + "_utc", None)
    if value is None:  # cryptography < 42: naive UTC datetimes
        value = getattr(cert, name).replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


class IkemeshCollector:
    def __init__(self, socket_path):
        self.socket_path = socket_path

    def collect(self):
        up = GaugeMetricFamily("ikemesh_vici_up", "1 if charon answered over VICI during this scrape")
        try:
            with ViciSession(self.socket_path, timeout=10) as session:
                families = self._families(session)
        except ViciError as exc:
            print(f"VICI query failed: {exc}", file=sys.stderr)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, session):
        conns = {}
        for event in session.streamed_request("list-conns", "list-conn"):
            for name, conf in event.items():
                if isinstance(conf, dict):
                    conns[name] = {"ike": 0, "child": 0, "age": None, "rekey": None, "traffic": [0, 0, 0, 0]}
        for event in session.streamed_request("list-sas", "list-sa"):
            for name, ike in event.items():
                if not isinstance(ike, dict):
                    continue
                entry = conns.setdefault(
                    name, {"ike": 0, "child": 0, "age": None, "rekey": None, "traffic": [0, 0, 0, 0]}
                )
                if ike.get("state") != "ESTABLISHED":
                    continue
                entry["ike"] += 1
                entry["age"] = _int(ike.get("established"), None)
                entry["rekey"] = _int(ike.get("rekey-time"), None)
                children = ike.get("child-sas") if isinstance(ike.get("child-sas"), dict) else {}
                for child in children.values():
                    if not isinstance(child, dict) or child.get("state") != "INSTALLED":
                        continue
                    entry["child"] += 1
                    for index, key in enumerate(("bytes-in", "bytes-out", "packets-in", "packets-out")):
                        entry["traffic"][index] += _int(child.get(key))

        peer_up = GaugeMetricFamily(
            "ikemesh_peer_up",
            "1 if the connection has an ESTABLISHED IKE SA with an INSTALLED CHILD SA",
            labels=["peer"],
        )
        ike = GaugeMetricFamily(
            "ikemesh_ike_sas_established", "ESTABLISHED IKE SAs of the connection", labels=["peer"]
        )
        child = GaugeMetricFamily(
            "ikemesh_child_sas_installed", "INSTALLED CHILD SAs of the connection", labels=["peer"]
        )
        age = GaugeMetricFamily(
            "ikemesh_ike_sa_established_seconds", "Age of the ESTABLISHED IKE SA", labels=["peer"]
        )
        rekey = GaugeMetricFamily(
            "ikemesh_ike_sa_rekey_seconds", "Seconds until the IKE SA is rekeyed", labels=["peer"]
        )
        traffic = [
            CounterMetricFamily(
                f"ikemesh_child_sa_{what}",
                f"{what.replace('_', ' ').capitalize()} of the INSTALLED CHILD SAs "
                "(resets when a CHILD SA is replaced)",
                labels=["peer"],
            )
            for what in ("bytes_in", "bytes_out", "packets_in", "packets_out")
        ]
        for name in sorted(conns):
            entry = conns[name]
            peer_up.add_metric([name], 1 if entry["ike"] and entry["child"] else 0)
            ike.add_metric([name], entry["ike"])
            child.add_metric([name], entry["child"])
            if entry["age"] is not None:
                age.add_metric([name], entry["age"])
            if entry["rekey"] is not None:
                rekey.add_metric([name], entry["rekey"])
            for family, value in zip(traffic, entry["traffic"]):
                family.add_metric([name], value)
        families = [peer_up, ike, child, age, rekey] + traffic
        families += self._rekeys(session, conns)
        families += self._certificates(session)
        return families

    @staticmethod
    def _rekeys(session, conns):
        """Rekey counters from charon's counters plugin (absent if the plugin is not loaded)."""
        rekeys = CounterMetricFamily(
            "ikemesh_rekeys",
            "IKE and CHILD SA rekeyings of the connection (counters plugin)",
            labels=["peer", "sa"],
        )
        try:
            reply = session.request("get-counters", {"all": "yes"})
        except ViciError:
            return []
        counters = reply.get("counters") if isinstance(reply.get("counters"), dict) else {}
        for name in sorted(conns):
            values = counters.get(name) if isinstance(counters.get(name), dict) else {}
            ike_total = _int(values.get("ike-rekey-init")) + _int(values.get("ike-rekey-resp"))
            rekeys.add_metric([name, "ike"], ike_total)
            rekeys.add_metric([name, "child"], _int(values.get("child-rekey")))
        return [rekeys]

    @staticmethod
    def _certificates(session):
        if x509 is None:
            return []
        expiry = GaugeMetricFamily(
            "ikemesh_certificate_expiry_seconds",
            "Seconds until the loaded end-entity certificate expires (negative: expired)",
            labels=["subject", "serial", "local"],
        )
        not_after = GaugeMetricFamily(
            "ikemesh_certificate_not_after_timestamp_seconds",
            "notAfter of the loaded end-entity certificate (Unix time)",
            labels=["subject", "serial", "local"],
        )
        now = time.time()
        for event in session.streamed_request("list-certs", "list-cert", {"type": "X509", "flag": "NONE"}):
            data = event.get("data")
            if not isinstance(data, bytes):
                continue
            try:
                cert = x509.load_der_x509_certificate(data)
            except ValueError:
                continue
            labels = [
                cert.subject.rfc4514_string(),
                format(cert.serial_number, "x"),
                "true" if event.get("has_privkey") == "yes" else "false",
            ]
            end = _epoch(cert, "not_valid_after")
            expiry.add_metric(labels, end - now)
            not_after.add_metric(labels, end)
        return [expiry, not_after]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9814)
    parser.add_argument("--socket", default="/var/run/charon.vici")
    args = parser.parse_args()
    registry = CollectorRegistry()  # only the mesh, not this process's own metrics
    registry.register(IkemeshCollector(args.socket))
    start_http_server(args.port, addr=args.listen, registry=registry)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
