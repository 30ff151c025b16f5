# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""When a node certificate must be reissued (pure functions, no I/O)."""

import datetime


def parse_time(value):
    """A time as community.crypto reports it (ASN.1 C(20261204192500Z)), or ISO 8601 (C(...T...Z)),
    as an aware UTC datetime."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    text = str(value).strip()
    for fmt in ("%Y%m%d%H%M%SZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            continue
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def _key_id(value):
    return str(value or "").replace(":", "").lower()


def renewal_reason(
    not_before, not_after, now, renew_fraction, issued_before=None, authority_key_id=None, issuer_key_id=None
):
    """Return why a certificate must be reissued, or "" to keep it.

    Renew when more than renew_fraction (0 < f <= 1) of its lifetime has passed, when it was issued
    before issued_before (a forced rotation), or when it was signed by another CA key than the current
    issuer's (authority_key_id differs from issuer_key_id: intermediate CA rotation).
    """
    if not 0 < float(renew_fraction) <= 1:
        raise ValueError(f"renew_fraction must be in (0, 1], got {renew_fraction!r}")
    start, end, now = parse_time(not_before), parse_time(not_after), parse_time(now)
    if issuer_key_id and _key_id(authority_key_id) != _key_id(issuer_key_id):
        return "signed by another CA key than the current intermediate"
    if issued_before and start < parse_time(issued_before):
        return f"issued {start:%Y-%m-%dT%H:%M:%SZ}, before the forced rotation time {issued_before}"
    due = start + (end - start) * float(renew_fraction)
    if now >= due:
        return f"{renew_fraction} of its lifetime has passed (due {due:%Y-%m-%dT%H:%M:%SZ})"
    return ""
