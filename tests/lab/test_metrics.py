"""The Prometheus exporter (role ikemesh.mesh.metrics), scraped live and checked against VICI.

On every node: the endpoint answers; every planned peer is reported up, as VICI shows it before and
after the scrape; the CHILD SA byte and packet counters lie between what VICI showed just before and
just after the scrape (traffic is sent first, so they are not zero); the certificate's notAfter is the
installed certificate's and its seconds to expiry match the node's clock at the scrape.
"""

import json
import re

import pytest

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

SCRAPE = """
import json, time, urllib.request
for attempt in range(30):
    try:
        before = time.time()
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics", timeout=10).read().decode()
        print(json.dumps({"before": before, "after": time.time(), "body": body}))
        break
    except OSError:
        time.sleep(1)
else:
    raise SystemExit("the exporter does not answer")
"""

CERT = """
import datetime, json
from cryptography import x509
cert = x509.load_pem_x509_certificate(open("/etc/swanctl/x509/ikemesh.crt", "rb").read())
end = getattr(cert, "not_valid_after_utc", None)
if end is None:
    end = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
print(json.dumps({"not_after": end.timestamp(), "serial": format(cert.serial_number, "x")}))
"""


def parse_metrics(text):
    """[(name, {label: value}, float)] from the Prometheus text format."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = dict(LABEL.findall(match.group(2) or ""))
        samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def _value(samples, name, **labels):
    found = [v for n, lab, v in samples if n == name and all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def _child_totals(events, conn):
    """(bytes_in, bytes_out, packets_in, packets_out, up) of conn's INSTALLED CHILD SAs in list-sa events."""
    totals = [0, 0, 0, 0]
    up = False
    for event in events:
        for name, sa in event.items():
            if name != conn or sa.get("state") != "ESTABLISHED":
                continue
            for child in sa.get("child-sas", {}).values():
                if child.get("state") != "INSTALLED":
                    continue
                up = True
                for index, key in enumerate(("bytes-in", "bytes-out", "packets-in", "packets-out")):
                    totals[index] += int(child.get(key, 0))
    return (*totals, up)


@pytest.fixture(scope="module")
def scrapes(lab_plan, lab_nodes, lab_host, vici_state):
    """{node: (VICI before, scrape, VICI after, cert)}, with traffic to every peer sent first."""
    _inventory_dir, hostvars, _hubs = lab_nodes
    enabled = [
        n
        for n in sorted(lab_plan["nodes"])
        if str(hostvars[n].get("ikemesh_metrics_enabled", True)).lower() not in ("false", "no", "0")
    ]
    if not enabled:
        pytest.skip("ikemesh_metrics_enabled is false for every node of this inventory")
    result = {}
    for name in enabled:
        node = lab_plan["nodes"][name]
        host = lab_host(name)
        for peer in node["peers"]:
            host.run("ping -n -q -c 2 -i 0.2 -W 2 -I %s %s", node["overlay_address"], peer["overlay_address"])
        port = int(hostvars[name].get("ikemesh_metrics_port", 9814))
        before = vici_state(host)
        scrape = host.run("python3 -c %s", SCRAPE % port)
        after = vici_state(host)
        assert scrape.rc == 0, f"{name}: {scrape.stderr}"
        cert = host.run("python3 -c %s", CERT)
        assert cert.rc == 0, cert.stderr
        result[name] = (before, json.loads(scrape.stdout), after, json.loads(cert.stdout))
    return result


def test_exporter_reads_charon(lab_plan, scrapes):
    for name in sorted(scrapes):
        samples = parse_metrics(scrapes[name][1]["body"])
        assert _value(samples, "ikemesh_vici_up") == 1, name


def test_every_planned_peer_is_up_as_vici_shows_it(lab_plan, scrapes):
    for name in sorted(scrapes):
        before, scrape, after, _cert = scrapes[name]
        samples = parse_metrics(scrape["body"])
        for peer in lab_plan["nodes"][name]["peers"]:
            assert _child_totals(before, peer["name"])[4] and _child_totals(after, peer["name"])[4]
            assert _value(samples, "ikemesh_peer_up", peer=peer["name"]) == 1, f"{name} -> {peer['name']}"
            assert _value(samples, "ikemesh_ike_sas_established", peer=peer["name"]) == 1
            assert _value(samples, "ikemesh_child_sas_installed", peer=peer["name"]) == 1
            assert _value(samples, "ikemesh_ike_sa_established_seconds", peer=peer["name"]) >= 0
        unplanned = {lab["peer"] for n, lab, v in samples if n == "ikemesh_peer_up"} - {
            p["name"] for p in lab_plan["nodes"][name]["peers"]
        }
        assert not unplanned, f"{name}: exporter reports connections outside the plan: {unplanned}"


def test_bytes_and_packets_between_the_vici_reads_around_the_scrape(lab_plan, scrapes):
    names = ("bytes_in", "bytes_out", "packets_in", "packets_out")
    for name in sorted(scrapes):
        before, scrape, after, _cert = scrapes[name]
        samples = parse_metrics(scrape["body"])
        for peer in lab_plan["nodes"][name]["peers"]:
            low, high = _child_totals(before, peer["name"]), _child_totals(after, peer["name"])
            for index, what in enumerate(names):
                value = _value(samples, f"ikemesh_child_sa_{what}_total", peer=peer["name"])
                assert low[index] <= value <= high[index], (
                    f"{name} -> {peer['name']} {what}: {low} {value} {high}"
                )
            assert low[2] > 0 and low[3] > 0, f"{name} -> {peer['name']}: no packets counted after pings"


def test_rekey_counters_present(lab_plan, scrapes):
    for name in sorted(scrapes):
        samples = parse_metrics(scrapes[name][1]["body"])
        for peer in lab_plan["nodes"][name]["peers"]:
            for sa in ("ike", "child"):
                assert _value(samples, "ikemesh_rekeys_total", peer=peer["name"], sa=sa) >= 0


def test_certificate_expiry_matches_the_installed_certificate(lab_plan, scrapes):
    for name in sorted(scrapes):
        _before, scrape, _after, cert = scrapes[name]
        samples = parse_metrics(scrape["body"])
        labels = {"serial": cert["serial"], "local": "true"}
        assert (
            _value(samples, "ikemesh_certificate_not_after_timestamp_seconds", **labels) == cert["not_after"]
        )
        seconds = _value(samples, "ikemesh_certificate_expiry_seconds", **labels)
        assert cert["not_after"] - scrape["after"] <= seconds <= cert["not_after"] - scrape["before"], name
        assert seconds > 0
