"""The KServe v2 gRPC server of `hps serve` (Triton's inference.GRPCInferenceService),
driven by the real tritonclient.grpc.

Run after `swift build`: HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python
(needs `python3 -m pip install 'tritonclient[grpc]' pytest numpy`).
"""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

# Helpers only (no tests or fixtures), shared with the HTTP tests.
from test_http import DIM, MODEL, TABLES, VOCAB, expected, free_port, hps_bin, hps_load_bin, read_table

GRPC_LINE = re.compile(r"KServe v2 gRPC on grpc://([0-9.]+):(\d+)")


class Server:
    """`hps serve` on free ports, the gRPC one picked by the server (--grpc-port 0)
    and read from the line it prints on stderr."""

    def __init__(self, directory, extra=()):
        self.http_port, self.metrics_port = free_port(), free_port()
        self.process = subprocess.Popen(
            [hps_bin(), "serve", *(["--config", os.path.join(directory, "hps.json")] if directory else []),
             "--http-port", str(self.http_port), "--grpc-port", "0", "--metrics-port", str(self.metrics_port), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.stderr = []
        lines = queue.Queue()

        def read():
            for line in self.process.stderr:
                self.stderr.append(line)
                lines.put(line)
            lines.put(None)
        threading.Thread(target=read, daemon=True).start()
        deadline = time.time() + 60
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                raise RuntimeError("hps serve printed no gRPC port in 60 s")
            if line is None:
                raise RuntimeError(f"hps serve exited: {''.join(self.stderr)}")
            match = GRPC_LINE.search(line)
            if match:
                self.grpc_port = int(match.group(2))
                break
        self.url = f"127.0.0.1:{self.grpc_port}"
        # The HTTP and gRPC listeners start side by side: the gRPC line can come
        # before the HTTP port is bound, so wait for it too.
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/live", timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"hps serve exited: {''.join(self.stderr)}")
                if time.time() > deadline:
                    raise RuntimeError(f"hps serve's HTTP port {self.http_port} did not answer in 60 s")
                time.sleep(0.05)

    def client(self):
        return grpcclient.InferenceServerClient(self.url)

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


def keys_request(keys_per_table, keys_type="INT64"):
    dtype = {"INT64": np.int64, "INT32": np.int32, "FP32": np.float32}[keys_type]
    keys = np.concatenate([np.asarray(k, dtype=dtype) for k in keys_per_table])
    numkeys = np.asarray([len(k) for k in keys_per_table], dtype=np.int32)
    keys_input = grpcclient.InferInput("KEYS", [len(keys)], keys_type)
    keys_input.set_data_from_numpy(keys)
    numkeys_input = grpcclient.InferInput("NUMKEYS", [len(numkeys)], "INT32")
    numkeys_input.set_data_from_numpy(numkeys)
    return [keys_input, numkeys_input]


def refused(call, status, text):
    """Runs `call`, which must fail with gRPC status `status` and a message containing `text`."""
    with pytest.raises(InferenceServerException) as caught:
        call()
    assert caught.value.status() == f"StatusCode.{status}", caught.value
    assert text in caught.value.message(), caught.value.message()
    return caught.value.message()


def test_port_zero_is_printed(server):
    assert any(f"KServe v2 gRPC on grpc://127.0.0.1:{server.grpc_port}" in line for line in server.stderr)
    assert server.grpc_port != 0


def test_server_live_ready_metadata(server):
    client = server.client()
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "swift-hps"
    assert metadata["version"]


def test_model_metadata_and_readiness(server):
    client = server.client()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, model_version="1")
    assert not client.is_model_ready("no_such_model")
    assert not client.is_model_ready(MODEL, model_version="2")
    metadata = client.get_model_metadata(MODEL, as_json=True)
    assert metadata["name"] == MODEL
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "hps"
    assert [(i["name"], i["datatype"], i["shape"]) for i in metadata["inputs"]] == \
        [("KEYS", "INT64", ["-1"]), ("NUMKEYS", "INT32", ["-1"])]
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [("OUTPUT0", "FP32")]
    index = client.get_model_repository_index(as_json=True)
    assert index["models"] == [{"name": MODEL, "version": "1", "state": "READY"}]


@pytest.mark.parametrize("keys_type", ["INT64", "INT32"])
def test_infer_matches_model_files(server, tables, keys_type):
    client = server.client()
    keys_per_table = [[0, 17, 99, 17], [100, 142]]
    result = client.infer(MODEL, keys_request(keys_per_table, keys_type), request_id="req-7",
                          outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])
    output = result.as_numpy("OUTPUT0")
    assert output.dtype == np.float32
    assert output.shape == (6, DIM)
    np.testing.assert_array_equal(output, expected(tables, keys_per_table))
    response = result.get_response()
    assert response.model_name == MODEL
    assert response.model_version == "1"
    assert response.id == "req-7"
    assert len(response.raw_output_contents) == 1


