#!/usr/bin/env python3
"""Produce-to-visible latency of online updates through `hps serve`, over
HTTP, while it serves a steady request rate.

A Kafka-protocol broker (librdkafka's mock cluster, started by the
confluent-kafka producer's `test.mock.num.brokers`) carries HugeCTR-format
update messages to `hps serve`, which follows it (`update_source`). The
producer posts 100 batches a second of UPDATES/100 keys of vec 128 to a table
of 100,000 keys; a probe key's vector in each batch holds the batch's number.
Load threads send RATE requests a second through tritonclient.http, each one
sample of 26 keys with the probe among them; a batch is visible at the first
answer that carries its number (or a later one). Reported: p50, p99 and max
of publish → first answer seen, over SECONDS after a warm-up, and the request
rate achieved.

Usage: HPS_BIN=.build/release/hps python3 scripts/update_latency_served.py [--updates 10000] [--rate 1000] [--seconds 20]
       (extra arguments after -- go to hps serve, e.g. -- --kafka-setting fetch.wait.max.ms=10)
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from confluent_kafka import Producer

DIM, KEYS = 128, 100_000
MODEL = "1_table"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message(keys, vectors):
    out = bytearray(b"HCTR") + struct.pack("<I", DIM * 4)
    for key, vector in zip(keys, vectors):
        out += struct.pack("<q", int(key)) + np.asarray(vector, dtype="<f4").tobytes()
    return bytes(out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("serve_args", nargs="*")
    args = parser.parse_args()
    hps = os.path.abspath(os.environ.get("HPS_BIN", ".build/release/hps"))
    producer = Producer({"test.mock.num.brokers": 1, "linger.ms": 1})
    broker = next(iter(producer.list_topics(timeout=10).brokers.values()))
    brokers = f"{broker.host}:{broker.port}"
    work = tempfile.mkdtemp(prefix="hps-latency-")
    subprocess.run([hps, "generate", "--output", work, "--tables", "1", "--vocab", str(KEYS), "--dim", str(DIM),
                    "--key-type", "int64"], check=True, capture_output=True)
    path = os.path.join(work, "hps.json")
    config = json.load(open(path))
    config["update_source"] = {"type": "kafka_message_queue", "brokers": brokers}
    json.dump(config, open(path, "w"))
    port = free_port()
    server = subprocess.Popen([hps, "serve", "--config", path, "--http-port", str(port), "--grpc-port", "0",
                               "--metrics-port", str(free_port()), *args.serve_args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    topic = f"hps_et.{MODEL}.table0"
    probe = 0  # table0 holds keys 0 ..< KEYS
    per_batch = max(1, args.updates // 100)
    published, visible = [], {}
    lock = threading.Lock()
    stop = threading.Event()
    answered = [0]
    rng = np.random.default_rng(3)

    def produce():
        start = time.perf_counter()
        sequence = 0
        while not stop.is_set():
            due = start + sequence / 100
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            keys = np.concatenate([[probe], rng.integers(1, KEYS, size=per_batch - 1)])
            vectors = rng.standard_normal((per_batch, DIM)).astype(np.float32)
            vectors[0, :] = sequence
            with lock:
                published.append(time.perf_counter())
            producer.produce(topic, message(keys, vectors))
            producer.poll(0)
            sequence += 1

    def load(index):
        client = httpclient.InferenceServerClient(url)
        local = np.random.default_rng(100 + index)
        start = time.perf_counter()
        count, seen = 0, -1
        period = args.threads / args.rate
        while not stop.is_set():
            due = start + count * period
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            keys = np.concatenate([[probe], local.integers(1, KEYS, size=25)]).astype(np.int64)
            inputs = [httpclient.InferInput("KEYS", [26], "INT64"), httpclient.InferInput("NUMKEYS", [1], "INT32")]
            inputs[0].set_data_from_numpy(keys, binary_data=True)
            inputs[1].set_data_from_numpy(np.array([26], dtype=np.int32), binary_data=True)
            try:
                out = client.infer(MODEL, inputs).as_numpy("OUTPUT0").reshape(26, DIM)
            except Exception:
                continue
            now = time.perf_counter()
            row = out[0]
            if row[0] == row[1] and float(row[0]).is_integer() and int(row[0]) > seen:
                number = int(row[0])
                with lock:
                    for s in range(seen + 1, number + 1):
                        visible.setdefault(s, now)
                seen = number
            count += 1
            with lock:
                answered[0] += 1

    threads = [threading.Thread(target=produce)] + [threading.Thread(target=load, args=(i,)) for i in range(args.threads)]
    for t in threads:
        t.start()
    try:
        warm = time.time() + 90
        while not visible and time.time() < warm:
            time.sleep(0.1)
        time.sleep(3)
        with lock:
            first, before = len(published), answered[0]
        t0 = time.perf_counter()
        time.sleep(args.seconds)
        with lock:
            last, after = len(published), answered[0]
        window = time.perf_counter() - t0
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        producer.flush(10)
    latencies = sorted((visible[s] - published[s]) * 1000 for s in range(first, last) if s in visible)
    missing = (last - first) - len(latencies)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
    print(f"| produce to visible over HTTP: {args.updates} key updates/s (vec {DIM}), {(after - before) / window:.0f} requests/s "
          f"of 26 keys answered, {window:.1f} s | batches | p50 | p99 | max | not seen |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| hps serve {' '.join(args.serve_args) or '(defaults)'} | {len(latencies)} | {p(0.5):.2f} ms | {p(0.99):.2f} ms | "
          f"{(latencies[-1] if latencies else float('nan')):.2f} ms | {missing} |")


if __name__ == "__main__":
    sys.exit(main())
