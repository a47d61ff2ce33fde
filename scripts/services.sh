#!/usr/bin/env bash
# The external services hekate's AMQP and Cassandra plugins are tested against: a real
# RabbitMQ (Debian's rabbitmq-server) and a real Apache Cassandra 5.0 (official jars from
# Maven Central). Used by tests, CI and users (README "Services").
#
#   scripts/services.sh start|stop|status [rabbitmq|cassandra ...]
#
# With no service named, acts on all of them. Each scripts/services/<name>.sh installs what
# it needs, is idempotent, and waits until its service answers on 127.0.0.1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
action="${1:-}"
case "$action" in
  start|stop|status) shift ;;
  *) echo "usage: $0 start|stop|status [rabbitmq|cassandra ...]" >&2; exit 2 ;;
esac
services=("$@")
[ ${#services[@]} -gt 0 ] || services=(rabbitmq cassandra)
rc=0
for s in "${services[@]}"; do
  script="$here/services/$s.sh"
  [ -f "$script" ] || { echo "services.sh: unknown service '$s' (no $script)" >&2; exit 2; }
  bash "$script" "$action" || rc=$?
  # start must not go on with a dead service; stop/status report every service.
  if [ "$action" = start ] && [ $rc -ne 0 ]; then
    echo "services.sh: $s failed to start (exit $rc)" >&2
    exit $rc
  fi
done
exit $rc