def test_infer_without_requested_outputs(server, tables):
    keys_per_table = [[5], [105, 106]]
    result = server.client().infer(MODEL, keys_request(keys_per_table))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), expected(tables, keys_per_table))


def test_stream_infer(server, tables):
    """ModelStreamInfer answers each request in turn; a refused one gets its error, the stream goes on."""
    results = queue.Queue()
    client = server.client()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        client.async_stream_infer(MODEL, keys_request([[1], [101]]), request_id="a")
        client.async_stream_infer("no_such_model", keys_request([[1], [101]]), request_id="b")
        client.async_stream_infer(MODEL, keys_request([[2, 3], []]), request_id="c")
        answers = [results.get(timeout=10) for _ in range(3)]
    finally:
        client.stop_stream()
    (first, error1), (_, error2), (third, error3) = answers
    assert error1 is None and error3 is None
    np.testing.assert_array_equal(first.as_numpy("OUTPUT0"), expected(tables, [[1], [101]]))
    np.testing.assert_array_equal(third.as_numpy("OUTPUT0"), expected(tables, [[2, 3], []]))
    assert "no model named" in error2.message()


def test_unknown_model(server):
    client = server.client()
    message = refused(lambda: client.infer("no_such_model", keys_request([[1], [101]])), "NOT_FOUND", "no model named")
    assert MODEL in message
    refused(lambda: client.get_model_metadata("no_such_model"), "NOT_FOUND", "no model named")
    refused(lambda: client.infer(MODEL, keys_request([[1], [101]]), model_version="2"), "NOT_FOUND", "no version")


def test_wrong_datatype(server):
    message = refused(lambda: server.client().infer(MODEL, keys_request([[1], [101]], "FP32")),
                      "INVALID_ARGUMENT", "KEYS")
    assert "FP32" in message


def test_numkeys_not_summing(server):
    inputs = keys_request([[1, 2], [101]])
    inputs[1].set_data_from_numpy(np.asarray([1, 1], dtype=np.int32))
    refused(lambda: server.client().infer(MODEL, inputs), "INVALID_ARGUMENT", "sums to 2")


def test_too_many_keys(server):
    # The seed model's limit per table: max_batch_size 256 × 26 keys per sample.
    keys = np.arange(256 * 26 + 1, dtype=np.int64) % VOCAB
    refused(lambda: server.client().infer(MODEL, keys_request([keys, []])), "INVALID_ARGUMENT", "max_batch_size")


def test_shape_not_matching_raw_contents(server):
    inputs = keys_request([[1, 2], [101]])
    inputs[0].set_shape([4])
    refused(lambda: server.client().infer(MODEL, inputs), "INVALID_ARGUMENT", "raw_input_contents")


def test_unimplemented_rpcs_say_so(server):
    refused(lambda: server.client().get_model_config(MODEL), "UNIMPLEMENTED", "/config")


def test_metrics_count_grpc_requests(server):
    def requests():
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        match = re.search(rf'^hps_inference_requests_total{{model="{MODEL}"}} (\d+)', text, re.M)
        return int(match.group(1)) if match else 0, text

    before, _ = requests()
    server.client().infer(MODEL, keys_request([[1], [101]]))
    after, text = requests()
    assert after == before + 1
    assert f'hps_keys_looked_up_total{{model="{MODEL}",table=' in text
    assert "hps_tier_hit_ratio{" in text


