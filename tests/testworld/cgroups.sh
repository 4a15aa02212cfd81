#!/bin/sh
# Print the mount commands that re-create this machine's cgroup hierarchies (as init sees them)
# under a fresh /sys: `ip netns exec` mounts a sysfs without them, and a container runtime
# (runc) then fails with "no cgroup mount found". Prints nothing where init has none.
awk '
  { for (i = 7; $i != "-"; i++) ; fstype = $(i + 1); opts = $(i + 3); mp = $5 }
  fstype == "cgroup2" && mp == "/sys/fs/cgroup" { print "mount -t cgroup2 cgroup2 /sys/fs/cgroup"; exit }
  fstype == "tmpfs" && mp == "/sys/fs/cgroup" { print "mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup" }
  fstype == "cgroup" && mp ~ /^\/sys\/fs\/cgroup\// {
    sub(/^rw,/, "", opts); sub(/^ro,/, "", opts)
    if (opts ~ /^name=/) opts = "none," opts
    print "mkdir -p " mp " && mount -t cgroup -o " opts " cgroup " mp
  }
' /proc/1/mountinfo
