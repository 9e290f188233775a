"""The KServe v2 HTTP server of `hps serve`, driven by the real tritonclient.http.

Run after `swift build`: HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python
(needs `python3 -m pip install 'tritonclient[http]' pytest numpy`).
"""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

TABLES, VOCAB, DIM = 2, 100, 8
MODEL = f"{TABLES}_table"


def hps_bin():
    path = os.environ.get("HPS_BIN", ".build/debug/hps")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the hps binary is not at {path}; build it and set HPS_BIN")
    return os.path.abspath(path)


def hps_load_bin():
    """The hps-load binary, built beside hps."""
    path = os.path.join(os.path.dirname(hps_bin()), "hps-load")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the hps-load binary is not at {path}; build it beside hps")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_table(directory, table):
    folder = os.path.join(directory, "embeddings", f"table{table}")
    keys = np.fromfile(os.path.join(folder, "key"), dtype="<i8")
    vectors = np.fromfile(os.path.join(folder, "emb_vector"), dtype="<f4").reshape(len(keys), DIM)
    return dict(zip(keys.tolist(), vectors))


class Server:
    def __init__(self, directory, extra=(), grpc_port=0):
        self.http_port, self.metrics_port, self.grpc_port = free_port(), free_port(), grpc_port
        self.process = subprocess.Popen(
            [hps_bin(), "serve", *(["--config", os.path.join(directory, "hps.json")] if directory else []),
             "--http-port", str(self.http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(self.metrics_port),
             *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.url = f"127.0.0.1:{self.http_port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hps serve exited: {self.process.stderr.read().decode()}")
            try:
                with urllib.request.urlopen(f"http://{self.url}/v2/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("hps serve did not become ready in 60 s")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("model"))
    subprocess.run([hps_bin(), "generate", "--output", directory, "--tables", str(TABLES), "--vocab", str(VOCAB),
                    "--dim", str(DIM), "--key-type", "int64"], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def server(model_dir):
    s = Server(model_dir)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tables(model_dir):
    return [read_table(model_dir, t) for t in range(TABLES)]


def keys_request(keys_per_table, binary):
    keys = np.concatenate([np.asarray(k, dtype=np.int64) for k in keys_per_table])
    numkeys = np.asarray([len(k) for k in keys_per_table], dtype=np.int32)
    keys_input = httpclient.InferInput("KEYS", [len(keys)], "INT64")
    keys_input.set_data_from_numpy(keys, binary_data=binary)
    numkeys_input = httpclient.InferInput("NUMKEYS", [len(numkeys)], "INT32")
    numkeys_input.set_data_from_numpy(numkeys, binary_data=binary)
    return [keys_input, numkeys_input]


def expected(tables, keys_per_table):
    return np.stack([tables[t][k] for t, keys in enumerate(keys_per_table) for k in keys])


def test_server_metadata(server):
    client = httpclient.InferenceServerClient(server.url)
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "swift-hps"
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata(server):
    client = httpclient.InferenceServerClient(server.url)
    assert client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert metadata["name"] == MODEL
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "hps"
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == [("KEYS", "INT64"), ("NUMKEYS", "INT32")]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [("OUTPUT0", "FP32")]


def test_model_config_and_repository_index(server):
    client = httpclient.InferenceServerClient(server.url)
    config = client.get_model_config(MODEL)
    assert config["name"] == MODEL
    assert [(i["name"], i["data_type"]) for i in config["input"]] == [("KEYS", "TYPE_INT64"), ("NUMKEYS", "TYPE_INT32")]
    assert [o["name"] for o in config["output"]] == ["OUTPUT0"]
    index = client.get_model_repository_index()
    assert index == [{"name": MODEL, "version": "1", "state": "READY"}]


@pytest.mark.parametrize("binary_in,binary_out", [(False, False), (True, True), (False, True), (True, False)])
def test_infer_matches_model_files(server, tables, binary_in, binary_out):
    client = httpclient.InferenceServerClient(server.url)
    keys_per_table = [[0, 17, 99, 17], [100, 142]]
    result = client.infer(MODEL, keys_request(keys_per_table, binary_in),
                          outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary_out)])
    output = result.as_numpy("OUTPUT0")
    assert output.dtype == np.float32
    assert output.shape == (6, DIM)
    np.testing.assert_array_equal(output, expected(tables, keys_per_table))
    assert result.get_response()["model_name"] == MODEL


def test_infer_without_requested_outputs_is_binary(server, tables):
    client = httpclient.InferenceServerClient(server.url)
    keys_per_table = [[5], [105, 106]]
    result = client.infer(MODEL, keys_request(keys_per_table, True))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), expected(tables, keys_per_table))


