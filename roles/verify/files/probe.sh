#!/bin/bash
# Overlay probes for ikemesh's verify role. Environment:
#   IKEMESH_SRC    this node's overlay address (pings are sourced from it, so they match the SAs)
#   IKEMESH_MTU    the planned tunnel MTU
#   IKEMESH_PEERS  "name,source,target" per direct peer (MTU probes): the overlay addresses in
#                  policy mode, the tunnel link addresses in the route-based modes
#   IKEMESH_DESTS  overlay addresses of every other node (reachability, through hubs if need be)
# Prints "reach <addr> ok|fail" and "mtu <peer> ok|fail passed|blocked" lines.
set -u
family=-4
headers=28  # IPv4 20 + ICMP 8
if [[ "$IKEMESH_SRC" == *:* ]]; then
  family=-6
  headers=48  # IPv6 40 + ICMPv6 8
fi
probe() {  # probe <size or empty> <source> <target>
  local size=()
  [[ -n "$1" ]] && size=(-M "do" -s "$1")
  ping "$family" -n -q -c 2 -i 0.2 -W 2 "${size[@]}" -I "$2" "$3" >/dev/null 2>&1
}
for address in $IKEMESH_DESTS; do
  # The first answer may need an SA to come up: allow a few tries before calling it lost.
  verdict=fail
  for _try in 1 2 3; do
    if probe "" "$IKEMESH_SRC" "$address"; then verdict=ok; break; fi
  done
  echo "reach $address $verdict"
done
for entry in $IKEMESH_PEERS; do
  IFS=, read -r name source target <<<"$entry"
  fits=fail
  probe $((IKEMESH_MTU - headers)) "$source" "$target" && fits=ok
  oversize=blocked
  probe $((IKEMESH_MTU - headers + 1)) "$source" "$target" && oversize=passed
  echo "mtu $name $fits $oversize"
done
