#!/bin/bash
# Overlay probes for ikemesh's verify role. Environment:
#   IKEMESH_SRC    this node's overlay address (pings are sourced from it, so they match the SAs)
#   IKEMESH_MTU    the planned tunnel MTU
#   IKEMESH_PEERS  overlay addresses of the direct peers (MTU probes)
#   IKEMESH_DESTS  overlay addresses of every other node (reachability, through hubs if need be)
# Prints "reach <addr> ok|fail" and "mtu <addr> ok|fail passed|blocked" lines.
set -u
family=-4
headers=28  # IPv4 20 + ICMP 8
if [[ "$IKEMESH_SRC" == *:* ]]; then
  family=-6
  headers=48  # IPv6 40 + ICMPv6 8
fi
probe() {  # probe <size or empty> <address>
  local size=()
  [[ -n "$1" ]] && size=(-M do -s "$1")
  ping "$family" -n -q -c 2 -i 0.2 -W 2 "${size[@]}" -I "$IKEMESH_SRC" "$2" >/dev/null 2>&1
}
for address in $IKEMESH_DESTS; do
  # The first answer may need an SA to come up: allow a few tries before calling it lost.
  verdict=fail
  for _try in 1 2 3; do
    if probe "" "$address"; then verdict=ok; break; fi
  done
  echo "reach $address $verdict"
done
for address in $IKEMESH_PEERS; do
  fits=fail
  probe $((IKEMESH_MTU - headers)) "$address" && fits=ok
  oversize=blocked
  probe $((IKEMESH_MTU - headers + 1)) "$address" && oversize=passed
  echo "mtu $address $fits $oversize"
done
