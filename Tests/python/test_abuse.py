"""`hps serve` under abuse on loopback (issue 16): idle and slow connections,
bodies and headers over the limits, malformed tensors, deep JSON, invalid
UTF-8 and HTTP/2 floods on the gRPC port. The server must stay up, answer
each bad request with its status and one sentence, keep answering
well-formed requests correctly while attacked, and hold its memory.

The tests assert what is right or wrong, never how fast. The figures (p50
and p99 of well-formed requests without and during each attack, and the
server's RSS) come from running this file as a script:

    HPS_BIN=.build/release/hps python3 Tests/python/test_abuse.py

which prints a table; docs/hardening.md records it. `... test_abuse.py
reset-rounds` prints the server's RSS after each ten rapid-reset floods.

Run the tests after `swift build`: HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python
"""

import http.client
import json
import multiprocessing
import os
import resource
import socket
import struct
import sys
import threading
import time

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import subprocess  # noqa: E402

from test_http import DIM, MODEL, TABLES, VOCAB, Server, free_port, hps_bin, read_table  # noqa: E402

# The limits the attacked server runs with (their defaults are larger; docs/serving.md lists them).
MAX_BODY = 1 << 20
READ_TIMEOUT = 3.0
SERVER_FLAGS = ("--max-body-bytes", str(MAX_BODY), "--request-read-timeout", str(READ_TIMEOUT))


def make_model(directory):
    subprocess.run([hps_bin(), "generate", "--output", directory, "--tables", str(TABLES), "--vocab", str(VOCAB),
                    "--dim", str(DIM), "--key-type", "int64"], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model(str(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def tables(model_dir):
    return [read_table(model_dir, t) for t in range(TABLES)]


@pytest.fixture(scope="module")
def server(model_dir):
    s = Server(model_dir, SERVER_FLAGS, grpc_port=free_port())
    yield s
    s.stop()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(n, soft), hard), hard))


# MARK: well-formed requests

GOOD_KEYS = [[3, 4, 5, 17], [103, 150]]


def good_body():
    keys = [k for ks in GOOD_KEYS for k in ks]
    return json.dumps({"inputs": [
        {"name": "KEYS", "datatype": "INT64", "shape": [len(keys)], "data": keys},
        {"name": "NUMKEYS", "datatype": "INT32", "shape": [len(GOOD_KEYS)], "data": [len(k) for k in GOOD_KEYS]}]}).encode()


