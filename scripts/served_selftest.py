"""The served path checked against the CPU path, on a GPU machine: for each
GPU cache type (static, dynamic, uvm) and key type (int32, int64), a fresh
random model is generated, served twice by `hps serve` (`--device gpu` and
`--device cpu`), and the same requests of fresh random keys (present and
absent) are sent to both through the real tritonclient, over HTTP and gRPC.
Every answer's every element must be the same bits. The seed model's
prediction head (`--demo`: lookups and Dense(1) on the GPU) is compared with
the CPU's predictions within float32 rounding (the sums run in another order).

    python3 scripts/served_selftest.py --hps .device/hps [--out DIR]

Needs numpy and tritonclient[http,grpc]. Prints one line per case and a
table last; exits 1 if any case fails.
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

TABLES, VOCAB, DIM, BATCH, KEYS_PER_SAMPLE = 3, 4000, 16, 64, 8


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`hps serve` on free ports; stopped with SIGTERM."""

    def __init__(self, hps, args, log):
        self.http, self.grpc, self.metrics = free_port(), free_port(), free_port()
        self.log = open(log, "w")
        self.process = subprocess.Popen(
            [hps, "serve", *args, "--http-port", str(self.http), "--grpc-port", str(self.grpc),
             "--metrics-port", str(self.metrics)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hps serve {' '.join(args)} exited with {self.process.returncode}: {open(log).read()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.http}/v2/health/ready", timeout=1)
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError(f"hps serve {' '.join(args)} was not ready in 180 s")

    def metric_lines(self, *words):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        return [line for line in text.splitlines() if not line.startswith("#") and any(w in line for w in words)]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def generate(hps, directory, key_type, seed):
    subprocess.run([hps, "generate", "--output", directory, "--tables", str(TABLES), "--vocab", str(VOCAB),
                    "--dim", str(DIM), "--batch-size", str(BATCH), "--keys-per-sample", str(KEYS_PER_SAMPLE),
                    "--key-type", key_type, "--values", "random", "--seed", str(seed)],
                   check=True, stdout=subprocess.DEVNULL)
    return os.path.join(directory, "hps.json")


def configure(path, cache_type):
    """The generated configuration with the GPU cache asked for: gpucache on,
    device 0, half of each table cached (dynamic, uvm), and misses always
    filled before a lookup returns (hit_rate_threshold 1), so that a GPU answer
    never holds a default that the CPU path would not."""
    with open(path) as f:
        config = json.load(f)
    for model in config["models"]:
        model["gpucache"] = True
        model["deployed_device_list"] = [0]
        model["embedding_cache_type"] = cache_type
        model["use_static_table"] = cache_type == "static"
        model["gpucacheper"] = 0.5
        model["hit_rate_threshold"] = 1.0
    with open(path, "w") as f:
        json.dump(config, f)
    return config["models"][0]["model"]


def requests(rng, key_type, count):
    """Fresh random requests: per table some keys of its range, some absent."""
    out = []
    for _ in range(count):
        parts = []
        for t in range(TABLES):
            n = rng.randint(0, 3 * KEYS_PER_SAMPLE)
            keys = [t * VOCAB + rng.randrange(VOCAB) if rng.random() < 0.9 else (TABLES + 7) * VOCAB + rng.randrange(10**6)
                    for _ in range(n)]
            parts.append(keys)
        dtype = np.int64 if key_type == "int64" else np.int32
        out.append((np.array([k for p in parts for k in p], dtype=dtype), np.array([len(p) for p in parts], dtype=np.int32)))
    return out


def infer(server, model, keys, numkeys, transport):
    datatype = "INT64" if keys.dtype == np.int64 else "INT32"
    if transport == "http":
        client = httpclient.InferenceServerClient(f"127.0.0.1:{server.http}")
        inputs = [httpclient.InferInput("KEYS", list(keys.shape), datatype), httpclient.InferInput("NUMKEYS", list(numkeys.shape), "INT32")]
        inputs[0].set_data_from_numpy(keys, binary_data=True)
        inputs[1].set_data_from_numpy(numkeys, binary_data=True)
        result = client.infer(model, inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)])
    else:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}")
        inputs = [grpcclient.InferInput("KEYS", list(keys.shape), datatype), grpcclient.InferInput("NUMKEYS", list(numkeys.shape), "INT32")]
        inputs[0].set_data_from_numpy(keys)
        inputs[1].set_data_from_numpy(numkeys)
        result = client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])
    return result.as_numpy("OUTPUT0")


