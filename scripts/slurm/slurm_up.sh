#!/usr/bin/env bash
# Start a single-node Slurm cluster (munged + slurmctld + slurmd) on loopback, for tests and demos.
# Needs root and Debian's slurm-wlm and munge (scripts/system_deps.sh installs them).
#
#   usage: eval "$(scripts/slurm/slurm_up.sh)"      # prints "export SLURM_CONF=..."
#          scripts/slurm/slurm_down.sh               # stops the daemons by their PID files
#
# Settings (environment):
#   SLURM_TEST_DIR       where config, state, logs and PID files go (/tmp/twister2-infra/slurm)
#   SLURM_TEST_CPUS      CPUs the node claims, more than it has is fine (4)
#   SLURM_TEST_NODE      the node's name (localhost)
#   SLURM_TEST_CTLD_PORT, SLURM_TEST_SLURMD_PORT   TCP ports on 127.0.0.1 (6817, 6818)
#   SLURM_TEST_ENFORCE   1: EnforcePartLimits=ALL, sbatch rejects what the partition cannot run (1)
set -euo pipefail
BASE=${SLURM_TEST_DIR:-/tmp/twister2-infra/slurm}
CPUS=${SLURM_TEST_CPUS:-4}
NODE=${SLURM_TEST_NODE:-localhost}
CTLD_PORT=${SLURM_TEST_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_TEST_SLURMD_PORT:-6818}
ENFORCE=NO
[ "${SLURM_TEST_ENFORCE:-1}" = 1 ] && ENFORCE=ALL
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$BASE"/{state,spool,log,run,munge}
CONF="$BASE/slurm.conf"
cat > "$CONF" <<CONF
ClusterName=t2test
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
AuthInfo=socket=$BASE/munge/munge.socket.2
EnforcePartLimits=$ENFORCE
$(cat "$HERE/common.conf")
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=4096 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
rm -f "$BASE/cgroup.conf"   # 22.05 has no CgroupPlugin=disabled; without the file it autodetects
export SLURM_CONF="$CONF"
"$HERE/munge_up.sh" "$BASE/munge" >&2
/usr/sbin/slurmctld -f "$CONF" -c >&2     # -c: clear old state (a fresh cluster)
python3 "$HERE/subreaper.py" /usr/sbin/slurmd -D -f "$CONF" -N "$NODE"
for _ in $(seq 1 100); do
  if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^idle'; then break; fi
  sleep 0.2
done
timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE '^idle' || {
  echo "slurm_up: the node did not become idle; see $BASE/log" >&2; exit 1; }
echo "export SLURM_CONF=$CONF"
