#!/bin/bash
# (Re)boot test host I of the testbed: its own network, mount, UTS and PID namespaces, sshd as pid 1.
# kill -9 "$(cat $TB/hI/host.pid)" crashes the whole host at once. Usage: host_boot.sh I
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/names.sh"
i=$1; h=$NSPFX$i; d=$TB/h$i
# Folders under /root or /tmp that hosts must still see (the Python install, a venv), read-only.
KEEP=${STYX_TESTBED_KEEP:-$(python3 -c "import os, sys; print(os.path.realpath(sys.base_prefix))")}
INIT="hostname h$i
  mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd"
for k in $KEEP; do
  [ -d "$k" ] || continue
  INIT="$INIT
  mkdir -p $d$k && mount --bind $k $d$k && mount -o remount,bind,ro $d$k"
done
# A container runtime needs the cgroup hierarchies (ip netns exec hides them) and, per host, its
# own storage (the disk: kept over a reboot) and the test world's /etc/containers (cluster_up.sh).
CG=$("$HERE/cgroups.sh")
[ -z "$CG" ] || INIT="$INIT
  $CG"
if [ -d $TB/containers-etc ] && [ -d /etc/containers ]; then INIT="$INIT
  mount --bind $TB/containers-etc /etc/containers
  mkdir -p $d/containers /var/lib/containers && mount --bind $d/containers /var/lib/containers"
fi
INIT="$INIT
  mount --rbind $d/root /root"
case $TB in /tmp/*) INIT="$INIT
  mkdir -p $d/tmp/${TB#/tmp/} && mount --bind $TB $d/tmp/${TB#/tmp/}";; esac
INIT="$INIT
  mount --rbind $d/tmp /tmp"
setsid ip netns exec $h unshare --mount --uts --pid --fork --kill-child --mount-proc --propagation private \
  sh -c "$INIT; exec /usr/sbin/sshd -D -f $d/sshd_config -E $d/sshd.log" </dev/null >$d/boot.log 2>&1 &
echo $! > $d/host.pid
for t in $(seq 1 100); do
  ip netns exec $h bash -c "exec 3<>/dev/tcp/$NET.$((10+i))/22" 2>/dev/null && exit 0; sleep 0.05; done
echo "host $i: sshd not up (see $d/boot.log, $d/sshd.log)" >&2; exit 1
