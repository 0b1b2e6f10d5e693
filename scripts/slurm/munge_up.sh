#!/usr/bin/env bash
# Start munged with its own key and socket in folder $1 (nothing in /etc or /run is touched),
# unless the one started there before still runs. Stop it by $1/munged.pid.
set -euo pipefail
DIR=$1
mkdir -p "$DIR"
[ -s "$DIR/munge.key" ] || dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$DIR"; chmod 755 "$DIR"; chmod 400 "$DIR/munge.key"
if [ -s "$DIR/munged.pid" ] && kill -0 "$(cat "$DIR/munged.pid")" 2>/dev/null; then exit 0; fi
runuser -u munge -- /usr/sbin/munged --key-file="$DIR/munge.key" --socket="$DIR/munge.socket.2" \
  --pid-file="$DIR/munged.pid" --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed"
timeout 10 sh -c "munge -S '$DIR/munge.socket.2' -n | unmunge -S '$DIR/munge.socket.2' >/dev/null"
