"""hps_torch.LookupLayer on CUDA tensors against torch.nn.functional.embedding
on the same keys and shapes, on the GPU machine (issue 15's target), after a
check that every output element equals the CPU path's.

The seed batch: 8 tables of 10,000 keys × 128 floats (table i holds keys
[i × 10,000, (i + 1) × 10,000), seeded random vectors), 256 samples × 26 keys
per table. Timed with CUDA events on PyTorch's current stream, median of 200
calls after 20 warm-up calls: one LookupLayer call per table (8 calls), and
the 8 tables in one `hps_lookup_device` call (the keys of the 8 tables in one
CUDA tensor, one output), against one F.embedding per table on the same int64
CUDA keys, and a device-to-device copy of the output's bytes. Every output
element of both paths is first checked against the CPU path's.

    LD_LIBRARY_PATH=DIR HPS_C_LIB=DIR/libhps_c.so python3 scripts/bench-torch-gpu.py [--cache-type dynamic]
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python"))
import hps_torch  # noqa: E402
from swift_hps import library  # noqa: E402

TABLES, VOCAB, DIM, KEYS_PER_SAMPLE, BATCH = 8, 10000, 128, 26, 256


def write_model(directory, cache_type, device):
    rng = np.random.default_rng(2023)
    weights = []
    for i in range(TABLES):
        folder = os.path.join(directory, "embeddings", f"table{i}")
        os.makedirs(folder, exist_ok=True)
        np.arange(i * VOCAB, (i + 1) * VOCAB, dtype=np.int64).tofile(os.path.join(folder, "key"))
        vectors = rng.uniform(-1, 1, (VOCAB, DIM)).astype(np.float32)
        vectors.tofile(os.path.join(folder, "emb_vector"))
        weights.append(vectors)
    for name, gpu in (("gpu", True), ("cpu", False)):
        config = {"supportlonglong": True, "fuse_embedding_table": True, "models": [{
            "model": "seed", "sparse_files": [os.path.join(directory, "embeddings", f"table{i}") for i in range(TABLES)],
            "embedding_table_names": [f"table{i}" for i in range(TABLES)], "embedding_vecsize_per_table": [DIM] * TABLES,
            "maxnum_catfeature_query_per_table_per_sample": [KEYS_PER_SAMPLE] * TABLES,
            "default_value_for_each_table": [0.0] * TABLES, "deployed_device_list": [device], "max_batch_size": BATCH,
            "gpucache": gpu, "gpucacheper": 1.0, "hit_rate_threshold": 1.0, "embedding_cache_type": cache_type,
            "use_static_table": cache_type == "static"}]}
        with open(os.path.join(directory, f"{name}.json"), "w") as f:
            json.dump(config, f)
    return weights


def median_ms(function, runs=200, warmup=20):
    for _ in range(warmup):
        function()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache-type", default="dynamic", choices=["static", "dynamic", "uvm"])
    arguments = parser.parse_args()
    device = torch.cuda.current_device()
    directory = tempfile.mkdtemp(prefix="hps-torch-bench-")
    weights = write_model(directory, arguments.cache_type, device)
    os.environ["HPS_DEVICE"] = "gpu"
    gpu_layers = [hps_torch.LookupLayer(os.path.join(directory, "gpu.json"), "seed", t, DIM) for t in range(TABLES)]
    os.environ["HPS_DEVICE"] = "cpu"
    cpu_layers = [hps_torch.LookupLayer(os.path.join(directory, "cpu.json"), "seed", t, DIM) for t in range(TABLES)]
    rng = np.random.default_rng(7)
    keys = [torch.tensor(rng.integers(t * VOCAB, (t + 1) * VOCAB, (BATCH, KEYS_PER_SAMPLE)), dtype=torch.int64) for t in range(TABLES)]
    cuda_keys = [k.cuda() for k in keys]
    local_keys = [(k - t * VOCAB).cuda() for t, k in enumerate(keys)]
    cuda_weights = [torch.tensor(w).cuda() for w in weights]
    # Correctness: every element against the CPU path and the weights.
    with torch.no_grad():
        for t in range(TABLES):
            on_gpu = gpu_layers[t](cuda_keys[t])
            assert on_gpu.is_cuda and on_gpu.shape == (BATCH, KEYS_PER_SAMPLE, DIM)
            on_cpu = cpu_layers[t](keys[t])
            assert torch.equal(on_gpu.cpu(), on_cpu), f"table {t}: GPU and CPU paths differ"
            assert torch.equal(on_cpu, torch.tensor(weights[t])[keys[t] - t * VOCAB]), f"table {t}: not the files' rows"
    # The 8 tables in one call: their keys end to end in one CUDA tensor, their rows in one output.
    handle = gpu_layers[0]._handle
    all_keys = torch.cat([k.reshape(-1) for k in cuda_keys])
    per_table = BATCH * KEYS_PER_SAMPLE
    fused_output = torch.empty((TABLES * per_table, DIM), dtype=torch.float32, device="cuda")

    def fused():
        parts = [(t, all_keys.data_ptr() + t * per_table * 8, per_table) for t in range(TABLES)]
        handle.lookup_device("seed", parts, library.KEYS_INT64, fused_output.data_ptr(), fused_output.numel(),
                             device, torch.cuda.current_stream().cuda_stream)
        return fused_output

    with torch.no_grad():
        # int32 CUDA keys are widened on the device for this int64 model; a non-contiguous view is copied.
        assert torch.equal(gpu_layers[0](cuda_keys[0].int()), gpu_layers[0](cuda_keys[0]))
        assert torch.equal(gpu_layers[0](cuda_keys[0].t()), gpu_layers[0](cuda_keys[0].t().contiguous()))
        fused_output.fill_(float("nan"))
        got = fused().cpu()
        want = torch.cat([cpu_layers[t](keys[t]).reshape(per_table, DIM) for t in range(TABLES)])
        assert torch.equal(got, want), "the fused device call differs from the CPU path"
    print("check: every output element of the 8 tables equals the CPU path's and the files' rows, per layer and fused")
    with torch.no_grad():
        hps_ms = median_ms(lambda: [gpu_layers[t](cuda_keys[t]) for t in range(TABLES)])
        embedding_ms = median_ms(lambda: [torch.nn.functional.embedding(local_keys[t], cuda_weights[t]) for t in range(TABLES)])
        source = torch.empty(TABLES * BATCH * KEYS_PER_SAMPLE * DIM, dtype=torch.float32, device="cuda")
        target = torch.empty_like(source)
        copy_ms = median_ms(lambda: target.copy_(source))
        fused_ms = median_ms(fused)
        one_hps = median_ms(lambda: gpu_layers[0](cuda_keys[0]))
        one_embedding = median_ms(lambda: torch.nn.functional.embedding(local_keys[0], cuda_weights[0]))
    print(f"card: {torch.cuda.get_device_name()}; cache type {arguments.cache_type}; torch {torch.__version__}")
    print("| measurement (median of 200, CUDA events) | ms |")
    print("| --- | --- |")
    print(f"| hps_torch.LookupLayer, 8 tables × 256 × 26 int64 CUDA keys (8 calls) | {hps_ms:.4f} |")
    print(f"| the 8 tables in one hps_lookup_device call (keys in one CUDA tensor) | {fused_ms:.4f} |")
    print(f"| F.embedding, same keys and shapes (8 calls) | {embedding_ms:.4f} |")
    print(f"| device-to-device copy of the output's {source.numel() * 4} bytes | {copy_ms:.4f} |")
    print(f"| one table: hps_torch.LookupLayer / F.embedding | {one_hps:.4f} / {one_embedding:.4f} |")
    print(f"| ratio hps_torch / F.embedding (8 tables) | {hps_ms / embedding_ms:.2f} |")
    print(f"| ratio one fused call / F.embedding (8 tables) | {fused_ms / embedding_ms:.2f} |")


if __name__ == "__main__":
    main()
