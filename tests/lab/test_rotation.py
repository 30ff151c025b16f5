"""Certificate rotation on the kernel data path: every node certificate renewed and every IKE SA
reauthenticated (make-before-break) under continuous pings between every pair of peers, and not one
ping lost where the IKE_AUTH responder is an xfrm node (its link keeps sending on the old SA until the
initiator, which installed the new one first, deletes the old IKE SA: README "Day-2 operations").

The lifecycle scenario proves the other rotation properties (second run changed=0, intermediate CA
rotation) on libipsec, whose single ipsec0 device cannot be steered per SA."""

import os
import re
import time

import pytest
from test_bgp import _sessions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROTATE = os.path.join(ROOT, "playbooks", "rotate_certificates.yml")
# 20 per second each way: the responder's window that steering closes (4 ms on an idle lab, 27 ms
# on a loaded one) would cost a packet in 10-50 % of reauthentications
PING_INTERVAL = 0.05


def _steered_pairs(plan):
    """(initiator, responder) of every peer pair whose responder is an xfrm node."""
    return sorted(
        (peer["name"], name)
        for name, node in plan["nodes"].items()
        for peer in node["peers"]
        if node["tunnel_mode"] == "xfrm" and not peer["initiator"]
    )


def _serial(host):
    out = host.check_output("openssl x509 -noout -serial -in /etc/swanctl/x509/ikemesh.crt")
    return out.split("=", 1)[1].strip().lower()


def _ike_established(vici_state, host):
    """Connection name -> seconds since each of its ESTABLISHED IKE SAs was established."""
    sas = {}
    for event in vici_state(host):
        for name, sa in event.items():
            if sa["state"] == "ESTABLISHED":
                sas.setdefault(name, []).append(int(sa["established"]))
    return sas


def _sending_if_id(host, link):
    details = host.check_output("ip -d -o link show %s", link)
    return int(re.search(r" xfrm if_id (0x[0-9a-f]+) ", details).group(1), 16)


def _start_ping(host, source, target, tag):
    host.check_output(
        f"setsid nohup ping -n -i {PING_INTERVAL} -W 2 -I {source} {target} </dev/null >/tmp/{tag}.log 2>&1 &"
        f" echo $! >/tmp/{tag}.pid"
    )


def _stop_ping(host, tag):
    """Sequence numbers lost by a ping started by _start_ping: missing below the last one answered
    (the reply to the last request may still be on its way when ping stops; the pings go on after
    the rotation has settled, so a loss during it is never at the tail)."""
    host.check_output(f"kill -INT $(cat /tmp/{tag}.pid)")
    for _attempt in range(20):
        log = host.check_output(f"cat /tmp/{tag}.log")
        if "packets transmitted" in log:
            answered = {int(seq) for seq in re.findall(r"bytes from .* icmp_seq=(\d+) ", log)}
            assert answered, f"{tag}: no reply at all: {log[-500:]}"
            return max(answered), sorted(set(range(1, max(answered))) - answered)
        time.sleep(0.5)
    raise AssertionError(f"{tag}: no ping summary")


def _settled(plan, hosts, vici_state):
    """Wait until every node has exactly one IKE SA per planned peer (the old ones deleted)."""
    for _attempt in range(60):
        counts = {
            name: {peer: len(sas) for peer, sas in _ike_established(vici_state, host).items()}
            for name, host in hosts.items()
        }
        if all(counts[name] == {p["name"]: 1 for p in plan["nodes"][name]["peers"]} for name in hosts):
            return
        time.sleep(2)
    raise AssertionError(f"the IKE SAs did not settle: {counts}")


def _steering_log(host, since, link):
    """What charon's updown logged about `link` moving since the epoch second `since`."""
    log = host.check_output(f"journalctl -u strongswan --no-pager -o cat --since @{since}")
    return [line for line in log.splitlines() if line.startswith(f"updown: {link} sends on")]


