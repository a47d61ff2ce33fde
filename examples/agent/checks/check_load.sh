#!/bin/sh
# A Nagios-style check of the 1-minute load average: check_load.sh WARN CRIT
# Prints "LOAD <STATE> - load average: L1, L5, L15 | load1=...;WARN;CRIT;0 ..." and exits
# 0 (OK), 1 (WARNING), 2 (CRITICAL) or 3 (UNKNOWN), as Nagios plugins do.
warn=${1:-4}
crit=${2:-8}
read -r l1 l5 l15 _ < "${PROC_DIR:-/proc}/loadavg" || { echo "LOAD UNKNOWN - cannot read loadavg"; exit 3; }
state=OK; code=0
if awk "BEGIN { exit !($l1 >= $crit) }"; then state=CRITICAL; code=2
elif awk "BEGIN { exit !($l1 >= $warn) }"; then state=WARNING; code=1; fi
echo "LOAD $state - load average: $l1, $l5, $l15 | load1=$l1;$warn;$crit;0 load5=$l5;;;0 load15=$l15;;;0"
exit $code
