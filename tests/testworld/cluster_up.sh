#!/bin/bash
# N test hosts h1..hN at $NET.11.. on bridge $BR ($NET.1), each with its own sshd, HOME, /tmp and /run.
# Needs root, iproute2, openssh-server. Writes only under $STYX_TESTBED.
# Usage: N=3 [STYX_TESTBED=DIR] [STYX_TESTBED_SLOT=k] cluster_up.sh   (see names.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/names.sh"
N=${N:-3}
mkdir -p "$TB"
printf 'SLOT=%s\nN=%s\n' "$SLOT" "$N" > "$TB/testbed.env"
ip link show $BR >/dev/null 2>&1 || { ip link add $BR type bridge
  ip addr add $NET.1/24 dev $BR; ip link set $BR up; }
[ -f $TB/id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C styx-test -f $TB/id_ed25519
: > $TB/ssh_config
for i in $(seq 1 $N); do
  h=$NSPFX$i; addr=$NET.$((10+i)); d=$TB/h$i
  mkdir -p $d/root/.ssh $d/tmp; chmod 700 $d/root $d/root/.ssh; chmod 1777 $d/tmp
  cp $TB/id_ed25519.pub $d/root/.ssh/authorized_keys
  [ -f $d/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f $d/ssh_host_ed25519_key
  cat > $d/sshd_config <<EOC
ListenAddress $addr:22
HostKey $d/ssh_host_ed25519_key
PidFile $d/sshd.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
AuthorizedKeysFile .ssh/authorized_keys
StrictModes no
PrintMotd no
Subsystem sftp internal-sftp
MaxStartups 200:30:400
MaxSessions 200
ClientAliveInterval 5
ClientAliveCountMax 3
EOC
  # A name left by a test run in another mount namespace (ip netns exec) is a dead file here.
  if ip netns list | grep -q "^$h\b" && ! { ip netns exec $h true && ip link show $VETH$i; } >/dev/null 2>&1; then
    ip netns del $h 2>/dev/null || rm -f /run/netns/$h; fi
  ip netns list | grep -q "^$h\b" || {
    ip link del $VETH$i 2>/dev/null || true   # the end of a link whose host is gone
    ip netns add $h
    ip link add $VETH$i type veth peer name eth0 netns $h
    ip link set $VETH$i master $BR up
    ip -n $h addr add $addr/24 dev eth0; ip -n $h link set lo up; ip -n $h link set eth0 up; }
  [ -n "$(ip netns pids $h)" ] || "$HERE/host_boot.sh" $i
  printf 'Host h%s\n  HostName %s\n' $i $addr >> $TB/ssh_config
done
cat >> $TB/ssh_config <<EOC
Host h*
  User root
  IdentityFile $TB/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $TB/known_hosts
  StrictHostKeyChecking accept-new
  BatchMode yes
  ConnectTimeout 5
  ServerAliveInterval 2
  ServerAliveCountMax 3
  LogLevel ERROR
EOC