def test_forced_rotation_loses_no_ping_on_steered_links(
    lab_plan, lab_host, lab_inventory, run_playbook, vici_state
):
    if lab_plan["ipsec_backend"] != "kernel":
        pytest.skip("libipsec: one ipsec0 device for every SA; molecule/lifecycle proves rotation there")
    steered = _steered_pairs(lab_plan)
    if not steered:
        pytest.skip("no pair with an xfrm responder (policy or vti mode)")
    nodes = sorted(lab_plan["nodes"])
    hosts = {name: lab_host(name) for name in nodes}
    address = {name: lab_plan["nodes"][name]["overlay_address"] for name in nodes}
    before = {name: _serial(hosts[name]) for name in nodes}
    links = {
        (i, r): next(p["link"] for p in lab_plan["nodes"][r]["peers"] if p["name"] == i) for i, r in steered
    }
    sending_before = {pair: _sending_if_id(hosts[pair[1]], link) for pair, link in links.items()}
    bgp = lab_plan["tunnel_mode"] != "policy"  # route-based: BGP over the links
    sessions_before = {name: _sessions(lab_plan, hosts[name]) for name in nodes} if bgp else {}
    started = int(hosts[nodes[0]].check_output("date +%s"))
    cutoff = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    time.sleep(1)  # certificates issued from now on are strictly after the cutoff

    streams = [(a, b) for pair in steered for a, b in (pair, pair[::-1])]
    for a, b in streams:
        _start_ping(hosts[a], address[a], address[b], f"rotation-{b}")
    began = time.monotonic()
    returncode, output, recap = run_playbook(
        ROTATE, lab_inventory, "-e", f"ikemesh_pki_renew_issued_before={cutoff}"
    )
    seconds = time.monotonic() - began
    _settled(lab_plan, hosts, vici_state)  # the last old IKE SAs go after the play has returned
    time.sleep(2)
    results = {(a, b): _stop_ping(hosts[a], f"rotation-{b}") for a, b in streams}
    assert returncode == 0, output[-6000:]

    after = {name: _serial(hosts[name]) for name in nodes}
    sending_after = {pair: _sending_if_id(hosts[pair[1]], link) for pair, link in links.items()}
    lost = {f"{a}->{b}": missing for (a, b), (_last, missing) in results.items()}
    steering = {pair: _steering_log(hosts[pair[1]], started, link) for pair, link in links.items()}
    print(
        f"\nROTATION: rotate_certificates.yml {seconds:.0f} s, recap {recap}; serials {before} -> {after};"
        f" responders' sending if_id {sending_before} -> {sending_after}, updown: {steering};"
        f" {sum(last for last, _m in results.values())} pings at {1 / PING_INTERVAL:.0f}/s each way"
        f" across {len(steered)} pairs, sequence numbers lost {lost}"
    )
    for name in nodes:
        assert after[name] != before[name], name
        established = _ike_established(vici_state, hosts[name])
        planned = {p["name"] for p in lab_plan["nodes"][name]["peers"]}
        assert set(established) == planned and all(len(v) == 1 for v in established.values()), (
            name,
            established,
        )
        # every IKE SA was reauthenticated during the rotation (established = seconds ago)
        now = int(hosts[name].check_output("date +%s"))
        assert all(now - ago[0] >= started for ago in established.values()), (name, established, started)
    # every responder's link moved to the new SA's outbound id when charon took the old SA down
    assert all(sending_after[pair] != sending_before[pair] for pair in steered), (
        sending_before,
        sending_after,
    )
    for pair in steered:
        assert any(f"instead of {sending_before[pair]} (down-" in line for line in steering[pair]), steering
    if sessions_before:
        sessions_after = {name: _sessions(lab_plan, hosts[name]) for name in nodes}
        print(f"ROTATION: BGP sessions before {sessions_before} after {sessions_after}")
        assert sessions_after == sessions_before, "a BGP session was reset during the rotation"
    assert not any(lost.values()), lost
