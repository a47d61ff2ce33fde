#!/usr/bin/env bash
# Installs what the integration tests need beside cargo: a Python venv at <repo>/.venv
# with Graphite's whisper 1.1.10 (the reference implementation tests/whisper_python.rs
# compares against) and aiosmtpd 1.4.6 (the SMTP server tests/smtp.rs delivers to).
# Idempotent: re-running only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("whisper") != "1.1.10")' 2>/dev/null \
  || .venv/bin/pip install -q whisper==1.1.10
# aiosmtpd: the SMTP server tests/smtp.rs sends mail to.
.venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("aiosmtpd") != "1.4.6")' 2>/dev/null \
  || .venv/bin/pip install -q aiosmtpd==1.4.6
# graphite-web 1.1.10 (the oracle of tests/graphite_web.rs, run through Django's test
# client by tests/fixtures/graphite_oracle.py; it needs libcairo2 to import) and Selenium
# (tests/fixtures/console_browser.py drives Debian's Chromium through chromedriver).
.venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("graphite-web") != "1.1.10")' 2>/dev/null \
  || .venv/bin/pip install -q graphite-web==1.1.10
.venv/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("selenium") != "4.51.0")' 2>/dev/null \
  || .venv/bin/pip install -q selenium==4.51.0
# Chromium and chromedriver (console browser tests), promtool from Debian's prometheus
# package (checks /metrics), libcairo2 for graphite-web.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v promtool >/dev/null || missing+=(prometheus)
ldconfig -p | grep -q 'libcairo.so.2' || missing+=(libcairo2)
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "test-deps: ${missing[*]} missing; run this script as root" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" fonts-dejavu-core
fi
# Java 17 and Maven for scripts/services/cassandra.sh (tests/cassandra*.rs need a real
# Apache Cassandra; the script assembles it from Maven Central).
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless maven
fi
# rsyslogd for tests/rsyslog.rs and scripts/bench/syslog_tcp_vs_rsyslog.sh (not started as
# a service here: the tests run their own instance in the foreground).
if ! [ -x /usr/sbin/rsyslogd ]; then
  [ "$(id -u)" = 0 ] || { echo "test-deps: rsyslog is missing; run this script as root" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rsyslog
fi
# rsyslog's GnuTLS network driver, for tests/rsyslog.rs forwarding over TLS.
if ! [ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ]; then
  [ "$(id -u)" = 0 ] || { echo "test-deps: rsyslog-gnutls is missing; run this script as root" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rsyslog-gnutls
fi
# tzdata for tests/syslog_dst.rs (RFC 3164 dates across Europe/Paris's clock changes).
if ! [ -e /usr/share/zoneinfo/Europe/Paris ]; then
  [ "$(id -u)" = 0 ] || { echo "test-deps: tzdata is missing; run this script as root" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tzdata
fi
# lua5.4 with Debian's C LPeg 1.0.2 (and its re.lua) as the oracle for tests/lpeg.rs and
# scripts/bench/lpeg_vs_c.sh.
if ! [ -x /usr/bin/lua5.4 ] || ! [ -e /usr/lib/x86_64-linux-gnu/liblua5.4-lpeg.so.2 ]; then
  [ "$(id -u)" = 0 ] || { echo "test-deps: lua5.4/lua-lpeg are missing; run this script as root" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends lua5.4 lua-lpeg
fi
