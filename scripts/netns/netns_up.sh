#!/usr/bin/env bash
# Make N test "hosts" on this machine: network namespaces ${P}1..${P}N on one private L2 segment,
# each with its own address, hostname file and /etc/hosts naming all of them. Traffic to their
# subnet can never leave the machine. Needs root and iproute2.
#
#   usage: scripts/netns/netns_up.sh [N]       (N = 3)  hosts ${P}i = ${SUBNET}.i
#          ip netns exec ${P}1 <command>         runs a command "on host 1"
#          scripts/netns/netns_down.sh [N]
#
# Settings (environment): T2_NETNS_PREFIX (P, t2h), T2_NETNS_SUBNET (SUBNET, 10.213.0).
# The switch namespace ${P}sw is made first, so a second run with the same prefix fails at once
# (callers can use that as a lock and try another prefix and subnet).
set -euo pipefail
N=${1:-3}
P=${T2_NETNS_PREFIX:-t2h}
NET=${T2_NETNS_SUBNET:-10.213.0}
if [ $(( ${#P} + ${#N} + 5 )) -gt 15 ]; then
  echo "netns_up: prefix '$P' is too long for interface names (veth-${P}${N})" >&2; exit 1
fi
if ip -4 addr show | grep -q "inet ${NET}\." || ip -4 route show | grep -q "^[a-z ]*${NET}\."; then
  echo "netns_up: subnet ${NET}.0/24 is already in use here; set T2_NETNS_SUBNET" >&2; exit 1
fi
ip netns add "${P}sw"
ip -n "${P}sw" link add br0 type bridge
ip -n "${P}sw" link set br0 up
ip -n "${P}sw" link set lo up
ip route replace unreachable "${NET}.0/24"   # stray packets to the test subnet stop here
HOSTS=""
for i in $(seq 1 "$N"); do HOSTS+="${NET}.$i ${P}$i"$'\n'; done
for i in $(seq 1 "$N"); do
  h=${P}$i
  ip netns add "$h"
  ip link add "veth-$h" type veth peer name eth0 netns "$h"
  ip link set "veth-$h" netns "${P}sw"
  ip -n "${P}sw" link set "veth-$h" master br0
  ip -n "${P}sw" link set "veth-$h" up
  ip -n "$h" link set lo up
  ip -n "$h" addr add "${NET}.$i/24" dev eth0
  ip -n "$h" link set eth0 up
  # `ip netns exec` bind-mounts /etc/netns/$h/* over /etc/*
  mkdir -p "/etc/netns/$h"
  printf '127.0.0.1 localhost\n%s' "$HOSTS" > "/etc/netns/$h/hosts"
  echo "$h" > "/etc/netns/$h/hostname"
done
