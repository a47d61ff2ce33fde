#!/usr/bin/env bash
# A single-node Apache Cassandra for CassandraOutput's tests and benchmarks.
#
#   scripts/services/cassandra.sh start    # fetch (first time), start, wait for CQL on 9042
#   scripts/services/cassandra.sh stop     # stop and wait until the process is gone
#   scripts/services/cassandra.sh status   # exit 0 when running and answering CQL, 1 otherwise
#   scripts/services/cassandra.sh fetch    # only assemble the jars
#
# Maven Central carries no Cassandra 5.0 binary tarball (apache-cassandra stops at
# 4.0-alpha2), so this script assembles the official `cassandra-all` jar and its runtime
# dependencies from Maven Central with Maven, writes a minimal cassandra.yaml and
# logback.xml, and runs org.apache.cassandra.service.CassandraDaemon with Java 17.
# Everything lives in a cache folder outside the repository:
#   ${HEKATE_SERVICES_DIR:-$HOME/.cache/hekate/services}/cassandra
# CQL over TLS is on the same port (`optional: true`): plaintext clients as before, and TLS
# clients must show a certificate from the test CA. The PKI (scripts/services/test_pki.sh)
# is in $DIR/tls: ca.pem, client.pem, client.key; the server's key and certificate are
# combined in server-keystore.pem for Cassandra's PEMBasedSslContextFactory.
# Needs java (17) and mvn (installed with apt-get when missing and run as root). Environment: CASSANDRA_HEAP (default 1g), CASSANDRA_CQL_PORT
# (default 9042), CASSANDRA_WAIT (seconds to wait for CQL, default 180).
set -euo pipefail

CASSANDRA_VERSION=5.0.6
DIR="${HEKATE_SERVICES_DIR:-$HOME/.cache/hekate/services}/cassandra"
HEAP="${CASSANDRA_HEAP:-1g}"
PORT="${CASSANDRA_CQL_PORT:-9042}"
WAIT="${CASSANDRA_WAIT:-180}"
PIDFILE="$DIR/cassandra.pid"
LOG="$DIR/log/system.log"

# Java 17 module openings Cassandra 5.0 needs (from its conf/jvm17-server.options).
OPENS=(
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
  --add-exports java.base/sun.nio.ch=ALL-UNNAMED
  --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED
  --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.math=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.net=ALL-UNNAMED
)

log() { echo "cassandra: $*" >&2; }
# shellcheck source=scripts/services/test_pki.sh
. "$(dirname "$0")/test_pki.sh"

# java 17 and mvn: installed with apt-get when missing and we may (root), else a clear error.
ensure_tools() {
  command -v java >/dev/null && command -v mvn >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing openjdk-17-jre-headless and maven"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless maven >&2
  else
    log "needs java (17) and mvn; install openjdk-17-jre-headless and maven"
    exit 1
  fi
}