def test_auth_token(model_dir, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    s = Server(model_dir, ["--auth-token-file", str(token_file)])
    try:
        client = s.client()
        assert client.is_server_live() and client.is_server_ready()
        refused(lambda: client.get_model_metadata(MODEL), "UNAUTHENTICATED", "authorization: Bearer")
        refused(lambda: client.infer(MODEL, keys_request([[1], [101]]), headers={"authorization": "Bearer nope"}),
                "UNAUTHENTICATED", "not the server's token")
        authed = client.get_model_metadata(MODEL, headers={"authorization": "Bearer s3cret"}, as_json=True)
        assert authed["name"] == MODEL
        result = client.infer(MODEL, keys_request([[1], [101]]), headers={"authorization": "Bearer s3cret"})
        assert result.as_numpy("OUTPUT0").shape == (2, DIM)
    finally:
        s.stop()


def open_stream(server, keys_per_table, want):
    """A ModelStreamInfer stream with one request answered; its results queue."""
    results = queue.Queue()
    stream = server.client()
    stream.start_stream(callback=lambda result, error: results.put((result, error)))
    stream.async_stream_infer(MODEL, keys_request(keys_per_table))
    first, error = results.get(timeout=10)
    assert error is None, error
    np.testing.assert_array_equal(first.as_numpy("OUTPUT0"), want)
    return stream, results


def test_sigterm_with_a_stream_in_flight(model_dir, tables):
    """SIGTERM while a stream is open: the stream, in flight, still answers the
    request sent after SIGTERM, new connections are refused, the server runs
    until the stream ends and then exits 0."""
    s = Server(model_dir)
    keys_per_table = [[3, 4, 5], [103]]
    want = expected(tables, keys_per_table)
    try:
        stream, results = open_stream(s, keys_per_table, want)
        s.process.send_signal(signal.SIGTERM)
        assert refuses_connections(s.grpc_port), "the server still accepts connections 10 s after SIGTERM"
        stream.async_stream_infer(MODEL, keys_request(keys_per_table))
        second, error = results.get(timeout=10)
        assert error is None, error
        np.testing.assert_array_equal(second.as_numpy("OUTPUT0"), want)
        assert s.process.poll() is None, "the server exited with a stream in flight"
        stream.stop_stream()
        assert s.process.wait(timeout=30) == 0
    finally:
        s.stop()
    with pytest.raises(InferenceServerException) as caught:
        grpcclient.InferenceServerClient(s.url).is_server_live()
    assert caught.value.status() == "StatusCode.UNAVAILABLE"


def test_sigterm_with_requests_in_flight_under_load(model_dir, tables):
    """SIGTERM while a stream is open and unary requests keep coming: the open
    stream still answers, every unary request either succeeds with the right
    vectors or is refused as UNAVAILABLE (never cut off half answered), and the
    server exits 0.

    grpcio multiplexes the stream and the flood on one HTTP/2 connection, so a
    unary call opened just before the client sees the server's GOAWAY is refused
    on the connection the stream uses; that once stalled the connection's frame
    decoding (see HTTP2DecodingResumer)."""
    s = Server(model_dir)
    keys_per_table = [[3, 4, 5], [103]]
    want = expected(tables, keys_per_table)
    stream, results = open_stream(s, keys_per_table, want)
    stop = threading.Event()

    def flood(_):
        client, outcomes = s.client(), []
        while not stop.is_set():
            try:
                # A timeout, so that a call never answered fails the test instead of hanging it.
                outcomes.append(client.infer(MODEL, keys_request(keys_per_table), client_timeout=10).as_numpy("OUTPUT0"))
            except InferenceServerException as e:
                outcomes.append(e.status())
        return outcomes

    try:
        with ThreadPoolExecutor(4) as pool:
            floods = [pool.submit(flood, i) for i in range(4)]
            try:
                time.sleep(0.5)
                s.process.send_signal(signal.SIGTERM)
                time.sleep(0.5)
                stream.async_stream_infer(MODEL, keys_request(keys_per_table))
                second, error = results.get(timeout=10)
            finally:
                stop.set()
            assert error is None, error
            np.testing.assert_array_equal(second.as_numpy("OUTPUT0"), want)
            outcomes = [o for f in floods for o in f.result(timeout=30)]
        answered = [o for o in outcomes if not isinstance(o, str)]
        assert answered, "no request was answered"
        for vectors in answered:
            np.testing.assert_array_equal(vectors, want)
        assert {o for o in outcomes if isinstance(o, str)} <= {"StatusCode.UNAVAILABLE"}, outcomes
        stream.stop_stream()
        assert s.process.wait(timeout=30) == 0
    finally:
        s.stop()


def refuses_connections(port, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.1)
    return False


def test_message_over_the_limit(model_dir, tables):
    """A request message over --max-body-bytes is refused from its length prefix,
    before its body is read: RESOURCE_EXHAUSTED with a message naming the limit
    and the flag that raises it, for a unary call, for one still being sent, and
    on a stream. The server goes on serving."""
    s = Server(model_dir, ["--max-body-bytes", "4096"])
    try:
        client = s.client()
        for count in (1000, 100_000):
            keys = np.arange(count, dtype=np.int64) % VOCAB
            message = refused(lambda: client.infer(MODEL, keys_request([keys, []])), "RESOURCE_EXHAUSTED",
                              "larger than the server's limit of 4096 bytes; raise it with hps serve --max-body-bytes")
            size = re.search(r"the request message of (\d+) bytes", message)
            assert size and count * 8 < int(size.group(1)) < count * 8 + 100, message
        want = expected(tables, [[1], [101]])
        stream, results = open_stream(s, [[1], [101]], want)
        stream.async_stream_infer(MODEL, keys_request([np.arange(1000, dtype=np.int64) % VOCAB, []]))
        _, error = results.get(timeout=10)
        assert error is not None and error.status() == "StatusCode.RESOURCE_EXHAUSTED", error
        assert "--max-body-bytes" in error.message(), error.message()
        stream.stop_stream()
        result = client.infer(MODEL, keys_request([[1], [101]]))
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), expected(tables, [[1], [101]]))
    finally:
        s.stop()