def test_unknown_model(server):
    client = httpclient.InferenceServerClient(server.url)
    with pytest.raises(InferenceServerException, match="no model named"):
        client.infer("no_such_model", keys_request([[1], [101]], False))
    with pytest.raises(InferenceServerException):
        client.get_model_metadata("no_such_model")


def test_numkeys_mismatch(server):
    client = httpclient.InferenceServerClient(server.url)
    inputs = keys_request([[1, 2], [101]], False)
    inputs[1].set_data_from_numpy(np.asarray([1, 1], dtype=np.int32), binary_data=False)
    with pytest.raises(InferenceServerException, match="sums to 2"):
        client.infer(MODEL, inputs)


def test_metrics(server):
    client = httpclient.InferenceServerClient(server.url)
    client.infer(MODEL, keys_request([[1], [101]], True))
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert f'hps_inference_requests_total{{model="{MODEL}"}}' in text
    assert "hps_tier_hit_ratio{" in text


def metric_values(port, prefix, *labels):
    """The values of the exposition's lines that start with `prefix` and hold every one of `labels`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith(prefix) and all(label in line for label in labels)]


def test_cpu_cache_in_front_of_the_mapped_tier(model_dir, tables, tmp_path):
    """volatile_db disabled, persistent_db mapped, gpucache true, served from the CPU: lookups go through
    a cpu_cache L1 in front of the mapped files (on the lookup threads); its misses and hits are in the metrics."""
    with open(os.path.join(model_dir, "hps.json")) as f:
        config = json.load(f)
    config["volatile_db"] = {"type": "disabled"}
    config["persistent_db"] = {"type": "mapped", "path": str(tmp_path / "index")}
    model = config["models"][0]
    model["sparse_files"] = [os.path.join(model_dir, path) for path in model["sparse_files"]]
    model["gpucache"] = True
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "hps.json").write_text(json.dumps(config))
    s = Server(str(directory), ["--device", "cpu"])
    try:
        client = httpclient.InferenceServerClient(s.url)
        keys_per_table = [[0, 17, 99], [100, 142]]
        for binary in (True, False):  # the first from the files, the second from the cache
            result = client.infer(MODEL, keys_request(keys_per_table, binary),
                                  outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)])
            np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), expected(tables, keys_per_table))
        model_label = f'model="{MODEL}"'
        for table, count in (("table0", 3), ("table1", 2)):
            labels = (model_label, f'table="{table}"')
            assert metric_values(s.metrics_port, "hps_tier_hits_total{", *labels, 'tier="cpu_cache"') == [count]
            assert metric_values(s.metrics_port, "hps_tier_hits_total{", *labels, 'tier="mapped"') == [count]
            assert metric_values(s.metrics_port, "hps_l1_hit_ratio{", *labels, 'cache="cpu_cache"') == [0.5]
        assert metric_values(s.metrics_port, "hps_l1_cache_hit_ratio{", model_label, 'device="cpu"') == [0.5]
        assert metric_values(s.metrics_port, "hps_l1_cache_inserts_total{", model_label, 'device="cpu"') == [5]
        assert metric_values(s.metrics_port, "hps_gpu_lookup_duration_seconds_count{") == []
    finally:
        s.stop()


def test_device_auto_without_gpu_serves_from_the_cpu(model_dir, tables):
    """--device auto (the default) on a machine without a GPU: served from the CPU, with one line saying why."""
    s = Server(model_dir, ["--device", "auto"])
    try:
        client = httpclient.InferenceServerClient(s.url)
        keys_per_table = [[1], [101]]
        output = client.infer(MODEL, keys_request(keys_per_table, True)).as_numpy("OUTPUT0")
        np.testing.assert_array_equal(output, expected(tables, keys_per_table))
    finally:
        s.stop()
    stderr = s.process.stderr.read().decode()
    lines = stderr.splitlines()
    if any("is served from GPU" in line for line in lines):
        pytest.skip("this machine has a GPU")
    because = [line for line in lines if line.startswith("hps: serving from the CPU because")]
    assert len(because) == 1, stderr


def test_auth_token(model_dir, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    s = Server(model_dir, ["--auth-token-file", str(token_file)])
    try:
        client = httpclient.InferenceServerClient(s.url)
        with pytest.raises(InferenceServerException, match="Authorization"):
            client.get_model_metadata(MODEL)
        authed = client.get_model_metadata(MODEL, headers={"Authorization": "Bearer s3cret"})
        assert authed["name"] == MODEL
    finally:
        s.stop()


def test_sigterm_with_a_request_in_flight(model_dir, tables):
    """SIGTERM while a request's body is half sent: the request is answered,
    the server exits 0, and new connections are refused."""
    s = Server(model_dir)
    body = b'{"inputs":[{"name":"KEYS","datatype":"INT64","shape":[2],"data":[3,103]},' \
           b'{"name":"NUMKEYS","datatype":"INT32","shape":[2],"data":[1,1]}]}'
    conn = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
    try:
        conn.sendall(f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:20])
        time.sleep(0.5)
        s.process.send_signal(signal.SIGTERM)
        assert refuses_connections(s.http_port), "the server still accepts connections 10 s after SIGTERM"
        conn.sendall(body[20:])
        response = b""
        while b"\r\n\r\n" not in response or len(response.split(b"\r\n\r\n", 1)[1]) < content_length(response):
            chunk = conn.recv(65536)
            if not chunk:
                break
            response += chunk
    finally:
        conn.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    import json
    result = json.loads(response.split(b"\r\n\r\n", 1)[1])
    data = np.asarray(result["outputs"][0]["data"], dtype=np.float32).reshape(2, DIM)
    np.testing.assert_array_equal(data, expected(tables, [[3], [103]]))
    assert s.process.wait(timeout=30) == 0


def content_length(response):
    for line in response.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 1 << 30


def refuses_connections(port, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_demo_prediction_model():
    """hps serve --demo: the seed model's lookups → Dense(1), one input per table, one prediction per sample."""
    s = Server(None, ["--demo", "--tables", "2", "--vocab", "100", "--dim", "8", "--keys-per-sample", "4",
                      "--batch-size", "16"])
    try:
        client = httpclient.InferenceServerClient(s.url)
        metadata = client.get_model_metadata("2_table_dense")
        assert [i["name"] for i in metadata["inputs"]] == ["KEYS0", "KEYS1"]
        rng = np.random.default_rng(5)
        keys = [rng.integers(100 * t, 100 * (t + 1), size=(5, 4)).astype(np.int32) for t in range(2)]

        def predict(batch):
            inputs = []
            for t, k in enumerate(batch):
                inputs.append(httpclient.InferInput(f"KEYS{t}", list(k.shape), "INT32"))
                inputs[-1].set_data_from_numpy(k, binary_data=True)
            return client.infer("2_table_dense", inputs).as_numpy("OUTPUT0")

        batch = predict(keys)
        assert batch.shape == (5, 1) and batch.dtype == np.float32
        assert len(set(batch[:, 0].tolist())) == 5
        # Each sample alone gets the prediction it got in the batch.
        for sample in range(5):
            alone = predict([k[sample:sample + 1] for k in keys])
            assert alone.tolist() == batch[sample:sample + 1].tolist()
        # The HPS model of the same tables is served beside it.
        assert client.is_model_ready("2_table")
        with pytest.raises(InferenceServerException, match="KEYS1"):
            inputs = [httpclient.InferInput("KEYS0", [1, 4], "INT32")]
            inputs[0].set_data_from_numpy(keys[0][:1], binary_data=True)
            client.infer("2_table_dense", inputs)
    finally:
        s.stop()