# The jars: cassandra-all and its runtime dependencies, fetched once.
fetch() {
  local lib="$DIR/lib"
  if [ -f "$lib/cassandra-all-$CASSANDRA_VERSION.jar" ]; then return 0; fi
  ensure_tools
  mkdir -p "$DIR"
  cat >"$DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hekate</groupId><artifactId>cassandra-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId><artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF
  log "fetching cassandra-all $CASSANDRA_VERSION and its dependencies from Maven Central"
  rm -rf "$lib.tmp"
  (cd "$DIR" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$lib.tmp")
  rm -rf "$lib" && mv "$lib.tmp" "$lib"
}

write_conf() {
  mkdir -p "$DIR/conf" "$DIR/data" "$DIR/log"
  make_test_pki "$DIR/tls"
  cat "$DIR/tls/server.key" "$DIR/tls/server.pem" >"$DIR/tls/server-keystore.pem"
  chmod 0600 "$DIR/tls/server-keystore.pem"
  cat >"$DIR/conf/cassandra.yaml" <<EOF
cluster_name: hekate-test
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
data_file_directories: [$DIR/data/data]
commitlog_directory: $DIR/data/commitlog
saved_caches_directory: $DIR/data/saved_caches
hints_directory: $DIR/data/hints
cdc_raw_directory: $DIR/data/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:7000"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
native_transport_port: $PORT
storage_port: 7000
endpoint_snitch: SimpleSnitch
start_native_transport: true
client_encryption_options:
  enabled: true
  optional: true
  require_client_auth: true
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: $DIR/tls/server-keystore.pem
  truststore: $DIR/tls/ca.pem
EOF
  cat >"$DIR/conf/logback.xml" <<EOF
<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>$LOG</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
EOF
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q CassandraDaemon "/proc/$pid/cmdline" 2>/dev/null \
    && echo "$pid"
}

# A CQL handshake: an OPTIONS frame (protocol v4) must get a SUPPORTED frame (opcode 6) back.
cql_ready() {
  local reply
  reply=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3 \
    && head -c 5 <&3 | od -An -tx1" 2>/dev/null) || return 1
  [ "$(echo "$reply" | awk '{print $1, $5}')" = "84 06" ]
}

start() {
  if running_pid >/dev/null && ! grep -q client_encryption_options "$DIR/conf/cassandra.yaml"; then
    log "running without CQL over TLS (an older config); restarting"
    stop
  fi
  if pid=$(running_pid); then
    if cql_ready; then log "already running (pid $pid)"; return 0; fi
  else
    fetch
    write_conf
    ensure_tools
    log "starting Cassandra $CASSANDRA_VERSION in $DIR (heap $HEAP, CQL port $PORT)"
    launch
  fi
  local waited=0 relaunched=0
  until cql_ready; do
    if ! running_pid >/dev/null; then
      log "the process exited during start-up; last lines of $LOG and of $DIR/log/stdout.log:"
      tail -n 20 "$LOG" >&2 2>/dev/null || true
      tail -n 20 "$DIR/log/stdout.log" >&2 2>/dev/null || true
      # Right after a stop, a port of the old JVM (JMX's RMI port among them) can still
      # be held for a moment: one more launch, a few seconds later, before giving up.
      if [ "$relaunched" = 1 ]; then exit 1; fi
      relaunched=1
      log "launching once more in 5s"
      sleep 5
      launch
    fi
    if [ "$waited" -ge "$WAIT" ]; then log "no CQL answer on port $PORT after ${WAIT}s (see $LOG)"; exit 1; fi
    sleep 1
    waited=$((waited + 1))
  done
  log "ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), ${waited}s)"
}

# Starts the JVM in the background and records its pid; its stdout and stderr are
# appended to log/stdout.log, one header per launch.
launch() {
  echo "=== launch at $(date -u +%FT%TZ)" >>"$DIR/log/stdout.log"
  (cd "$DIR" && exec nohup java -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -Xss256k "${OPENS[@]}" \
    -Dcassandra.config="file://$DIR/conf/cassandra.yaml" \
    -Dlogback.configurationFile="file://$DIR/conf/logback.xml" \
    -Dcassandra.storagedir="$DIR/data" -Dcassandra.jmx.local.port=7199 \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -javaagent:"$DIR/lib/jamm-0.4.0.jar" -cp "$DIR/conf:$DIR/lib/*" \
    org.apache.cassandra.service.CassandraDaemon >>"$DIR/log/stdout.log" 2>&1 </dev/null) &
  echo $! >"$PIDFILE"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running"; rm -f "$PIDFILE"; return 0; fi
  kill "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; log "stopped (pid $pid)"; return 0; }
    sleep 1
  done
  log "still running after 60s; sending SIGKILL"
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

status() {
  if pid=$(running_pid) && cql_ready; then
    log "running (pid $pid), CQL answers on 127.0.0.1:$PORT"
    return 0
  fi
  log "not running"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
