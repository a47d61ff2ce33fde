#!/usr/bin/env python3
"""Runs `hekate check` on every `.. code-block:: ini` example found under a folder.

Heka documented its configuration in reStructuredText (`docs/source/**/*.rst`) and in
the comment headers of its Lua plugins, always as `.. code-block:: ini` blocks holding
TOML. This script finds every such block under ROOT, writes each as the only file of a
`config.d`, runs `hekate check -config` on it and reports one line per example:

    PASS|FAIL <file>:<line> [<first error line>]

then `N passed, M failed`. With `--expect FILE` the results are compared with the
expectations listed there (`<file>:<line> pass|fail <substring>`), and the exit status is 1
on any difference. `--share-dir` sets `[hekad] share_dir` for examples that name Heka's
shipped Lua files (a local copy of Heka's share tree; nothing of it is in this
repository).

Usage: heka_doc_examples.py HEKATE_BIN ROOT [--share-dir DIR] [--expect FILE] [--quiet]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

DIRECTIVE = re.compile(r"^(\s*)(?:--\s*)?\.\. code-block:: ini\s*$")


def blocks(path):
    """Yields (line number, TOML text) for each ini code block in `path`."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        # Lua files carry the docs in `--[[ ... --]]` comments: strip a `-- ` prefix.
        base = len(m.group(1))
        start = i + 1
        body = []
        j = start
        while j < len(lines):
            line = lines[j]
            if line.strip() == "":
                body.append("")
                j += 1
                continue
            indent = len(line) - len(line.lstrip(" \t"))
            if indent <= base:
                break
            body.append(line)
            j += 1
        while body and body[-1] == "":
            body.pop()
        while body and body[0] == "":
            body.pop(0)
        if body:
            yield start, dedent(body)
        i = j


def dedent(body):
    """Removes the common leading whitespace (tabs count as one column each, as
    Heka's docs mix them)."""
    widths = [len(l) - len(l.lstrip(" \t")) for l in body if l.strip()]
    cut = min(widths) if widths else 0
    return "\n".join(l[cut:] for l in body) + "\n"


def examples(root):
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if not name.endswith((".rst", ".lua", ".md", ".txt", ".go")):
                continue
            path = os.path.join(dirpath, name)
            for line, text in blocks(path):
                yield os.path.relpath(path, root), line, text


def with_share_dir(text, share_dir, base_dir):
    """Points `[hekad]` share_dir (and base_dir) at the given folders unless the example
    sets them itself."""
    extra = []
    if not re.search(r"^\s*share_dir\s*=", text, re.M):
        extra.append(f'share_dir = "{share_dir}"')
    if not re.search(r"^\s*base_dir\s*=", text, re.M):
        extra.append(f'base_dir = "{base_dir}"')
    if not extra:
        return text
    if re.search(r"^\s*\[hekad\]\s*$", text, re.M):
        return re.sub(r"^(\s*\[hekad\]\s*)$", lambda m: m.group(1) + "\n" + "\n".join(extra), text, count=1, flags=re.M)
    return "[hekad]\n" + "\n".join(extra) + "\n\n" + text


def check(hekate, text, share_dir):
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "config.d")
        os.mkdir(conf)
        if share_dir:
            text = with_share_dir(text, share_dir, f"{d}/base")
        with open(os.path.join(conf, "example.toml"), "w") as f:
            f.write(text)
        r = subprocess.run(
            [hekate, "check", "-config", conf],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "RUST_LOG": "error"},
        )
        errors = [l for l in (r.stdout + r.stderr).splitlines() if "error" in l.lower()]
        return r.returncode == 0, errors


def load_expect(path):
    want = {}
    with open(path) as f:
        for raw in f:
            raw = raw.strip()
            if not raw or raw.startswith("#"):
                continue
            where, verdict, *rest = raw.split(" ", 2)
            want[where] = (verdict, rest[0] if rest else "")
    return want


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hekate")
    ap.add_argument("root")
    ap.add_argument("--share-dir")
    ap.add_argument("--expect")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    want = load_expect(a.expect) if a.expect else None
    passed = failed = 0
    mismatches = []
    seen = set()
    for rel, line, text in examples(a.root):
        where = f"{rel}:{line}"
        seen.add(where)
        ok, errors = check(a.hekate, text, a.share_dir)
        passed += ok
        failed += not ok
        first = errors[0] if errors else ""
        if not a.quiet or not ok:
            print(f"{'PASS' if ok else 'FAIL'} {where} {first}".rstrip())
        if want is not None:
            verdict, needle = want.get(where, ("?", ""))
            if verdict != ("pass" if ok else "fail") or (needle and needle not in "\n".join(errors)):
                mismatches.append(f"{where}: expected {verdict} {needle!r}, got {'pass' if ok else 'fail'}: {errors}")
    print(f"{passed} passed, {failed} failed")
    if want is not None:
        for where in sorted(set(want) - seen):
            mismatches.append(f"{where}: expected but not found")
        for m in mismatches:
            print("MISMATCH " + m)
        return 1 if mismatches else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