class GoodClient:
    """Well-formed requests on one keep-alive connection, each answer checked."""

    def __init__(self, port, tables):
        self.port = port
        self.want = np.stack([tables[t][k] for t, ks in enumerate(GOOD_KEYS) for k in ks]).reshape(-1)
        self.connection = None
        self.latencies = []
        self.failures = []

    def one(self):
        body = good_body()
        for attempt in range(2):  # a keep-alive connection the server closed (idle) is opened again
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            start = time.perf_counter()
            try:
                self.connection.request("POST", f"/v2/models/{MODEL}/infer", body, {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                data = response.read()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.connection.close()
                self.connection = None
                if attempt == 1:
                    raise
                continue
            self.latencies.append(time.perf_counter() - start)
            if response.status != 200:
                self.failures.append(f"{response.status}: {data[:200]!r}")
                return
            got = np.asarray(json.loads(data)["outputs"][0]["data"], dtype=np.float32)
            if not np.array_equal(got, self.want):
                self.failures.append("wrong vectors")
            return

    def run(self, seconds=None, count=None):
        deadline = time.time() + (seconds or 1e9)
        n = 0
        while time.time() < deadline and (count is None or n < count):
            self.one()
            n += 1

    def close(self):
        if self.connection:
            self.connection.close()


def percentile(values, q):
    return float(np.percentile(np.asarray(values) * 1e6, q)) if values else float("nan")


# MARK: raw HTTP/1

def raw_exchange(port, data, timeout=10):
    """Sends bytes on a fresh connection; returns (status, body) of the reply, or (None, b"") if it was closed first."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += chunk
                head, sep, rest = received.partition(b"\r\n\r\n")
                if sep:
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    if len(rest) >= length:
                        return int(head.split(b" ")[1]), rest[:length]
        except (ConnectionResetError, socket.timeout):
            pass
    if received.startswith(b"HTTP/1.1 "):
        return int(received.split(b" ")[1]), received.partition(b"\r\n\r\n")[2]
    return None, b""


def post(port, body, headers=None, path=f"/v2/models/{MODEL}/infer"):
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    return raw_exchange(port, head.encode() + b"\r\n" + body)


def one_sentence(body):
    message = json.loads(body)["error"]
    assert message and "\n" not in message, message
    return message


def tensor(name, datatype, shape, data=None, binary_size=None):
    t = {"name": name, "datatype": datatype, "shape": shape}
    if data is not None:
        t["data"] = data
    if binary_size is not None:
        t["parameters"] = {"binary_data_size": binary_size}
    return t


# Each: (what, body bytes, extra headers, status, words the sentence holds).
def bad_requests():
    keys = struct.pack("<3q", 1, 2, 103)
    numkeys = struct.pack("<2i", 2, 1)
    header = json.dumps({"inputs": [tensor("KEYS", "INT64", [3], binary_size=len(keys) + 8),
                                    tensor("NUMKEYS", "INT32", [2], binary_size=len(numkeys))]}).encode()
    short = json.dumps({"inputs": [tensor("KEYS", "INT64", [5], binary_size=len(keys)),
                                   tensor("NUMKEYS", "INT32", [2], binary_size=len(numkeys))]}).encode()
    return [
        ("binary tensor larger than its bytes", header + keys + numkeys,
         {"Inference-Header-Content-Length": str(len(header))}, 400, ""),
        ("binary size disagreeing with the shape", short + keys + numkeys,
         {"Inference-Header-Content-Length": str(len(short))}, 400, ""),
        ("NUMKEYS not summing to the keys", json.dumps({"inputs": [
            tensor("KEYS", "INT64", [3], [1, 2, 3]), tensor("NUMKEYS", "INT32", [2], [1, 1])]}).encode(), {}, 400, "NUMKEYS"),
        ("negative NUMKEYS", json.dumps({"inputs": [
            tensor("KEYS", "INT64", [3], [1, 2, 3]), tensor("NUMKEYS", "INT32", [2], [-1, 4])]}).encode(), {}, 400, "negative"),
        ("a shape of billions of elements", json.dumps({"inputs": [
            tensor("KEYS", "INT64", [100000, 100000, 100000], [1]), tensor("NUMKEYS", "INT32", [2], [1, 0])]}).encode(), {}, 400, "KEYS"),
        ("a negative dimension", json.dumps({"inputs": [
            tensor("KEYS", "INT64", [-3], [1]), tensor("NUMKEYS", "INT32", [2], [1, 0])]}).encode(), {}, 400, "KEYS"),
        ("an unknown datatype", json.dumps({"inputs": [
            tensor("KEYS", "FP64", [1], [1]), tensor("NUMKEYS", "INT32", [2], [1, 0])]}).encode(), {}, 400, "FP64"),
        ("deeply nested JSON", b"[" * 200_000, {}, 400, ""),
        ("deeply nested data", json.dumps({"inputs": [tensor("NUMKEYS", "INT32", [2], [1, 0])]}).encode()[:-2]
         + b', {"name": "KEYS", "datatype": "INT64", "shape": [1], "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}]}", {}, 400, ""),
        ("invalid UTF-8", b'{"inputs": [{"name": "KE\xff\xfeYS", "datatype": "INT64", "shape": [1], "data": [1]}]}', {}, 400, ""),
        ("a body that is not JSON", b"\x00\x01\x02 not json", {}, 400, ""),
        ("a body over --max-body-bytes", b"x" * (MAX_BODY + 1), {}, 413, ""),
        ("Inference-Header-Content-Length beyond the body", b"{}", {"Inference-Header-Content-Length": "99999"}, 400,
         "Inference-Header-Content-Length"),
    ]


# MARK: HTTP/2 on the gRPC port

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_flood(port, kind, count=20000, seconds=10):
    """Opens an HTTP/2 connection to the gRPC port and floods it without
    reading: PING frames, SETTINGS frames, or streams opened and reset at once
    (rapid reset). Returns how the connection ended: "closed" (the server shut
    it), or "open"."""
    s = socket.create_connection(("127.0.0.1", port), timeout=seconds)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # HPACK, static table only: :method POST, :scheme http, :path /, then
    # literal content-type: application/grpc.
    headers = bytes([0x83, 0x86, 0x84]) + bytes([0x0F, 0x10, 16]) + b"application/grpc"
    try:
        s.sendall(PREFACE + frame(4, 0, 0))
        batch = []
        for i in range(count):
            if kind == "ping":
                batch.append(frame(6, 0, 0, struct.pack(">Q", i)))
            elif kind == "settings":
                batch.append(frame(4, 0, 0, struct.pack(">HI", 3, 100)))
            else:  # rapid reset
                stream = 2 * i + 1
                batch.append(frame(1, 0x4, stream, headers) + frame(3, 0, stream, struct.pack(">I", 8)))
            if len(batch) == 256:
                s.sendall(b"".join(batch))
                batch = []
        s.sendall(b"".join(batch))
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        s.close()
        return "closed"
    # Drain: did the server close the connection (GOAWAY then FIN)?
    s.settimeout(seconds)
    try:
        while True:
            if not s.recv(1 << 20):
                return "closed"
    except ConnectionResetError:
        return "closed"
    except socket.timeout:
        return "open"
    finally:
        s.close()


# MARK: tests

def test_bad_requests_get_their_status_and_one_sentence(server):
    for what, body, headers, status, words in bad_requests():
        got, reply = post(server.http_port, body, headers)
        assert got == status, f"{what}: {got} {reply[:300]!r}"
        message = one_sentence(reply)
        assert words in message, f"{what}: {message}"


def test_header_over_the_limit_is_refused_and_the_server_stays(server, tables):
    got, _ = raw_exchange(server.http_port, b"GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
    assert got in (None, 400, 431), got
    client = GoodClient(server.http_port, tables)
    client.run(count=5)
    assert not client.failures, client.failures


def test_idle_connections_are_held_then_closed_and_requests_go_on(server, tables):
    raise_fd_limit(4096)
    before = rss_mb(server.process.pid)
    idle = [socket.create_connection(("127.0.0.1", server.http_port), timeout=10) for _ in range(2000)]
    try:
        client = GoodClient(server.http_port, tables)
        client.run(count=50)
        assert not client.failures, client.failures[:3]
        during = rss_mb(server.process.pid)
        # Each idle connection is closed by the server after --request-read-timeout.
        time.sleep(READ_TIMEOUT + 2)
        closed = 0
        for s in idle[:100]:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
        assert closed == 100, f"{closed} of 100 idle connections closed after {READ_TIMEOUT + 2} s"
    finally:
        for s in idle:
            s.close()
    time.sleep(1)
    after = rss_mb(server.process.pid)
    assert during - before < 512, f"RSS grew {during - before:.0f} MB for 2000 idle connections"
    assert after - before < 256, f"RSS {before:.0f} MB before, {after:.0f} MB after"


def test_slow_client_is_cut_off_and_others_are_answered(server, tables):
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    request = f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n".encode()
    client = GoodClient(server.http_port, tables)
    start = time.time()
    cut = None
    for byte in request + b"x" * 100:
        try:
            s.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            cut = time.time() - start
            break
        client.one()
        time.sleep(0.25)
        if time.time() - start > READ_TIMEOUT + 5:
            break
    if cut is None:
        s.settimeout(5)
        try:
            cut = time.time() - start if s.recv(1) == b"" else None
        except (ConnectionResetError, socket.timeout):
            cut = time.time() - start
    s.close()
    assert cut is not None and cut < READ_TIMEOUT + 5, f"the slow client was not cut off ({cut})"
    assert not client.failures, client.failures[:3]


def test_http2_floods_on_the_grpc_port(server, tables):
    import tritonclient.grpc as grpcclient
    for kind in ("ping", "settings", "reset"):
        # Over 200 such frames in 30 s: swift-nio-http2 closes the connection.
        assert h2_flood(server.grpc_port, kind) == "closed", f"the {kind} flood's connection was left open"
        assert server.process.poll() is None, f"the server exited after the {kind} flood"
        result = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc_port}").is_server_live()
        assert result, f"gRPC not live after the {kind} flood"
    client = GoodClient(server.http_port, tables)
    client.run(count=5)
    assert not client.failures, client.failures


def test_rapid_reset_floods_leave_no_memory_behind(server):
    # The server ends each flooding connection before swift-nio-http2's own
    # limit (HTTP2ResetFloodGuard), so what a flood used is reused by the next
    # (closed on that limit, each connection kept about 0.3 MB for good).
    for _ in range(10):
        assert h2_flood(server.grpc_port, "reset", 2000, 2) == "closed"
    before = rss_mb(server.process.pid)
    for _ in range(40):
        assert h2_flood(server.grpc_port, "reset", 2000, 2) == "closed"
    time.sleep(0.5)
    grown = rss_mb(server.process.pid) - before
    assert server.process.poll() is None, "the server exited during the floods"
    assert grown < 4, f"40 rapid-reset floods grew the server by {grown:.1f} MB"


# MARK: figures

def figures(seconds=5.0):
    """Runs each attack beside a well-formed client and prints p50/p99 of its
    requests, without and during the attack, and the server's RSS."""
    import tempfile
    raise_fd_limit(8192)
    directory = make_model(tempfile.mkdtemp(prefix="hps-abuse-"))
    tables = [read_table(directory, t) for t in range(TABLES)]
    server = Server(directory, SERVER_FLAGS, grpc_port=free_port())
    rows = []
    try:
        def measure(name, attack, processes=True):
            # The attackers run in processes of their own (forked), so that their
            # Python work (an HTTP/2 flood builds its frames in Python) does not
            # hold the measuring client's GIL; an attack that keeps state here
            # (the idle connections) runs in threads.
            stop = multiprocessing.Event() if processes else threading.Event()
            rss = [rss_mb(server.process.pid)]

            def loop():
                while not stop.is_set():
                    attack()
            kind = multiprocessing.Process if processes else threading.Thread
            workers = [kind(target=loop, daemon=True) for _ in range(2)] if attack else []
            for w in workers:
                w.start()
            client = GoodClient(server.http_port, tables)
            client.run(count=50)  # warm-up
            client.latencies.clear()
            client.run(seconds=seconds)
            rss.append(rss_mb(server.process.pid))
            stop.set()
            for w in workers:
                w.join(timeout=30)
                if processes and w.is_alive():
                    w.kill()
            client.close()
            time.sleep(0.5)
            rss.append(rss_mb(server.process.pid))
            rows.append((name, len(client.latencies), percentile(client.latencies, 50),
                         percentile(client.latencies, 99), len(client.failures), *rss))

        measure("none (baseline)", None)
        bad = bad_requests()
        measure("malformed requests (13 kinds, in turn)", lambda: [post(server.http_port, b, h) for _, b, h, _, _ in bad])
        idle = []
        measure("2,000 idle connections", lambda: idle.extend(
            socket.create_connection(("127.0.0.1", server.http_port)) for _ in range(1000 if len(idle) < 2000 else 0))
            or time.sleep(0.1), processes=False)
        for s in idle:
            s.close()

        def slow():
            s = socket.create_connection(("127.0.0.1", server.http_port))
            for byte in b"POST /v2 HTTP/1.1\r\n":
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    break
                time.sleep(1)
            s.close()
        measure("slow clients (a byte a second)", slow)
        measure("headers over the limit", lambda: raw_exchange(
            server.http_port, b"GET /v2 HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"))
        measure("HTTP/2 PING flood on the gRPC port", lambda: h2_flood(server.grpc_port, "ping", 20000, 2))
        measure("HTTP/2 rapid reset on the gRPC port", lambda: h2_flood(server.grpc_port, "reset", 5000, 2))
        # The RSS a flood leaves is kept by the allocator (LargeBufferReuse keeps up to
        # 512 MB of freed heap); a second flood shows whether it is reused or grows.
        measure("HTTP/2 rapid reset again", lambda: h2_flood(server.grpc_port, "reset", 5000, 2))
        measure("HTTP/2 rapid reset, third", lambda: h2_flood(server.grpc_port, "reset", 5000, 2))
        measure("none (baseline, after the attacks)", None)
    finally:
        server.stop()
    base = rows[0][3]
    print(f"\n{'attack':44} {'requests':>8} {'p50 µs':>9} {'p99 µs':>9} {'p99 / base':>10} {'wrong':>5} "
          f"{'RSS MB before/during/after':>28}")
    for name, n, p50, p99, wrong, r0, r1, r2 in rows:
        print(f"{name:44} {n:8d} {p50:9.0f} {p99:9.0f} {p99 / base:10.2f} {wrong:5d} {r0:10.0f} {r1:8.0f} {r2:8.0f}")


def reset_rounds(rounds=8, connections=10):
    """The server's RSS after each `connections` rapid-reset floods, one
    flooding connection at a time (each closed by the server): whether the
    memory a flood leaves is reused by the next or grows with each."""
    import tempfile
    directory = make_model(tempfile.mkdtemp(prefix="hps-abuse-"))
    server = Server(directory, SERVER_FLAGS, grpc_port=free_port())
    try:
        print(f"start: RSS {rss_mb(server.process.pid):.1f} MB")
        for r in range(rounds):
            for _ in range(connections):
                h2_flood(server.grpc_port, "reset", 5000, 2)
            time.sleep(0.5)
            print(f"after {(r + 1) * connections} flooding connections: RSS {rss_mb(server.process.pid):.1f} MB", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    reset_rounds() if sys.argv[1:] == ["reset-rounds"] else figures()
