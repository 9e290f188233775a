"""The KServe v2 HTTP server of `hps serve`, driven by the real tritonclient.http.

Run after `swift build`: HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python
(needs `python3 -m pip install 'tritonclient[http]' pytest numpy`).
"""

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
    def __init__(self, directory, extra=()):
        self.http_port, self.metrics_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [hps_bin(), "serve", "--config", os.path.join(directory, "hps.json"),
             "--http-port", str(self.http_port), "--grpc-port", "0", "--metrics-port", str(self.metrics_port), *extra],
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
