"""Models loaded and unloaded while `hps serve` serves, with tritonclient's
own calls (Triton's model repository extension) over HTTP and gRPC:
`--model-control-mode explicit`, `load_model`, `unload_model`,
`get_model_repository_index`, a load with the model's entry as `config`, and
reloads of one model (with new model files) and loads and unloads of another
while load generators send requests over both protocols: not one may fail.
Needs `python3 -m pip install 'tritonclient[http,grpc]' numpy pytest`.
"""

import json
import os
import subprocess
import threading
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

import test_grpc
import test_http
from test_http import hps_bin, read_table

DIM = 8


def generate(directory, tables, seed):
    subprocess.run([hps_bin(), "generate", "--output", directory, "--tables", str(tables), "--vocab", "100",
                    "--dim", str(DIM), "--key-type", "int64", "--seed", str(seed)], check=True, capture_output=True)


@pytest.fixture()
def repository(tmp_path):
    """Two models in one configuration: 2_table (folder a) and 3_table (folder b)."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    generate(a, 2, 1)
    generate(b, 3, 2)
    with open(os.path.join(a, "hps.json")) as f:
        config = json.load(f)
    with open(os.path.join(b, "hps.json")) as f:
        other = json.load(f)["models"][0]
    other["sparse_files"] = [os.path.join(b, path) for path in other["sparse_files"]]
    config["models"].append(other)
    path = str(tmp_path / "hps.json")
    config["models"][0]["sparse_files"] = [os.path.join(a, p) for p in config["models"][0]["sparse_files"]]
    with open(path, "w") as f:
        json.dump(config, f)
    return str(tmp_path), a, b


def http_request(keys_per_table):
    return test_http.keys_request(keys_per_table, True)


def states(index):
    return {entry["name"]: entry.get("state", "") for entry in index}


def test_explicit_load_unload_http_and_grpc(repository):
    root, a, _ = repository
    server = test_grpc.Server(root, ["--model-control-mode", "explicit", "--load-model", "3_table"])
    try:
        http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        grpc = server.client()
        assert states(http.get_model_repository_index()) == {"2_table": "", "3_table": "READY"}
        assert not http.is_model_ready("2_table")
        with pytest.raises(InferenceServerException, match="no model named"):
            http.infer("2_table", http_request([[1], []]))

        http.load_model("2_table")
        assert http.is_model_ready("2_table") and grpc.is_model_ready("2_table")
        table0 = read_table(a, 0)
        out = http.infer("2_table", http_request([[3, 7], []])).as_numpy("OUTPUT0").reshape(2, DIM)
        np.testing.assert_array_equal(out, np.stack([table0[3], table0[7]]))

        grpc.unload_model("2_table")
        index = {m.name: m for m in grpc.get_model_repository_index().models}
        assert index["2_table"].state == "UNAVAILABLE" and index["2_table"].reason == "unloaded"
        assert not http.is_model_ready("2_table")
        with pytest.raises(InferenceServerException, match="was unloaded"):
            grpc.infer("2_table", test_grpc.keys_request([[1], []]))

        grpc.load_model("2_table")
        assert grpc.is_model_ready("2_table")
        out = grpc.infer("2_table", test_grpc.keys_request([[3], []])).as_numpy("OUTPUT0").reshape(1, DIM)
        np.testing.assert_array_equal(out[0], table0[3])

        # The model's entry as config: default value 2.5 for keys in no table.
        with open(os.path.join(root, "hps.json")) as f:
            entry = json.load(f)["models"][0]
        entry["default_value_for_each_table"] = [2.5, 2.5]
        http.load_model("2_table", config=json.dumps(entry))
        out = http.infer("2_table", http_request([[123456], []])).as_numpy("OUTPUT0").reshape(DIM)
        np.testing.assert_array_equal(out, np.full(DIM, 2.5, dtype=np.float32))

        with pytest.raises(InferenceServerException, match="has no model nope"):
            grpc.load_model("nope")
    finally:
        server.stop()


def test_model_control_none_refuses(repository):
    root, _, _ = repository
    server = test_grpc.Server(root)
    try:
        http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        assert states(http.get_model_repository_index()) == {"2_table": "READY", "3_table": "READY"}
        with pytest.raises(InferenceServerException, match="--model-control-mode explicit"):
            http.unload_model("2_table")
        with pytest.raises(InferenceServerException, match="--model-control-mode explicit"):
            server.client().load_model("2_table")
    finally:
        server.stop()


def test_reloads_while_load_generators_run(repository):
    """Load generators on 2_table over HTTP and gRPC while 2_table is reloaded
    (its files rewritten with a new seed in between) and 3_table loaded and
    unloaded: every request to 2_table is answered, with one version's vectors."""
    root, a, _ = repository
    server = test_grpc.Server(root, ["--model-control-mode", "explicit", "--load-model", "*"])
    keys = [0, 5, 42, 99]
    versions = [np.stack([read_table(a, 0)[k] for k in keys])]
    stop = threading.Event()
    results = {"http": [0, 0, []], "grpc": [0, 0, []]}  # answered, failed, errors

    def generator(protocol):
        if protocol == "http":
            client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
            request = lambda: client.infer("2_table", http_request([keys, []]))
        else:
            client = server.client()
            request = lambda: client.infer("2_table", test_grpc.keys_request([keys, []]))
        while not stop.is_set():
            try:
                out = request().as_numpy("OUTPUT0").reshape(len(keys), DIM)
                if not any(np.array_equal(out, v) for v in versions):
                    raise AssertionError("vectors of no version")
                results[protocol][0] += 1
            except Exception as error:  # every failure counts, whatever its kind
                results[protocol][1] += 1
                results[protocol][2].append(str(error))

    threads = [threading.Thread(target=generator, args=(p,)) for p in ("http", "grpc") for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        http = httpclient.InferenceServerClient(f"127.0.0.1:{server.http_port}")
        grpc = server.client()
        for round in range(4):
            time.sleep(0.3)
            generate(a, 2, 10 + round)
            versions.append(np.stack([read_table(a, 0)[k] for k in keys]))
            (http if round % 2 == 0 else grpc).load_model("2_table")
            (grpc if round % 2 == 0 else http).unload_model("3_table")
            (http if round % 2 == 0 else grpc).load_model("3_table")
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server.stop()
    for protocol, (answered, failed, errors) in results.items():
        assert failed == 0, f"{protocol}: {failed} of {answered + failed} requests failed: {errors[:3]}"
        assert answered > 20, f"{protocol}: only {answered} requests were answered"
    # Each reload brought vectors that differ from the version before.
    assert all(not np.array_equal(versions[i], versions[i + 1]) for i in range(len(versions) - 1))