def predict(server, model, batch, transport):
    if transport == "http":
        client, mod = httpclient.InferenceServerClient(f"127.0.0.1:{server.http}"), httpclient
    else:
        client, mod = grpcclient.InferenceServerClient(f"127.0.0.1:{server.grpc}"), grpcclient
    inputs = []
    for t, keys in enumerate(batch):
        i = mod.InferInput(f"KEYS{t}", list(keys.shape), "INT64")
        if transport == "http":
            i.set_data_from_numpy(keys, binary_data=True)
        else:
            i.set_data_from_numpy(keys)
        inputs.append(i)
    return client.infer(model, inputs).as_numpy("OUTPUT0")


def same_bits(a, b):
    a, b = np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hps", default=".device/hps")
    parser.add_argument("--out", default=os.environ.get("OUT", "served-out"))
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))
    rows, failed = [], False
    for cache_type in ["static", "dynamic", "uvm"]:
        for key_type in ["int32", "int64"]:
            name = f"{cache_type}, {key_type} keys"
            directory = tempfile.mkdtemp(prefix="hps-served-")
            gpu = cpu = None
            try:
                model = configure(generate(args.hps, directory, key_type, rng.randrange(2**31)), cache_type)
                config = os.path.join(directory, "hps.json")
                gpu = Server(args.hps, ["--config", config, "--device", "gpu"], os.path.join(args.out, f"serve-gpu-{cache_type}-{key_type}.log"))
                cpu = Server(args.hps, ["--config", config, "--device", "cpu"], os.path.join(args.out, f"serve-cpu-{cache_type}-{key_type}.log"))
                answers = elements = 0
                problem = None
                # Twice over the same requests: cold (misses filled from below) and warm (hits).
                reqs = requests(rng, key_type, args.requests)
                for round_ in range(2):
                    for i, (keys, numkeys) in enumerate(reqs):
                        transport = "http" if (i + round_) % 2 == 0 else "grpc"
                        a = infer(gpu, model, keys, numkeys, transport)
                        b = infer(cpu, model, keys, numkeys, transport)
                        answers += 1
                        elements += a.size
                        if a.size != len(keys) * DIM or not same_bits(a, b):
                            problem = problem or f"request {i} over {transport}: GPU and CPU answers differ (sizes {a.size}, {b.size})"
                l1 = gpu.metric_lines("l1", "gpu")
                with open(os.path.join(args.out, f"metrics-{cache_type}-{key_type}.txt"), "w") as f:
                    f.write("\n".join(l1))
                if not l1:
                    problem = problem or "the GPU server's metrics have no L1 or GPU lines"
                rows.append((name, answers, elements, problem))
            except Exception as error:  # a case that cannot run fails, with its reason
                rows.append((name, 0, 0, f"{type(error).__name__}: {error}"))
            finally:
                for server in (gpu, cpu):
                    if server:
                        server.stop()
            print(f"{name}: {rows[-1][3] or 'every element equal'}", flush=True)

    # The seed model's prediction head on the GPU against the CPU's.
    gpu = cpu = None
    try:
        gpu = Server(args.hps, ["--demo", "--device", "gpu"], os.path.join(args.out, "serve-gpu-demo.log"))
        cpu = Server(args.hps, ["--demo", "--device", "cpu"], os.path.join(args.out, "serve-cpu-demo.log"))
        worst, answers, problem = 0.0, 0, None
        for i in range(20):
            batch = [np.array([[t * 10000 + rng.randrange(10000) for _ in range(26)] for _ in range(256)], dtype=np.int64)
                     for t in range(8)]
            transport = "http" if i % 2 == 0 else "grpc"
            a, b = predict(gpu, "8_table_dense", batch, transport), predict(cpu, "8_table_dense", batch, transport)
            answers += 1
            if a.shape != (256, 1) or not np.all(np.isfinite(a)):
                problem = problem or f"prediction {i}: shape {a.shape} or non-finite values"
            scale = max(1e-30, float(np.max(np.abs(b))))
            worst = max(worst, float(np.max(np.abs(a - b))) / scale)
        if worst > 1e-5:
            problem = problem or f"GPU predictions differ from the CPU's by {worst:.2e} of their largest value"
        rows.append(("--demo predictions (8 tables, vec 128, 256 samples)", answers, answers * 256, problem,
                     f"largest difference {worst:.1e} of the largest prediction"))
    except Exception as error:
        rows.append(("--demo predictions", 0, 0, f"{type(error).__name__}: {error}"))
    finally:
        for server in (gpu, cpu):
            if server:
                server.stop()

    print()
    print("| served case | answers | elements compared | result |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        name, answers, elements, problem = row[:4]
        note = row[4] if len(row) > 4 else "every element the same bits"
        failed = failed or problem is not None
        print(f"| {name} | {answers} | {elements} | {'FAIL: ' + problem if problem else 'pass: ' + note} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
