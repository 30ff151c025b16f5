# Copyright (c) ikemesh developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host and charon tuning derived from a node's slice of the plan (pure Python, no Ansible imports).

charon (strongswan.conf, read when charon starts):

* ``charon.threads``: charon's default of 16 worker threads covers its own long-running jobs
  (receiver, sender, scheduler, kernel event readers, VICI) and a few IKE exchanges at a time. A
  node with many peers gets bursts of concurrent work (rekeys, DPD, a restarted hub that every spoke
  re-initiates to), so one thread is added per two peers, capped at 128.
* ``charon.ikesa_table_size``: the IKE SA manager's hash table (default 1 bucket, a linear list).
  strongSwan's lookup tuning: a power of two in the order of the number of IKE SAs. Each peer has one
  IKE SA, two while it is reauthenticated make-before-break, so the next power of two >= 2 x peers.
* ``charon.ikesa_table_segments``: independently locked segments of that table (default 1, one lock
  for all lookups), so concurrent worker threads do not serialize; a power of two, at most the table
  size and at most the number of threads.

sysctls: see node_sysctls.
"""

from __future__ import annotations

__all__ = ["TuningError", "charon_tuning", "node_sysctls", "parse_probe"]

DEFAULT_THREADS = 16
MAX_THREADS = 128


class TuningError(ValueError):
    """Bad input for the tuning functions."""


def _int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TuningError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise TuningError(f"{name} must be >= {minimum}, got {value}")
    return value


def _pow2_at_least(x):
    return 1 << max(0, (x - 1).bit_length())


def _pow2_at_most(x):
    return 1 << (x.bit_length() - 1)


def charon_tuning(peer_count):
    """Return {"threads", "ikesa_table_size", "ikesa_table_segments"} for a node with peer_count peers."""
    peers = _int("peer_count", peer_count, 0)
    threads = min(DEFAULT_THREADS + (peers + 1) // 2, MAX_THREADS)
    size = _pow2_at_least(max(1, 2 * peers))
    segments = min(size, _pow2_at_most(threads))
    return {"threads": threads, "ikesa_table_size": size, "ikesa_table_segments": segments}


def parse_probe(text):
    """Parse the role's probe output, lines ``name rw|ro|absent value...``, into name -> (mode, value)."""
    live = {}
    for line in (text or "").splitlines():
        parts = line.split(None, 2)
        if not parts:
            continue
        if len(parts) < 2 or parts[1] not in ("rw", "ro", "absent"):
            raise TuningError(f"unexpected probe line {line!r}; expected 'name rw|ro|absent value'")
        value = parts[2].strip() if len(parts) > 2 and parts[1] != "absent" else None
        live[parts[0]] = (parts[1], value)
    return live


def node_sysctls(plan, host, forwarding=None, socket_buffer_max=16777216, conntrack_max=262144, live=None):
    """Return the sysctls the node needs: a list of dicts name, value, required, why, writable, current.

    forwarding: None follows the plan (hubs relay other nodes' traffic), True also for a node that
    routes hosts behind it (its overlay subnet on a LAN), False leaves forwarding to the host.
    live: the role's probe of the running system (see parse_probe), or None before it ran. Buffer and
    table sizes are only ever raised, never lowered below what the host already has; ``writable`` is
    whether the running system lets us write the key (a kernel-global key inside a container's
    network namespace is read-only or absent; a netfilter key is absent until its module is loaded),
    ``current`` its live value (None when absent or not probed).
    A ``required`` entry is needed for the mesh to work (the role fails if it is not writable and not
    already right); the others are performance settings that the role skips where it cannot write them.

    rp_filter is not here: the route-based modes need loose reverse-path filtering (2) on each
    tunnel link, and the links are created at run time by ikemesh-tunnels (role tunnel), which sets it
    per link when it creates one; a sysctl file applied at boot would run before the links exist.
    """
    try:
        node = plan["nodes"][host]
    except (KeyError, TypeError):
        raise TuningError(f"host {host}: not in the plan's nodes") from None
    _int("socket_buffer_max", socket_buffer_max, 4096)
    _int("conntrack_max", conntrack_max, 1024)
    probed = parse_probe(live) if isinstance(live, str) else dict(live or {})

    def raised(name, value):
        try:
            return max(value, int(probed[name][1]))
        except (KeyError, TypeError, ValueError):
            return value

    out = []
    routes = node["forwards"] if forwarding is None else bool(forwarding)
    if routes:
        name = "net.ipv4.ip_forward" if plan["ip_version"] == 4 else "net.ipv6.conf.all.forwarding"
        why = (
            "hub: relays traffic between the peers it connects"
            if node["forwards"]
            else "routes the hosts behind it (ikemesh_tuning_forwarding)"
        )
        out.append({"name": name, "value": 1, "required": True, "why": why})
    for name, why in (
        ("net.core.rmem_max", "SO_RCVBUF ceiling: charon's netlink socket, bulk TCP over tunnels"),
        ("net.core.wmem_max", "SO_SNDBUF ceiling: bulk TCP over long, fast tunnels (default 208 KiB)"),
    ):
        out.append({"name": name, "value": raised(name, socket_buffer_max), "required": False, "why": why})
    nat = bool(node.get("behind_nat")) or any(p.get("behind_nat") for p in node["peers"])
    if nat:
        name = "net.netfilter.nf_conntrack_max"
        out.append(
            {
                "name": name,
                "value": raised(name, conntrack_max),
                "required": False,
                "why": "NAT in the path: NAT-T flows and the overlay connections they carry fill conntrack "
                "(table full drops new flows)",
            }
        )
    for entry in out:
        mode, value = probed.get(entry["name"], (None, None))
        entry["writable"] = mode == "rw"
        entry["current"] = value
    return out