def test_demo_prediction_model_over_grpc():
    """hps serve --demo: the lookups → Dense(1) model over gRPC gives the predictions it gives over HTTP."""
    s = Server(None, ["--demo", "--tables", "2", "--vocab", "100", "--dim", "8", "--keys-per-sample", "4",
                      "--batch-size", "16"])
    try:
        client = s.client()
        metadata = client.get_model_metadata("2_table_dense")
        assert [i.name for i in metadata.inputs] == ["KEYS0", "KEYS1"]
        rng = np.random.default_rng(6)
        keys = [rng.integers(100 * t, 100 * (t + 1), size=(5, 4)).astype(np.int32) for t in range(2)]
        inputs = []
        for t, k in enumerate(keys):
            inputs.append(grpcclient.InferInput(f"KEYS{t}", list(k.shape), "INT32"))
            inputs[-1].set_data_from_numpy(k)
        over_grpc = client.infer("2_table_dense", inputs).as_numpy("OUTPUT0")
        http = httpclient.InferenceServerClient(f"127.0.0.1:{s.http_port}")
        http_inputs = []
        for t, k in enumerate(keys):
            http_inputs.append(httpclient.InferInput(f"KEYS{t}", list(k.shape), "INT32"))
            http_inputs[-1].set_data_from_numpy(k, binary_data=True)
        over_http = http.infer("2_table_dense", http_inputs).as_numpy("OUTPUT0")
        assert over_grpc.shape == (5, 1) and over_grpc.dtype == np.float32
        assert over_grpc.tobytes() == over_http.tobytes()
        assert len(set(over_grpc[:, 0].tolist())) == 5
    finally:
        s.stop()


def test_load_generator_over_grpc(model_dir):
    """hps-load --transport grpc: a bounded open-loop load over gRPC gets every answer right, checked against the files."""
    load_bin = hps_load_bin()
    s = Server(model_dir)
    try:
        run = subprocess.run([load_bin, "--transport", "grpc", "--port", str(s.grpc_port), "--model", MODEL,
                              "--tables", str(TABLES), "--vocab", str(VOCAB), "--keys-per-sample", "4", "--dim", str(DIM),
                              "--connections", "2", "--rate", "200", "--duration", "1", "--model-dir", model_dir, "--json"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(run.stdout)
        assert report["failures"] == 0 and report["requests"] >= 150 and report["checked_vectors"]
    finally:
        s.stop()
