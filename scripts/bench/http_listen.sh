#!/usr/bin/env bash
# HttpListenInput requests/s with wrk (POST of a 100-byte body, keep-alive), against
# nginx answering 204 to the same requests on loopback, measured in the same run.
# hekate's messages go to a FileOutput; the script checks that every 200 became a line.
# Usage: scripts/bench/http_listen.sh [SECONDS] [CONNECTIONS]   (default 10 s, 16)
# Needs: wrk, nginx (Debian: apt-get install wrk nginx-light).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
CONNS=${2:-16}
for tool in wrk nginx; do
  command -v $tool >/dev/null || [ -x /usr/sbin/$tool ] || { echo "missing $tool (apt-get install wrk nginx-light)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet --bin hekate
BIN=target/release/hekate
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT
PORT=$((20000 + RANDOM % 20000))
BODY=$(printf 'x%.0s' $(seq 100))

cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "$BODY"
wrk.headers["Content-Type"] = "text/plain"
LUA

run_wrk() { # url -> prints "requests/s non2xx total"
  wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$WORK/post.lua" "$1" > "$WORK/wrk.out"
  local rps non total
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  non=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out"); non=${non:-0}
  total=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  echo "$rps $non $total"
}

# 1. The peer: nginx, one worker, answering 204 without touching disk.
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$PORT; location / { return 204; } }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK"
sleep 0.3
read -r NGINX_RPS NGINX_NON NGINX_TOTAL < <(run_wrk "http://127.0.0.1:$PORT/")
kill "$(cat "$WORK/nginx.pid")"; rm -f "$WORK/nginx.pid"

# 2. hekate: HttpListenInput -> FileOutput (PayloadEncoder).
PORT=$((PORT + 1))
mkdir -p "$WORK/config.d"
cat > "$WORK/config.d/bench.toml" <<TOML
[in]
type = "HttpListenInput"
address = "127.0.0.1:$PORT"
[out]
type = "FileOutput"
message_matcher = "TRUE"
path = "$WORK/hekate.out"
TOML
/usr/bin/time -v $BIN -config "$WORK/config.d" 2> "$WORK/hekate.err" &
HPID=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
read -r HEKATE_RPS HEKATE_NON HEKATE_TOTAL < <(run_wrk "http://127.0.0.1:$PORT/")
sleep 1
kill -TERM "$(pgrep -P $HPID hekate || echo $HPID)"
wait $HPID || true
RSS_KB=$(grep 'Maximum resident set size' "$WORK/hekate.err" | awk '{print $NF}')
LINES=$(wc -l < "$WORK/hekate.out")
OK=$((HEKATE_TOTAL - HEKATE_NON))

printf 'machine: %s cores, %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'workload: wrk -t1 -c%d -d%ds, POST of %d B, keep-alive, loopback\n' "$CONNS" "$SECS" ${#BODY}
printf 'nginx 204 (1 worker):            %10.0f req/s  (%d non-2xx)\n' "$NGINX_RPS" "$NGINX_NON"
printf 'hekate HttpListenInput -> file:  %10.0f req/s  (%d non-2xx, i.e. 503)  peak RSS %d KiB\n' "$HEKATE_RPS" "$HEKATE_NON" "$RSS_KB"
printf 'ratio hekate/nginx: %.2f   lines written %d for %d accepted requests (%s)\n' \
  "$(echo "$HEKATE_RPS / $NGINX_RPS" | bc -l)" "$LINES" "$OK" "$([ "$LINES" -ge "$OK" ] && [ "$LINES" -le $((OK + CONNS)) ] && echo "consistent: wrk drops up to $CONNS in-flight answers at the end" || echo MISMATCH)"
