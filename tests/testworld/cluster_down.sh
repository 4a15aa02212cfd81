#!/bin/bash
# Tear down the hosts and the bridge of the testbed in $STYX_TESTBED. Kills only processes of
# those hosts. Works from the root namespace and from inside a test namespace such as styx-ci.
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/names.sh"
for f in $TB/h*/host.pid; do   # the unshare of each host: with --kill-child its whole PID namespace dies
  p=$(cat "$f" 2>/dev/null); rm -f "$f"
  [ -n "$p" ] && grep -qa unshare /proc/$p/cmdline 2>/dev/null && kill -9 $p
done
for d in $TB/h*/; do
  [ -d "$d" ] || continue; i=$(basename $d); i=${i#h}; ns=$NSPFX$i
  ip link del $VETH$i 2>/dev/null   # now, not when the kernel gets round to the namespace
  ip netns list 2>/dev/null | grep -q "^$ns\b" || continue
  for t in 1 2 3 4 5 6 7 8 9 10; do pids=$(ip netns pids $ns 2>/dev/null); [ -z "$pids" ] && break; kill -9 $pids 2>/dev/null; sleep 0.1; done
  ip netns del $ns 2>/dev/null || rm -f /run/netns/$ns
done
ip link del $BR 2>/dev/null; true
