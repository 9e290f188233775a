"""Faults below `hps serve` while it serves (issue 16): model files truncated or
rewritten under the mapped tier. The server must stay up, answer every
request, never with another file's vector (the damaged table's keys get the
tiers below, here the default value), count the fault in its metrics and say
once, naming the file, what happened.

Run after `swift build`: HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python
"""

import json
import os
import sys
import time

import numpy as np
import tritonclient.http as httpclient

sys.path.insert(0, os.path.dirname(__file__))
import subprocess  # noqa: E402

from test_http import (DIM, MODEL, TABLES, VOCAB, Server, expected, hps_bin, keys_request,  # noqa: E402
                       metric_values, read_table)

DEFAULTS = [-2.5, 3.5]


def mapped_server(tmp_path):
    """A fresh model served from the mapped tier alone (no volatile tier, no cache), and its tables."""
    model = tmp_path / "model"
    subprocess.run([hps_bin(), "generate", "--output", str(model), "--tables", str(TABLES), "--vocab", str(VOCAB),
                    "--dim", str(DIM), "--key-type", "int64"], check=True, capture_output=True)
    config = json.loads((model / "hps.json").read_text())
    config["volatile_db"] = {"type": "disabled"}
    config["persistent_db"] = {"type": "mapped", "path": str(tmp_path / "index")}
    config["models"][0]["gpucache"] = False
    config["models"][0]["default_value_for_each_table"] = DEFAULTS
    (model / "hps.json").write_text(json.dumps(config))
    tables = [read_table(str(model), t) for t in range(TABLES)]
    return Server(str(model), ["--device", "cpu"]), model, tables


def infer(server, keys_per_table):
    client = httpclient.InferenceServerClient(server.url)
    return client.infer(MODEL, keys_request(keys_per_table, True)).as_numpy("OUTPUT0")


def faults(server):
    return metric_values(server.metrics_port, "hps_tier_faults_total{", 'tier="mapped"')


def stop_and_read_stderr(server):
    server.stop()
    return server.process.stderr.read().decode()


KEYS = [[0, 17, 99], [100, 142, 199]]


def test_vector_file_truncated_while_served(tmp_path):
    """emb_vector of table0 cut to nothing: the process lives (no SIGBUS death), table0's keys get
    its default value, table1's keys keep their rows, one fault is counted and logged once."""
    server, model, tables = mapped_server(tmp_path)
    try:
        np.testing.assert_array_equal(infer(server, KEYS), expected(tables, KEYS))
        assert faults(server) == [0]
        os.truncate(model / "embeddings" / "table0" / "emb_vector", 0)
        for _ in range(3):
            output = infer(server, KEYS)
            np.testing.assert_array_equal(output[:3], np.full((3, DIM), DEFAULTS[0], dtype=np.float32))
            np.testing.assert_array_equal(output[3:], expected(tables, [[], KEYS[1]]))
        assert server.process.poll() is None
        assert faults(server) == [1]
        time.sleep(1.5)  # the fault log runs each second
    finally:
        stderr = stop_and_read_stderr(server)
    path = str(model / "embeddings" / "table0" / "emb_vector")
    lines = [line for line in stderr.splitlines() if "mapped tier fault" in line]
    assert len(lines) == 1, stderr
    assert f"{path} shrank while it was served" in lines[0]


def test_vector_file_rewritten_in_place_while_served(tmp_path):
    """emb_vector of table1 overwritten in place (same size): within the file watch's second the
    table's keys get its default value instead of bytes half old and half new."""
    server, model, tables = mapped_server(tmp_path)
    try:
        np.testing.assert_array_equal(infer(server, KEYS), expected(tables, KEYS))
        path = model / "embeddings" / "table1" / "emb_vector"
        with open(path, "r+b") as f:
            f.write(np.full(DIM * 4, 7.0, dtype=np.float32).tobytes())
        deadline = time.time() + 10
        while time.time() < deadline and faults(server) != [1]:
            time.sleep(0.2)
        assert faults(server) == [1]
        output = infer(server, KEYS)
        np.testing.assert_array_equal(output[:3], expected(tables, [KEYS[0], []]))
        np.testing.assert_array_equal(output[3:], np.full((3, DIM), DEFAULTS[1], dtype=np.float32))
    finally:
        stderr = stop_and_read_stderr(server)
    assert "was written in place while it was served" in stderr, stderr
