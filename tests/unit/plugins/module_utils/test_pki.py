import datetime

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.ikemesh.mesh.plugins.filter.pki import cert_renewal
from ansible_collections.ikemesh.mesh.plugins.module_utils.pki import parse_time, renewal_reason

START, END = "20261201000000Z", "20261231000000Z"  # 30 days


def test_parse_time_formats():
    asn1 = parse_time("20261204192500Z")
    assert asn1 == datetime.datetime(2026, 12, 4, 19, 25, tzinfo=datetime.timezone.utc)
    assert parse_time("2026-12-04T19:25:00Z") == asn1
    assert parse_time("2026-12-04T19:25:00+00:00") == asn1
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_kept_before_the_share_of_lifetime():
    assert renewal_reason(START, END, "20261220000000Z", 0.66) == ""


def test_due_after_the_share_of_lifetime():
    assert "lifetime has passed" in renewal_reason(START, END, "20261221000000Z", 0.66)
    assert renewal_reason(START, END, "20261216000000Z", 0.5)


def test_forced_rotation_by_issue_time():
    assert "forced rotation" in renewal_reason(START, END, "20261202000000Z", 0.66, "2026-12-01T12:00:00Z")
    assert renewal_reason(START, END, "20261202000000Z", 0.66, "2026-11-30T12:00:00Z") == ""


def test_other_issuer_key():
    assert "another CA key" in renewal_reason(START, END, "20261202000000Z", 0.66, None, "AA:BB", "aa:cc")
    assert renewal_reason(START, END, "20261202000000Z", 0.66, None, "AA:BB", "aabb") == ""


def test_bad_fraction():
    with pytest.raises(ValueError):
        renewal_reason(START, END, START, 0)


def test_filter_adapter():
    info = {"not_before": START, "not_after": END, "authority_key_identifier": "aa"}
    assert cert_renewal(info, 0.66, "", "aa", now="20261202000000Z") == ""
    assert cert_renewal(info, 0.66, "", "bb", now="20261202000000Z")
    with pytest.raises(AnsibleFilterError):
        cert_renewal({"x": 1})
    with pytest.raises(AnsibleFilterError):
        cert_renewal(info, 2)
