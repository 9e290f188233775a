"""Online updates: `hps serve` following Kafka, fed by an independent client.

librdkafka's mock cluster (a Kafka-protocol broker on loopback TCP) is started
by the confluent-kafka producer (`test.mock.num.brokers`); the producer writes
HugeCTR-format messages built here byte by byte; lookups go through the real
tritonclient. Needs an hps built with the Kafka trait (`.ci/run` enables every
trait) and `python3 -m pip install confluent-kafka 'tritonclient[http]' numpy pytest`.
"""

import json
import os
import signal
import struct
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from confluent_kafka import Producer

from test_http import Server, hps_bin, keys_request, read_table

TABLES, VOCAB, DIM = 2, 100, 8
MODEL = f"{TABLES}_table"


def hctr_message(keys, vectors):
    """HugeCTR's message value: magic "HCTR", the value size, then (int64 key, float32 × DIM) pairs."""
    out = bytearray(b"HCTR") + struct.pack("<I", DIM * 4)
    for key, vector in zip(keys, vectors):
        out += struct.pack("<q", key) + np.asarray(vector, dtype="<f4").tobytes()
    return bytes(out)


@pytest.fixture()
def kafka():
    """A producer with its own mock cluster, and the cluster's bootstrap address."""
    producer = Producer({"test.mock.num.brokers": 1})
    metadata = producer.list_topics(timeout=10)
    broker = next(iter(metadata.brokers.values()))
    yield producer, f"{broker.host}:{broker.port}"
    producer.flush(10)


@pytest.fixture()
def model(tmp_path):
    directory = str(tmp_path / "model")
    subprocess.run([hps_bin(), "generate", "--output", directory, "--tables", str(TABLES), "--vocab", str(VOCAB),
                    "--dim", str(DIM), "--key-type", "int64"], check=True, capture_output=True)
    return directory


def follow(directory, brokers):
    """Adds an update_source to the model's hps.json (HugeCTR's default update_filters)."""
    path = os.path.join(directory, "hps.json")
    with open(path) as f:
        config = json.load(f)
    config["update_source"] = {"type": "kafka_message_queue", "brokers": brokers, "poll_timeout_ms": 100,
                               "metadata_refresh_interval_ms": 200, "failure_backoff_ms": 20, "max_batch_size": 64}
    with open(path, "w") as f:
        json.dump(config, f)


def lookup(server, table, keys):
    client = httpclient.InferenceServerClient(server.url)
    per_table = [keys if t == table else [] for t in range(TABLES)]
    result = client.infer(MODEL, keys_request(per_table, True))
    return result.as_numpy("OUTPUT0").reshape(len(keys), DIM)


def wait_until(condition, seconds=90):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_updates_from_an_independent_producer_reach_lookups(model, kafka):
    producer, brokers = kafka
    follow(model, brokers)
    topic = f"hps_et.{MODEL}.table1"
    rng = np.random.default_rng(5)
    keys = sorted(read_table(model, 1))[:30] + [10_000_000 + i for i in range(10)]
    vectors = rng.uniform(-3, 3, size=(len(keys), DIM)).astype(np.float32)
    # One partition, so that the malformed message is consumed before the updates after it.
    producer.produce(topic, b"not an update", partition=0)
    producer.produce(topic, hctr_message(keys[:20], vectors[:20]), partition=0)
    producer.produce(topic, hctr_message(keys[20:], vectors[20:]), partition=0)
    assert producer.flush(10) == 0
    server = Server(model)
    try:
        assert wait_until(lambda: np.array_equal(lookup(server, 1, keys), vectors)), "the updates never became visible"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        labels = f'topic="{topic}"'
        counts = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                  if line.startswith("hps_update_") and labels in line}
        # The model is served from the CPU: no GPU table misses a key.
        assert counts == {"hps_update_messages_total": 2, "hps_update_keys_total": 40,
                          "hps_update_malformed_messages_total": 1,
                          "hps_update_keys_not_in_gpu_table_total": 0}, metrics
    finally:
        server.stop()
        stderr = server.process.stderr.read().decode()
    assert "following updates from Kafka" in stderr
    assert "update_filters is HugeCTR's default" in stderr
    assert "skipped a malformed update in " + topic in stderr


def test_sigkill_mid_stream_then_restart_shows_every_update(model, kafka):
    producer, brokers = kafka
    follow(model, brokers)
    topic = f"hps_et.{MODEL}.table0"
    # Updates of one key must stay on one partition to keep their order (HugeCTR's
    # producer partitions by key group): each chunk of keys goes to its own partition.
    # (The mock cluster creates the topic on first use, with its default partition count.)
    partitions = len(producer.list_topics(topic, timeout=10).topics[topic].partitions)
    assert partitions >= 2
    keys = sorted(read_table(model, 0))
    rng = np.random.default_rng(9)
    latest = {}
    server = Server(model)
    try:
        for round in range(40):
            vectors = rng.uniform(-2, 2, size=(len(keys), DIM)).astype(np.float32)
            for chunk, start in enumerate(range(0, len(keys), 25)):
                producer.produce(topic, hctr_message(keys[start:start + 25], vectors[start:start + 25]),
                                 partition=chunk % partitions)
            latest = dict(zip(keys, vectors))
            producer.poll(0)
            if round == 20:
                server.process.send_signal(signal.SIGKILL)
                server.process.wait()
        assert producer.flush(10) == 0
    finally:
        server.stop()
    restarted = Server(model)
    try:
        expected = np.stack([latest[k] for k in keys])
        assert wait_until(lambda: np.array_equal(lookup(restarted, 0, keys), expected)), \
            "after the restart, the last update of some key is not what lookups return"
    finally:
        restarted.stop()
