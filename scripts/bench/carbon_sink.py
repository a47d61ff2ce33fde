#!/usr/bin/env python3
"""A tiny carbon plaintext sink for scripts/bench/statsd_vs_etsy.sh.

Listens on TCP, reads `name value ts` lines and keeps, in a file, the running sum of the
values whose name matches a regex (the benchmark's per-flush counts). Writes the total
after every chunk so the caller can read it at any time.

Usage: carbon_sink.py PORT REGEX TOTAL_FILE
"""
import os
import re
import socketserver
import sys
import threading

PORT, PATTERN, TOTAL_FILE = int(sys.argv[1]), re.compile(sys.argv[2]), sys.argv[3]
LOCK = threading.Lock()
STATE = {"total": 0.0, "lines": 0}


def publish():
    tmp = TOTAL_FILE + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d\n" % (STATE["total"], STATE["lines"]))
    os.replace(tmp, TOTAL_FILE)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            parts = raw.decode("utf-8", "replace").split()
            if len(parts) != 3:
                continue
            with LOCK:
                STATE["lines"] += 1
                if PATTERN.search(parts[0]):
                    STATE["total"] += float(parts[1])
                publish()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with LOCK:
    publish()
Server(("127.0.0.1", PORT), Handler).serve_forever()
