"""Unit and property tests for the ESP MTU math (plugins/module_utils/mtu.py)."""

import pytest
from ansible_collections.ikemesh.mesh.plugins.module_utils.mtu import (
    CIPHERS,
    esp_wire_size,
    tcp_mss,
    tunnel_mtu,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def test_lab_measurement_libipsec():
    # libipsec: UDP-encapsulated tunnel-mode ESP over IPv4 with AES-GCM: 1400 inner bytes -> 1464 on the wire
    assert esp_wire_size(1400, udp_encap=True) == 1464


def test_docstring_example():
    assert tunnel_mtu(1500, udp_encap=True) == 1438
    assert tcp_mss(1438) == 1398
    assert esp_wire_size(1438, udp_encap=True) == 1500
    assert tunnel_mtu(1500) == 1446
    assert tunnel_mtu(1500, udp_encap=True, max_mtu=1400) == 1400


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, 1446),
        ({"underlay_ip_version": 6}, 1426),
        ({"cipher": "chacha20-poly1305"}, 1446),
        ({"cipher": "aes-cbc-sha256"}, 1438),  # 1500-20-8-16-16 = 1440 -> 1440 - 2
        ({"cipher": "aes-cbc-sha512"}, 1422),  # 1500-20-8-16-32 = 1424 -> 1424 - 2
        ({"mode": "transport"}, 1466),  # 1500-20-8-8-16 = 1448 payload room; + reused 20 header - 2
        ({"extra_encap": 50}, 1396),
        ({"udp_encap": True, "extra_encap": 50, "max_mtu": 1400}, 1350),
    ],
)
def test_tunnel_mtu_values(kwargs, expected):
    assert tunnel_mtu(1500, **kwargs) == expected


def test_tcp_mss():
    assert tcp_mss(1446) == 1406
    assert tcp_mss(1446, 6) == 1386
    with pytest.raises(ValueError):
        tcp_mss(1446, 5)
    with pytest.raises(ValueError):
        tcp_mss(30)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cipher": "des"},
        {"mode": "beet"},
        {"underlay_ip_version": 5},
        {"overlay_ip_version": 7},
        {"extra_encap": -1},
        {"max_mtu": 0},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        tunnel_mtu(1500, **kwargs)


def test_below_ipv6_minimum():
    with pytest.raises(ValueError, match="IPv6 minimum"):
        tunnel_mtu(1280, overlay_ip_version=6, underlay_ip_version=6)
    with pytest.raises(ValueError):
        tunnel_mtu(True)


_params = st.fixed_dictionaries(
    {
        "underlay_ip_version": st.sampled_from([4, 6]),
        "cipher": st.sampled_from(sorted(CIPHERS)),
        "mode": st.sampled_from(["tunnel", "transport"]),
        "udp_encap": st.booleans(),
        "extra_encap": st.sampled_from([0, 50, 70]),
    }
)


@settings(max_examples=300, deadline=None)
@given(underlay=st.integers(min_value=576, max_value=9216), params=_params)
def test_tunnel_mtu_is_largest_fitting_packet(underlay, params):
    mtu = tunnel_mtu(underlay, **params)
    assert esp_wire_size(mtu, **params) <= underlay
    assert esp_wire_size(mtu + 1, **params) > underlay


@settings(max_examples=200, deadline=None)
@given(inner=st.integers(min_value=100, max_value=9000), params=_params)
def test_wire_size_monotonic(inner, params):
    assert esp_wire_size(inner, **params) <= esp_wire_size(inner + 1, **params)
    assert esp_wire_size(inner, **params) > inner
