#!/bin/sh
# An "rsh"/"ssh" stand-in: run a command on test host $1 (a namespace made by netns_up.sh), in
# its own UTS namespace so that `hostname` answers $1.
#   Open MPI:    mpirun --mca plm_rsh_agent scripts/netns/netns_rsh.sh ...
#   MPICH hydra: mpiexec -launcher ssh -launcher-exec scripts/netns/netns_rsh.sh ...
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done   # drop ssh flags
host=$1; shift
exec ip netns exec "$host" unshare --uts sh -c "hostname $host; $*"
