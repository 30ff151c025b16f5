"""The cipher benchmark's verdict: ratios of tunnel to underlay throughput, and the cipher to prefer.

Absolute numbers from one machine say little (a lab VM, a busy host); the ratio of the tunnel's
throughput to the underlay's, measured in the same run, says how much each cipher costs there.
"""

try:  # both import styles: inside the collection and standalone
    from ansible_collections.ikemesh.mesh.plugins.module_utils.table import text_table
except ImportError:  # pragma: no cover
    from .table import text_table


def cipher_report(measurements, aes_ni):
    """Lines: one row per cipher (Mbit/s over the tunnel and the underlay, ratio), then per host the
    cipher with the best ratio and whether its CPU has AES instructions.

    measurements: [{cipher, tunnel, underlay}] in Mbit/s; aes_ni: {host: bool}.
    """
    if not measurements:
        raise ValueError("no measurements")
    rows = [("cipher", "tunnel Mbit/s", "underlay Mbit/s", "ratio")]
    ratios = {}
    for item in measurements:
        tunnel, underlay = float(item["tunnel"]), float(item["underlay"])
        if underlay <= 0:
            raise ValueError(f"cipher {item['cipher']}: the underlay measured {underlay} Mbit/s")
        ratios[item["cipher"]] = tunnel / underlay
        rows.append((item["cipher"], f"{tunnel:.1f}", f"{underlay:.1f}", f"{ratios[item['cipher']]:.2f}"))
    best = max(ratios, key=ratios.get)
    advice = [f"{host}: prefer {best} (AES-NI: {'yes' if aes_ni[host] else 'no'})" for host in sorted(aes_ni)]
    return text_table(rows) + advice
