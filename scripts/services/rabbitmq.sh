#!/usr/bin/env bash
# Runs a local RabbitMQ broker for hekate's AMQP tests, CI and users trying AMQPInput /
# AMQPOutput: guest/guest on 127.0.0.1:5672 (loopback only), default vhost "/", and an
# AMQPS listener on 127.0.0.1:5671 that requires a client certificate. Its test PKI (a CA,
# the broker's certificate for localhost/127.0.0.1, and a client certificate) is made once
# with openssl in $TLS_DIR (/etc/rabbitmq/hekate-tls): ca.pem, client.pem, client.key.
# Called directly or through scripts/services.sh. Needs root (apt-get, rabbitmq user).
#
#   scripts/services/rabbitmq.sh start    install rabbitmq-server if missing, start, wait until it answers
#   scripts/services/rabbitmq.sh stop     stop the broker and the epmd it left behind
#   scripts/services/rabbitmq.sh status   exit 0 when the broker answers on 127.0.0.1:5672
#
# Every command is idempotent: start on a running broker and stop on a stopped one succeed.
set -euo pipefail

PORT=5672
TLS_PORT=5671
TLS_DIR=/etc/rabbitmq/hekate-tls
CONFIG=/etc/rabbitmq/hekate-test.conf
START_TIMEOUT=${RABBITMQ_START_TIMEOUT:-60}
# Loopback only: the broker keeps the default guest/guest account, which RabbitMQ only
# accepts from localhost anyway.
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$PORT
export ERL_EPMD_ADDRESS=127.0.0.1
# The Erlang distribution port (25672, used by rabbitmqctl) on loopback too.
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CONFIG_FILE=$CONFIG

log() { echo "rabbitmq.sh: $*" >&2; }
# shellcheck source=scripts/services/test_pki.sh
. "$(dirname "$0")/test_pki.sh"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$PORT}") 2>/dev/null; }

answering() { port_open && port_open "$TLS_PORT" && rabbitmqctl -q status >/dev/null 2>&1; }

# The test PKI (scripts/services/test_pki.sh) and the broker config, made once.
tls_setup() {
  if [ ! -f "$TLS_DIR/client.pem" ]; then
    log "making the AMQPS test PKI in $TLS_DIR"
    make_test_pki "$TLS_DIR"
    chown -R rabbitmq:rabbitmq "$TLS_DIR"
  fi
  cat > "$CONFIG" <<CONF
# Written by hekate's scripts/services/rabbitmq.sh: AMQPS on loopback, client certificate required.
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
CONF
}

install() {
  command -v rabbitmq-server >/dev/null && return 0
  log "installing rabbitmq-server (apt)"
  # Wait for a concurrent apt/dpkg run (another service script, unattended upgrades).
  local apt=(apt-get -o DPkg::Lock::Timeout=600)
  if ! DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends rabbitmq-server >/dev/null; then
    "${apt[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends rabbitmq-server >/dev/null
  fi
}

start() {
  if answering; then
    log "already running on 127.0.0.1:$PORT"
    return 0
  fi
  install
  tls_setup
  if port_open && ! port_open "$TLS_PORT" && rabbitmqctl -q status >/dev/null 2>&1; then
    log "running without the AMQPS listener (an older config); restarting"
    stop
  fi
  if port_open; then
    log "127.0.0.1:$PORT is open but rabbitmqctl gets no answer; waiting for the node"
  else
    # No inherited stdio: a daemon holding the caller's pipe would keep CI's log open.
    rabbitmq-server -detached </dev/null >/dev/null 2>&1
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until port_open && port_open "$TLS_PORT"; do
    if ((SECONDS >= deadline)); then
      log "broker did not open 127.0.0.1:$PORT and :$TLS_PORT within ${START_TIMEOUT}s; see /var/log/rabbitmq/"
      return 1
    fi
    sleep 0.2
  done
  if ! timeout "$START_TIMEOUT" rabbitmqctl -q await_startup >/dev/null; then
    log "broker did not finish starting; see /var/log/rabbitmq/"
    return 1
  fi
  log "running on 127.0.0.1:$PORT (guest/guest) and AMQPS on 127.0.0.1:$TLS_PORT"
}

stop() {
  if command -v rabbitmqctl >/dev/null && rabbitmqctl -q status >/dev/null 2>&1; then
    rabbitmqctl -q stop >/dev/null
  fi
  # rabbitmq-server starts epmd as a daemon and leaves it running; stop only that one.
  local pid
  for pid in $(pgrep -x epmd -u rabbitmq 2>/dev/null || true); do
    kill "$pid" 2>/dev/null || true
  done
  log "stopped"
}

status() {
  if answering; then
    log "running on 127.0.0.1:$PORT"
  else
    log "not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
