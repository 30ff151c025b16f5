import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.filter.benchmark import FilterModule
from ansible_collections.ikemesh.mesh.plugins.module_utils.benchmark import cipher_report

MEASURED = [
    {"cipher": "aes-gcm", "tunnel": 60.0, "underlay": 400.0},
    {"cipher": "chacha20-poly1305", "tunnel": 90.0, "underlay": 300.0},
]


def test_ratios_and_the_best_cipher_per_host():
    lines = cipher_report(MEASURED, {"b": False, "a": True})
    assert lines[0].split() == ["cipher", "tunnel", "Mbit/s", "underlay", "Mbit/s", "ratio"]
    assert lines[2].split() == ["aes-gcm", "60.0", "400.0", "0.15"]
    assert lines[3].split() == ["chacha20-poly1305", "90.0", "300.0", "0.30"]
    # the ratio decides, not the absolute throughput of either path
    assert lines[4:] == [
        "a: prefer chacha20-poly1305 (AES-NI: yes)",
        "b: prefer chacha20-poly1305 (AES-NI: no)",
    ]


def test_filter_rejects_a_failed_underlay_measurement():
    with pytest.raises(AnsibleFilterError, match="aes-gcm: the underlay measured 0.0"):
        FilterModule().filters()["cipher_report"]([{"cipher": "aes-gcm", "tunnel": 1, "underlay": 0}], {})
