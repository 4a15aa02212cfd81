# Sourced by the testbed scripts: the names of testbed slot $SLOT (0 unless the testbed says).
# Slot 0 is the documented layout (styx-hI, styxbr0, 198.18.0.0/24); slot k>0 lets another
# testbed run beside it (styx-skhI, styxbrk, 198.18.k.0/24, veths vskhI).
TB=${STYX_TESTBED:-/tmp/styx-testbed}
[ -f "$TB/testbed.env" ] && . "$TB/testbed.env"
SLOT=${SLOT:-${STYX_TESTBED_SLOT:-0}}
if [ "$SLOT" = 0 ]; then NSPFX=styx-h; VETH=vh; else NSPFX=styx-s${SLOT}h; VETH=vs${SLOT}h; fi
BR=styxbr$SLOT; NET=198.18.$SLOT
