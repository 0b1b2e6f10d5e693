#!/usr/bin/env bash
# Remove what netns_up.sh made (deleting a namespace deletes its veth ends). Processes still in a
# host namespace are ended by their PIDs first.
#   usage: scripts/netns/netns_down.sh [N]    (same T2_NETNS_PREFIX / T2_NETNS_SUBNET as netns_up)
N=${1:-3}
P=${T2_NETNS_PREFIX:-t2h}
NET=${T2_NETNS_SUBNET:-10.213.0}
for i in $(seq 1 "$N"); do
  for p in $(ip netns pids "$P$i" 2>/dev/null); do kill "$p" 2>/dev/null; done
done
for i in $(seq 1 "$N"); do
  for p in $(ip netns pids "$P$i" 2>/dev/null); do
    for _ in $(seq 1 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  ip netns del "$P$i" 2>/dev/null
  rm -rf "/etc/netns/$P$i"
done
ip netns del "${P}sw" 2>/dev/null
ip route del unreachable "${NET}.0/24" 2>/dev/null
exit 0
