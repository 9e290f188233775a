#!/usr/bin/env python3
"""Writes the fuzz harnesses' seed corpora (Fuzz/Corpus/TARGET/*): small, real
examples of what each parser reads, in the layout each harness takes (its doc
comment in Fuzz/Sources). Run from the repository root; the output is
committed, so this runs only when a seed is added. The gRPC seeds are made
with tritonclient's own protobuf classes, as a client sends them."""
import json
import os
import struct

ROOT = "Fuzz/Corpus"


def put(target, name, data):
    os.makedirs(f"{ROOT}/{target}", exist_ok=True)
    with open(f"{ROOT}/{target}/{name}", "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# The HugeCTR configuration: the notebook's, and one with every tier and Kafka.
notebook = {
    "supportlonglong": False, "fuse_embedding_table": True,
    "models": [{
        "model": "8_table", "sparse_files": [f"embeddings/table{i}" for i in range(8)],
        "num_of_worker_buffer_in_pool": 8, "embedding_table_names": [f"table{i}" for i in range(8)],
        "embedding_vecsize_per_table": [128] * 8, "maxnum_catfeature_query_per_table_per_sample": [26] * 8,
        "default_value_for_each_table": [0.0], "deployed_device_list": [0], "max_batch_size": 256,
        "cache_refresh_percentage_per_iteration": 1.0, "hit_rate_threshold": 1.0, "gpucacheper": 1.0,
        "gpucache": True, "embedding_cache_type": "dynamic", "use_context_stream": True}]}
put("Configuration", "notebook.json", json.dumps(notebook, indent=2))
tiers = {
    "supportlonglong": True,
    "volatile_db": {"type": "redis_cluster", "address": "127.0.0.1:7000,127.0.0.1:7001", "num_partitions": 8,
                    "overflow_margin": 1000000, "overflow_policy": "evict_oldest", "initial_cache_rate": 0.5,
                    "update_filters": ["^hps_et.m.+$"]},
    "persistent_db": {"type": "rocks_db", "path": "/tmp/rocksdb", "num_threads": 4, "read_only": False,
                      "max_batch_size": 1024, "update_filters": [".+"]},
    "update_source": {"type": "kafka_message_queue", "brokers": "127.0.0.1:9092", "receive_buffer_size": 262144,
                      "poll_timeout_ms": 500, "max_batch_size": 8192, "failure_backoff_ms": 50, "max_commit_interval": 32},
    "models": [{"model": "m", "sparse_files": ["a", "b"], "embedding_table_names": ["t0", "t1"],
                "embedding_vecsize_per_table": [4, 8], "maxnum_catfeature_query_per_table_per_sample": [1, 2],
                "default_value_for_each_table": [0.5, 1], "deployed_device_list": [0],
                "embedding_cache_type": "static", "use_static_table": True}]}
put("Configuration", "tiers.json", json.dumps(tiers))
put("Configuration", "minimal.json", '{"models": [{"model": "m", "sparse_files": ["a"], "embedding_vecsize_per_table": [2], '
    '"maxnum_catfeature_query_per_table_per_sample": [1], "deployed_device_list": [0]}]}')


# Sparse model folders: [vec size, flags, key file length (LE16)] + key file + vector file.
def folder(keys, vec_size, flags=0, configured=None, patch=b""):
    key_bytes = b"".join(struct.pack("<q", k) for k in keys)
    vectors = b"".join(struct.pack("<f", 0.25 * k + j) for k in keys for j in range(vec_size))
    return bytes([vec_size if configured is None else configured, flags]) + struct.pack("<H", len(key_bytes)) \
        + key_bytes + vectors + patch


put("SparseModelFolder", "four-keys", folder([0, 1, 2, 3], 4))
put("SparseModelFolder", "repeated-key", folder([7, 9, 7], 2))
put("SparseModelFolder", "int32-keys", folder([5, 2**31 - 1, -2**31], 1, flags=1))
put("SparseModelFolder", "inferred-vec-size", folder([10, 20], 3, configured=0))
put("SparseModelFolder", "damaged-index", folder([1, 2, 3, 4, 5, 6], 2, flags=2, patch=b"\x01\x00\x00\x00" * 8))


# KServe v2 HTTP bodies: [has header length, header length LE16] + body, as tritonclient sends them.
def http(request, binary=b""):
    header = json.dumps(request).encode()
    return (bytes([1]) + struct.pack("<H", len(header)) if binary else bytes([0, 0, 0])) + header + binary


keys = [3, 4, 105]
put("KServeHTTP", "json", http({"inputs": [
    {"name": "KEYS", "datatype": "INT64", "shape": [1, 3], "data": keys},
    {"name": "NUMKEYS", "datatype": "INT32", "shape": [1, 2], "data": [2, 1]}],
    "outputs": [{"name": "OUTPUT0"}]}))
key_bytes = b"".join(struct.pack("<q", k) for k in keys)
count_bytes = struct.pack("<ii", 2, 1)
put("KServeHTTP", "binary", http({"id": "7", "inputs": [
    {"name": "KEYS", "datatype": "INT64", "shape": [3], "parameters": {"binary_data_size": len(key_bytes)}},
    {"name": "NUMKEYS", "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": len(count_bytes)}}],
    "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]}, key_bytes + count_bytes))
put("KServeHTTP", "int32-keys", http({"inputs": [
    {"name": "KEYS", "datatype": "INT32", "shape": [4], "data": [1, 2, 101, 199]},
    {"name": "NUMKEYS", "datatype": "INT32", "shape": [2], "data": [2, 2]}],
    "parameters": {"binary_data_output": True}}))

# KServe v2 gRPC ModelInferRequest messages.
from tritonclient.grpc import service_pb2  # noqa: E402

request = service_pb2.ModelInferRequest(model_name="2_table", id="1")
for name, datatype, shape in [("KEYS", "INT64", [3]), ("NUMKEYS", "INT32", [2])]:
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = name, datatype
    tensor.shape.extend(shape)
request.outputs.add().name = "OUTPUT0"
request.raw_input_contents.extend([key_bytes, count_bytes])
put("KServeGRPC", "raw-contents", request.SerializeToString())
typed = service_pb2.ModelInferRequest(model_name="2_table")
for name, datatype, values in [("KEYS", "INT64", keys), ("NUMKEYS", "INT64", [1, 2])]:
    tensor = typed.inputs.add()
    tensor.name, tensor.datatype = name, datatype
    tensor.shape.append(len(values))
    tensor.contents.int64_contents.extend(values)
put("KServeGRPC", "typed-contents", typed.SerializeToString())

# RESP: [sink rows, value size, read size] + what Redis sends.
put("RESP", "hmget-sink", bytes([3, 8, 5]) + b"*3\r\n$8\r\nABCDEFGH\r\n$-1\r\n$8\r\n12345678\r\n")
put("RESP", "replies", bytes([0, 0, 16]) + b"+OK\r\n:42\r\n-MOVED 3999 127.0.0.1:7001\r\n$-1\r\n*-1\r\n*0\r\n")
put("RESP", "cluster-slots", bytes([0, 0, 255]) + b"*2\r\n*3\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$40\r\n"
    + b"e" * 40 + b"\r\n*3\r\n:5461\r\n:16383\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n")
put("RESP", "error-in-array", bytes([2, 4, 1]) + b"*2\r\n-ERR wrong\r\n$4\r\nabcd\r\n")


# Kafka update messages: [vec size − 1, topic length] + topic + message (HugeCTR's format).
def message(pairs, vec_size, topic="hps_et.m.t0"):
    body = struct.pack("<II", 0x52544348, vec_size * 4) + b"".join(
        struct.pack("<q", k) + struct.pack(f"<{vec_size}f", *v) for k, v in pairs)
    return bytes([vec_size - 1, len(topic)]) + topic.encode() + body


put("UpdateMessage", "two-pairs", message([(1, [0.5, 1.5]), (-7, [2.0, 3.0])], 2))
put("UpdateMessage", "beacon", message([], 4, "hps_et.8_table.table0"))
put("UpdateMessage", "bad-topic", message([(3, [1.0])], 1, "hps_et.m"))
