#!/usr/bin/env python3
"""Generates protobuf test vectors for hekate's `message::proto` with Google's official
`protobuf` package, from tests/fixtures/message.proto (Heka's schema).

Usage (in a throwaway venv):
    python3 -m venv /tmp/v && /tmp/v/bin/pip install protobuf grpcio-tools
    /tmp/v/bin/python scripts/gen_proto_vectors.py > tests/fixtures/proto_vectors.txt

Each output line is `<name> <hex>`; tests/proto_vectors.rs builds the same messages in
Rust and checks hekate encodes them to exactly these bytes and decodes them back.
Every optional field the Rust encoder always writes (severity, field value_type and
representation) is set explicitly here so the official encoder emits it too.
"""
import importlib
import os
import sys
import tempfile

from grpc_tools import protoc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
UUID = bytes(range(16))


def load_pb2():
    out = tempfile.mkdtemp()
    rc = protoc.main(["protoc", f"-I{FIXTURES}", f"--python_out={out}", "message.proto"])
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out)
    return importlib.import_module("message_pb2")


def field(pb, m, name, vtype, rep="", values=()):
    f = m.fields.add()
    f.name = name
    f.value_type = vtype
    f.representation = rep
    target = {
        pb.Field.STRING: f.value_string,
        pb.Field.BYTES: f.value_bytes,
        pb.Field.INTEGER: f.value_integer,
        pb.Field.DOUBLE: f.value_double,
        pb.Field.BOOL: f.value_bool,
    }[vtype]
    target.extend(values)


def vectors(pb):
    m = pb.Message(uuid=UUID, timestamp=0, severity=7)
    yield "minimal", m

    m = pb.Message(uuid=UUID, timestamp=1700000000123456789, type="app.log",
                   logger="tail", severity=0, payload="hello", env_version="0.8",
                   pid=-1, hostname="web-01")
    yield "headers", m

    m = pb.Message(uuid=UUID, timestamp=-1, severity=-3, pid=0,
                   payload="h\u00e9llo \u2603 \U0001F389")
    yield "negative_and_unicode", m

    m = pb.Message(uuid=UUID, timestamp=42, severity=6)
    field(pb, m, "s", pb.Field.STRING, "", ["x"])
    field(pb, m, "ss", pb.Field.STRING, "list", ["a", "", "\u00e9"])
    field(pb, m, "b", pb.Field.BYTES, "", [b"\x00\xff", b""])
    field(pb, m, "i", pb.Field.INTEGER, "count",
          [-1, 0, 300, 2**63 - 1, -2**63])
    field(pb, m, "d", pb.Field.DOUBLE, "ms", [1.5, -0.0, float("inf"), 1e-300])
    field(pb, m, "o", pb.Field.BOOL, "", [True, False, True])
    field(pb, m, "empty", pb.Field.INTEGER)
    field(pb, m, "s", pb.Field.STRING, "", ["again"])
    yield "fields", m

    m = pb.Message(uuid=UUID, timestamp=1, severity=7, payload="p" * 300)
    for i in range(20):
        field(pb, m, f"n{i}", pb.Field.INTEGER, "", [i * 1000])
    yield "large", m


def main():
    pb = load_pb2()
    for name, m in vectors(pb):
        print(name, m.SerializeToString().hex())


if __name__ == "__main__":
    main()
