#!/usr/bin/env python3
"""Writes the part of Triton's grpc_service.proto (package `inference`) that
`hps serve` answers, rebuilt from the serialized descriptor that the installed
tritonclient.grpc carries, so field names and numbers are exactly the ones
tritonclient sends.

    python3 scripts/triton-proto-from-tritonclient.py > Sources/HPSServer/GRPC/Proto/grpc_service.proto

Needs `pip install 'tritonclient[grpc]'`. The RPCs kept are RPCS below; the
messages kept are those they reach. The other RPCs of the service are answered
UNIMPLEMENTED by the server without needing their message types.
"""
from google.protobuf import descriptor_pb2
from tritonclient.grpc import service_pb2
from importlib.metadata import version

RPCS = ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
        "ModelInfer", "ModelStreamInfer", "RepositoryIndex"]

T = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    T.TYPE_DOUBLE: "double", T.TYPE_FLOAT: "float", T.TYPE_INT64: "int64", T.TYPE_UINT64: "uint64",
    T.TYPE_INT32: "int32", T.TYPE_FIXED64: "fixed64", T.TYPE_FIXED32: "fixed32", T.TYPE_BOOL: "bool",
    T.TYPE_STRING: "string", T.TYPE_BYTES: "bytes", T.TYPE_UINT32: "uint32", T.TYPE_SFIXED32: "sfixed32",
    T.TYPE_SFIXED64: "sfixed64", T.TYPE_SINT32: "sint32", T.TYPE_SINT64: "sint64",
}

file = descriptor_pb2.FileDescriptorProto()
service_pb2.DESCRIPTOR.CopyToProto(file)
assert file.syntax == "proto3" and file.package == "inference"
messages = {m.name: m for m in file.message_type}
service = next(s for s in file.service if s.name == "GRPCInferenceService")
methods = [next(m for m in service.method if m.name == name) for name in RPCS]


def short(type_name):
    prefix = ".inference."
    assert type_name.startswith(prefix), f"{type_name} is outside package inference"
    return type_name[len(prefix):]


# The top-level messages reachable from the kept RPCs.
kept, pending = [], [short(t) for m in methods for t in (m.input_type, m.output_type)]
while pending:
    name = pending.pop().split(".")[0]
    if name in kept:
        continue
    kept.append(name)

    def walk(message):
        for field in message.field:
            if field.type in (T.TYPE_MESSAGE, T.TYPE_ENUM):
                pending.append(short(field.type_name))
        for nested in message.nested_type:
            walk(nested)
    walk(messages[name])


def field_type(field, scope):
    if field.type in (T.TYPE_MESSAGE, T.TYPE_ENUM):
        name = short(field.type_name)
        return name[len(scope) + 1:] if name.startswith(scope + ".") else name
    return SCALARS[field.type]


def write_message(message, indent, scope, out):
    pad = "  " * indent
    full = f"{scope}.{message.name}" if scope else message.name
    out.append(f"{pad}message {message.name} {{")
    maps = {n.name: n for n in message.nested_type if n.options.map_entry}
    for nested in message.nested_type:
        if not nested.options.map_entry:
            write_message(nested, indent + 1, full, out)
    assert not message.enum_type, "enums are not written by this script"
    oneofs = {}
    for field in message.field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            oneofs.setdefault(field.oneof_index, []).append(field)
    written_oneofs = set()
    for field in message.field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            index = field.oneof_index
            if index in written_oneofs:
                continue
            written_oneofs.add(index)
            out.append(f"{pad}  oneof {message.oneof_decl[index].name} {{")
            for member in oneofs[index]:
                out.append(f"{pad}    {field_type(member, full)} {member.name} = {member.number};")
            out.append(f"{pad}  }}")
            continue
        entry = maps.get(short(field.type_name).split(".")[-1]) if field.type == T.TYPE_MESSAGE else None
        if entry is not None and field.label == T.LABEL_REPEATED:
            key, value = entry.field
            out.append(f"{pad}  map<{field_type(key, full)}, {field_type(value, full)}> {field.name} = {field.number};")
            continue
        label = "repeated " if field.label == T.LABEL_REPEATED else ""
        out.append(f"{pad}  {label}{field_type(field, full)} {field.name} = {field.number};")
    out.append(f"{pad}}}")


out = [
    "// The part of Triton's grpc_service.proto (KServe v2 over gRPC) that swift-hps",
    "// serves, with the field names and numbers of the original, so tritonclient.grpc",
    "// interoperates. Rebuilt by scripts/triton-proto-from-tritonclient.py from the",
    f"// descriptor in tritonclient {version('tritonclient')}; regenerate the Swift code",
    "// with scripts/generate-grpc.sh.",
    "//",
    "// Derived from triton-inference-server/common protobuf/grpc_service.proto,",
    "// Copyright NVIDIA CORPORATION & AFFILIATES, under the BSD 3-Clause License:",
    "// redistributions must retain this notice; neither NVIDIA's name nor its",
    "// contributors' may endorse derived products without permission; it is",
    "// provided \"as is\", without warranty of any kind.",
    "",
    'syntax = "proto3";',
    "",
    "package inference;",
    "",
    "service GRPCInferenceService {",
]
for m in methods:
    client = "stream " if m.client_streaming else ""
    server = "stream " if m.server_streaming else ""
    out.append(f"  rpc {m.name}({client}{short(m.input_type)}) returns ({server}{short(m.output_type)}) {{}}")
out += ["}", ""]
for message in file.message_type:
    if message.name in kept:
        write_message(message, 0, "", out)
        out.append("")
print("\n".join(out).rstrip())