def test_load_generator_checks_every_answer(model_dir):
    """hps-load: a bounded open-loop load gets every answer right; a wrong expectation of the answers is counted as failures."""
    load_bin = hps_load_bin()
    s = Server(model_dir)
    try:
        common = [load_bin, "--port", str(s.http_port), "--model", MODEL, "--tables", str(TABLES), "--vocab", str(VOCAB),
                  "--keys-per-sample", "4", "--connections", "2", "--json", "--server-pid", str(s.process.pid)]
        run = subprocess.run([*common, "--dim", str(DIM), "--rate", "200", "--duration", "1", "--model-dir", model_dir],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        report = json.loads(run.stdout)
        assert report["requests"] == 200 and report["failures"] == 0 and report["checked_vectors"]
        assert report["server_rss_after_bytes"] > 0
        assert 0 < report["p50_us"] <= report["p99_us"] <= report["max_us"]
        # Expecting vectors of the wrong size: every answer fails the check, and hps-load exits 2.
        wrong = subprocess.run([*common, "--dim", str(DIM * 2), "--duration", "0.5"], capture_output=True, text=True, timeout=60)
        assert wrong.returncode == 2
        report = json.loads(wrong.stdout)
        assert report["failures"] == report["requests"] > 0
        assert "OUTPUT0 has" in report["failure_reasons"][0]
    finally:
        s.stop()
