#!/usr/bin/env bash
# Stop what slurm_up.sh or slurm_netns_up.sh started, by PID file (never by name).
#   usage: scripts/slurm/slurm_down.sh [DIR]    (DIR: $SLURM_TEST_DIR, else /tmp/twister2-infra/slurm)
BASE=${1:-${SLURM_TEST_DIR:-/tmp/twister2-infra/slurm}}
RUN=${SLURM_DOWN_RUN:-}   # a prefix for the Slurm client commands, e.g. "ip netns exec t2h1"
# cancel what still runs first, so that no job step outlives its daemons
if [ -s "$BASE/run/slurmctld.pid" ] && kill -0 "$(cat "$BASE/run/slurmctld.pid")" 2>/dev/null; then
  $RUN env SLURM_CONF="$BASE/slurm.conf" timeout 5 scancel --user=root --quiet 2>/dev/null || true
  for _ in $(seq 1 50); do
    left=$($RUN env SLURM_CONF="$BASE/slurm.conf" timeout 5 squeue -h -o %i 2>/dev/null | wc -l)
    [ "$left" = 0 ] && break; sleep 0.2
  done
fi
for f in "$BASE"/run/slurmd*.pid "$BASE/run/slurmctld.pid" "$BASE/munge/munged.pid"; do
  [ -s "$f" ] || continue
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null && echo "stopped $(basename "$f" .pid) pid $pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
done
exit 0
