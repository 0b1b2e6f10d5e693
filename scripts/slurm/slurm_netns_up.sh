#!/usr/bin/env bash
# A Slurm cluster of N nodes on this one machine: each node a test host made by
# scripts/netns/netns_up.sh (${P}1..${P}N = ${SUBNET}.1..N), slurmctld on ${P}1, and each slurmd in
# its own UTS namespace so that `hostname` inside a job answers the node's name.
# Needs root, slurm-wlm, munge, iproute2, and `scripts/netns/netns_up.sh N` first.
#
#   usage: scripts/slurm/slurm_netns_up.sh [N]        (N = 3); prints "export SLURM_CONF=..."
#          ip netns exec ${P}1 env SLURM_CONF=... srun -N3 -n3 hostname     (clients run on a node)
#          SLURM_DOWN_RUN="ip netns exec ${P}1" scripts/slurm/slurm_down.sh DIR
#
# Settings (environment): SLURM_MN_DIR (/tmp/twister2-infra/slurm-mn), T2_NETNS_PREFIX (t2h),
# T2_NETNS_SUBNET (10.213.0), SLURM_TEST_CPUS per node (2), SLURM_TEST_ENFORCE (0),
# SLURM_NETNS_PRIVATE_TMP=1 to give each node its own /tmp (Slurm's PMIx plugin needs that).
set -euo pipefail
N=${1:-3}
P=${T2_NETNS_PREFIX:-t2h}
NET=${T2_NETNS_SUBNET:-10.213.0}
BASE=${SLURM_MN_DIR:-/tmp/twister2-infra/slurm-mn}
CPUS=${SLURM_TEST_CPUS:-2}
ENFORCE=NO
[ "${SLURM_TEST_ENFORCE:-0}" = 1 ] && ENFORCE=ALL
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$BASE"/{state,spool,log,run,munge}
CONF="$BASE/slurm.conf"
NODES=""
for i in $(seq 1 "$N"); do
  NODES+="NodeName=$P$i NodeAddr=${NET}.$i NodeHostname=$P$i CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=4096 State=UNKNOWN"$'\n'
done
cat > "$CONF" <<CONF
ClusterName=t2mn
SlurmctldHost=${P}1(${NET}.1)
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd-%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd-%n.log
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
AuthInfo=socket=$BASE/munge/munge.socket.2
EnforcePartLimits=$ENFORCE
$(cat "$HERE/common.conf")
${NODES}PartitionName=debug Nodes=${P}[1-$N] Default=YES MaxTime=INFINITE State=UP
CONF
rm -f "$BASE/cgroup.conf"
# one munged serves every node: its socket is a file, and the file system is shared
"$HERE/munge_up.sh" "$BASE/munge" >&2
# slurmctld insists that `hostname` is SlurmctldHost, hence the UTS namespace
ip netns exec "${P}1" unshare --uts sh -c "hostname ${P}1; exec /usr/sbin/slurmctld -f '$CONF' -c" >&2
# `ip netns exec` remounts /sys, hiding /sys/fs/cgroup, and slurmd 22.05 will not start without
# a cgroup mount (even with proctrack/pgid): mount the v1 hierarchies again, privately.
CGMOUNT='mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup && for c in cpu cpuacct cpuset memory devices freezer blkio pids; do mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done; mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd'
PRIVTMP=true
if [ "${SLURM_NETNS_PRIVATE_TMP:-0}" = 1 ]; then
  SHARED=/run/t2-shared-tmp-$P
  mkdir -p "$SHARED"
  PRIVTMP="mount --rbind /tmp $SHARED && mount -t tmpfs -o mode=1777 tmpfs /tmp && mkdir -p $BASE && mount --rbind $SHARED${BASE#/tmp} $BASE"
fi
for i in $(seq 1 "$N"); do
  mkdir -p "$BASE/spool/$P$i"
  ip netns exec "$P$i" unshare --uts sh -c "hostname $P$i; $CGMOUNT; $PRIVTMP; exec python3 '$HERE/subreaper.py' /usr/sbin/slurmd -D -f '$CONF' -N $P$i" >&2
done
idle=0
for _ in $(seq 1 100); do
  idle=$(ip netns exec "${P}1" env SLURM_CONF="$CONF" timeout 5 sinfo -h -N -o '%T' 2>/dev/null | grep -c '^idle' || true)
  [ "$idle" -ge "$N" ] && break
  sleep 0.2
done
if [ "$idle" -lt "$N" ]; then echo "slurm_netns_up: $idle of $N nodes idle; see $BASE/log" >&2; exit 1; fi
echo "export SLURM_CONF=$CONF"
