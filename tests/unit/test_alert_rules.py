"""docs/prometheus/ikemesh-alerts.yml: a valid Prometheus rules file about metrics the exporter exports."""

import os
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "docs", "prometheus", "ikemesh-alerts.yml")
EXPORTER = os.path.join(ROOT, "roles", "metrics", "files", "ikemesh_exporter.py")


def _exported_metrics():
    """Names the exporter can expose (counters get _total, as prometheus-client appends it)."""
    with open(EXPORTER) as handle:
        source = handle.read()
    names = set()
    for kind, name in re.findall(r'(Gauge|Counter)MetricFamily\(\s*f?"([a-z_{}]+)"', source):
        expanded = (
            [name.replace("{what}", w) for w in ("bytes_in", "bytes_out", "packets_in", "packets_out")]
            if "{what}" in name
            else [name]
        )
        names.update(n + "_total" if kind == "Counter" else n for n in expanded)
    return names


@pytest.fixture(scope="module")
def rules():
    with open(RULES) as handle:
        return yaml.safe_load(handle)


def test_structure(rules):
    [group] = rules["groups"]
    assert group["name"] == "ikemesh"
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert {"IkemeshTunnelDown", "IkemeshCertificateExpiringSoon", "IkemeshTunnelFlapping"} <= set(alerts)
    for name, rule in alerts.items():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"], name
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["expr"].count("(") == rule["expr"].count(")"), name


def test_expressions_use_exported_metrics(rules):
    exported = _exported_metrics() | {"up"}
    assert "ikemesh_peer_up" in exported and "ikemesh_child_sa_bytes_in_total" in exported
    for rule in rules["groups"][0]["rules"]:
        used = set(re.findall(r"\b(ikemesh_[a-z_]+|up)\b(?=[{\[\s)=<>]|$)", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported, (rule["alert"], used - exported)


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool comes with the Debian package prometheus"
)
def test_promtool_accepts_the_rules():
    out = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
