#!/usr/bin/env python3
"""PyTorch embedding-lookup baseline for swift-hps GPU lookups.

What this is
------------
swift-hps serves embedding vectors. A user who does not pick swift-hps would
most likely keep the tables as PyTorch tensors on the GPU and call
``torch.nn.functional.embedding`` (or ``weight[idx]``). This script measures
that peer on the same machine, in the same run, as our own GPU lookups, so the
numbers can be put side by side. It measures exactly these shapes:

  copy                     dst.copy_(src) of 256 MiB float32, device to device:
                           the memory-bandwidth ceiling. Median ms and GB/s
                           counting bytes read + written (2 x 256 MiB / time).
  seed_fused               the seed notebook batch: 8 tables x 10,000 keys,
                           vec size 128, float32; 256 samples x 26 keys per
                           table, table i's keys uniform over its rows. The 8
                           tables are concatenated into one [80000, 128]
                           weight and looked up by ONE F.embedding call on an
                           int64 [256, 208] index (table i's keys offset by
                           i * 10000) -> [256, 208, 128], the concat layout.
  seed_unfused             the same batch as 8 F.embedding calls on the 8
                           [10000, 128] weights ([256, 26] -> [256, 26, 128])
                           then torch.cat(dim=1) -> [256, 208, 128]. Median
                           with the cat, and (timed separately) the 8 lookups
                           alone.
  random_1m_from_4m_d128   a [4,000,000, D] float32 weight, 1,000,000 uniform
  random_1m_from_4m_d64    int64 indices, F.embedding -> [1M, D]. Median us,
                           billions of lookups per second, and GB/s counting
                           vector bytes read + written (2 x 1M x D x 4 / time).

How it is timed
---------------
Every run is bracketed by a pair of CUDA events
(torch.cuda.Event(enable_timing=True)) recorded on the current stream; the
reported figure is the median over the timed runs, after warm-up runs. The
events measure GPU time between them, so when launching from Python is slower
than the GPU work (the small seed shapes, and above all the 8 launches + cat
of seed_unfused) the idle gaps are included: that is what a PyTorch user pays.
Each lookup shape cycles through 8 different random index sets across runs so
that the same indices (and the rows they touch) are not simply served from
L2 (50 MB on an H200). The weights are one copy per shape, as a served model
would hold them; the seed fused weight (41 MB) may therefore be partly L2
resident, which is the honest steady state of serving a table that small. The
256 MiB copy and the 1-2 GB random-lookup weights are far larger than L2.
All lookups run under torch.inference_mode(), as a serving process would.

Each output is checked once against a plain reference (weight[idx], and the
cat of per-table weight[idx] for the seed batch; src for the copy), bit for
bit, so the baseline is known to be correct.

Usage
-----
  python3 scripts/torch_embedding_baseline.py [--json PATH] [--quick]

  --json PATH   also write all results as one JSON object to PATH
  --quick       5 warm-up / 20 timed runs for every shape (default: 20 warm-up,
                200 timed for the small shapes, 50 timed for the large ones)

Exits with status 1 and one line on stderr when PyTorch or CUDA is missing.
"""

import argparse
import json
import os
import statistics
import sys

PROG = "torch_embedding_baseline"

# Shapes (fixed: these are what swift-hps's GPU lookups are compared against).
COPY_BYTES = 256 * 1024 * 1024
SEED_TABLES = 8
SEED_VOCAB = 10_000
SEED_DIM = 128
SEED_BATCH = 256
SEED_KEYS_PER_TABLE = 26
RANDOM_ROWS = 4_000_000
RANDOM_LOOKUPS = 1_000_000
RANDOM_DIMS = (128, 64)
INDEX_SETS = 8
FLOAT_BYTES = 4


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="torch_embedding_baseline.py",
        description=(
            "PyTorch F.embedding baseline (the peer of swift-hps GPU lookups): "
            "a 256 MiB device copy, the seed batch fused and unfused, and 1M "
            "random lookups from a 4M-row table at D=128 and D=64, each timed "
            "with CUDA events (median of many runs after warm-up)."
        ),
    )
    p.add_argument("--json", metavar="PATH", default=None,
                   help="write the full results as one JSON object to PATH")
    p.add_argument("--quick", action="store_true",
                   help="5 warm-up / 20 timed runs for every shape")
    return p.parse_args(argv)


def fail(message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    # torch is imported only here so that --help works without it.
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        fail(f"PyTorch is not installed ({e}).")
    if not torch.cuda.is_available():
        fail(f"CUDA is not available (torch {torch.__version__}, "
             f"built for CUDA {torch.version.cuda}).")

    if args.quick:
        warmup, small_runs, large_runs = 5, 20, 20
    else:
        warmup, small_runs, large_runs = 20, 200, 50

    dev = torch.device("cuda")
    gen = torch.Generator(device=dev)
    gen.manual_seed(20240601)

    def time_gpu(fn, inputs, runs):
        """Median (and spread) of CUDA-event times of fn(inputs[i % n]), ms."""
        n = len(inputs)
        for i in range(warmup):
            fn(inputs[i % n])
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        for i in range(runs):
            starts[i].record()
            fn(inputs[i % n])
            ends[i].record()
        torch.cuda.synchronize()
        ms = sorted(s.elapsed_time(e) for s, e in zip(starts, ends))
        return {
            "median_ms": statistics.median(ms),
            "min_ms": ms[0],
            "p90_ms": ms[min(len(ms) - 1, int(0.9 * len(ms)))],
        }

    def us_fields(t):
        return {
            "median_us": t["median_ms"] * 1e3,
            "min_us": t["min_ms"] * 1e3,
            "p90_us": t["p90_ms"] * 1e3,
        }

    def lookup_rates(lookups, dim, median_us):
        seconds = median_us * 1e-6
        return {
            "glookups_per_s": lookups / seconds / 1e9,
            "gbps": 2 * lookups * dim * FLOAT_BYTES / seconds / 1e9,
        }

    results = {
        "device": torch.cuda.get_device_name(dev),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "quick": bool(args.quick),
    }
    checks_ok = True

    with torch.inference_mode():
        # ---- 1. copy: 256 MiB device to device -----------------------------
        n = COPY_BYTES // FLOAT_BYTES
        src = torch.rand(n, device=dev, dtype=torch.float32, generator=gen)
        dst = torch.empty_like(src)
        dst.copy_(src)
        torch.cuda.synchronize()
        ok = bool(torch.equal(dst, src))
        checks_ok &= ok
        t = time_gpu(lambda _: dst.copy_(src), [None], large_runs)
        results["copy"] = {
            "bytes": COPY_BYTES,
            "median_ms": t["median_ms"],
            "min_ms": t["min_ms"],
            "p90_ms": t["p90_ms"],
            "gbps": 2 * COPY_BYTES / (t["median_ms"] * 1e-3) / 1e9,
            "runs": large_runs,
            "warmup": warmup,
            "correct": ok,
        }
        del src, dst
        torch.cuda.empty_cache()

        # ---- 2./3. the seed batch, fused and unfused -----------------------
        weights = [torch.rand(SEED_VOCAB, SEED_DIM, device=dev,
                              dtype=torch.float32, generator=gen)
                   for _ in range(SEED_TABLES)]
        fused_weight = torch.cat(weights, dim=0)  # [80000, 128]
        # INDEX_SETS batches; each is a list of 8 [256, 26] int64 key tensors,
        # table i's keys uniform over its own rows [0, 10000).
        per_table_sets = [
            [torch.randint(0, SEED_VOCAB, (SEED_BATCH, SEED_KEYS_PER_TABLE),
                           device=dev, dtype=torch.int64, generator=gen)
             for _ in range(SEED_TABLES)]
            for _ in range(INDEX_SETS)
        ]
        # The same batches for the fused table: offset table i by i * vocab and
        # lay the tables side by side -> [256, 208], the concat layout.
        fused_sets = [
            torch.cat([k + i * SEED_VOCAB for i, k in enumerate(keys)], dim=1)
            .contiguous()
            for keys in per_table_sets
        ]
        seed_lookups = SEED_BATCH * SEED_KEYS_PER_TABLE * SEED_TABLES

        def fused(idx):
            return F.embedding(idx, fused_weight)

        def unfused_lookups(keys):
            return [F.embedding(k, w) for k, w in zip(keys, weights)]

        def unfused(keys):
            return torch.cat(unfused_lookups(keys), dim=1)

        seed_ok = True
        for keys, idx in zip(per_table_sets, fused_sets):
            ref = torch.cat([w[k] for w, k in zip(weights, keys)], dim=1)
            f_out = fused(idx)
            u_out = unfused(keys)
            seed_ok &= tuple(f_out.shape) == (
                SEED_BATCH, SEED_TABLES * SEED_KEYS_PER_TABLE, SEED_DIM)
            seed_ok &= bool(torch.equal(f_out, fused_weight[idx]))
            seed_ok &= bool(torch.equal(f_out, ref))
            seed_ok &= bool(torch.equal(u_out, ref))
        checks_ok &= seed_ok
        seed_weight_bytes = SEED_TABLES * SEED_VOCAB * SEED_DIM * FLOAT_BYTES

        t = time_gpu(fused, fused_sets, small_runs)
        r = us_fields(t)
        results["seed_fused"] = {
            **r,
            **lookup_rates(seed_lookups, SEED_DIM, r["median_us"]),
            "lookups": seed_lookups,
            "weight_bytes": seed_weight_bytes,
            "index_sets": INDEX_SETS,
            "runs": small_runs,
            "warmup": warmup,
            "correct": seed_ok,
        }

        t = time_gpu(unfused, per_table_sets, small_runs)
        t_lk = time_gpu(unfused_lookups, per_table_sets, small_runs)
        r = us_fields(t)
        r_lk = us_fields(t_lk)
        results["seed_unfused"] = {
            **r,
            **lookup_rates(seed_lookups, SEED_DIM, r["median_us"]),
            "lookups_only_median_us": r_lk["median_us"],
            "lookups_only_min_us": r_lk["min_us"],
            "lookups_only_p90_us": r_lk["p90_us"],
            "lookups": seed_lookups,
            "weight_bytes": seed_weight_bytes,
            "index_sets": INDEX_SETS,
            "runs": small_runs,
            "warmup": warmup,
            "correct": seed_ok,
        }
        del weights, fused_weight, per_table_sets, fused_sets, ref, f_out, u_out
        torch.cuda.empty_cache()

        # ---- 4. 1M random lookups from a 4M-row table ----------------------
        for dim in RANDOM_DIMS:
            name = f"random_1m_from_4m_d{dim}"
            weight = torch.rand(RANDOM_ROWS, dim, device=dev,
                                dtype=torch.float32, generator=gen)
            idx_sets = [torch.randint(0, RANDOM_ROWS, (RANDOM_LOOKUPS,),
                                      device=dev, dtype=torch.int64,
                                      generator=gen)
                        for _ in range(INDEX_SETS)]

            def lookup(idx, weight=weight):
                return F.embedding(idx, weight)

            ok = True
            for idx in idx_sets:
                out = lookup(idx)
                ok &= tuple(out.shape) == (RANDOM_LOOKUPS, dim)
                ok &= bool(torch.equal(out, weight[idx]))
                del out
            checks_ok &= ok

            t = time_gpu(lookup, idx_sets, large_runs)
            r = us_fields(t)
            results[name] = {
                **r,
                **lookup_rates(RANDOM_LOOKUPS, dim, r["median_us"]),
                "lookups": RANDOM_LOOKUPS,
                "rows": RANDOM_ROWS,
                "dim": dim,
                "weight_bytes": RANDOM_ROWS * dim * FLOAT_BYTES,
                "index_sets": INDEX_SETS,
                "runs": large_runs,
                "warmup": warmup,
                "correct": ok,
            }
            # The same lookups from a half-precision table, the peer of
            # vector_storage fp16 / bf16: F.embedding's own output (2 bytes
            # per element), and that output made float32 (as swift-hps returns).
            for dtype_name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
                half = weight.to(dtype)
                for suffix, fn in (("", lambda idx, w=half: F.embedding(idx, w)),
                                   ("_to_fp32", lambda idx, w=half: F.embedding(idx, w).float())):
                    ok = all(bool(torch.equal(fn(idx).float(), half[idx].float())) for idx in idx_sets)
                    checks_ok &= ok
                    t = time_gpu(fn, idx_sets, large_runs)
                    r = us_fields(t)
                    out_bytes = 2 if suffix == "" else 4
                    results[f"{name}_{dtype_name}{suffix}"] = {
                        **r,
                        "glookups_per_s": RANDOM_LOOKUPS / r["median_us"] / 1e3,
                        "gbps": RANDOM_LOOKUPS * dim * (2 + out_bytes) / r["median_us"] / 1e3,
                        "lookups": RANDOM_LOOKUPS, "rows": RANDOM_ROWS, "dim": dim, "runs": large_runs,
                        "warmup": warmup, "correct": ok,
                    }
                del half
            del weight, idx_sets, lookup
            torch.cuda.empty_cache()

    results["all_correct"] = bool(checks_ok)

    # ---- report ------------------------------------------------------------
    print(f"device: {results['device']}  torch {results['torch_version']}  "
          f"CUDA {results['cuda_version']}"
          + ("  (quick)" if args.quick else ""))
    print(f"{'measurement':<26} {'median':>12} {'GB/s':>9} {'Glookup/s':>10} "
          f"{'runs':>5}  ok")
    c = results["copy"]
    print(f"{'copy (256 MiB)':<26} {c['median_ms']:>9.3f} ms {c['gbps']:>9.1f} "
          f"{'':>10} {c['runs']:>5}  {'yes' if c['correct'] else 'NO'}")
    for key in ("seed_fused", "seed_unfused",
                *(f"random_1m_from_4m_d{d}{v}" for d in RANDOM_DIMS
                  for v in ("", "_fp16", "_fp16_to_fp32", "_bf16", "_bf16_to_fp32"))):
        m = results[key]
        print(f"{key:<26} {m['median_us']:>9.1f} us {m['gbps']:>9.1f} "
              f"{m['glookups_per_s']:>10.3f} {m['runs']:>5}  "
              f"{'yes' if m['correct'] else 'NO'}")
        if key == "seed_unfused":
            print(f"{'  8 lookups, no cat':<26} "
                  f"{m['lookups_only_median_us']:>9.1f} us")
    print("GB/s counts bytes read + written; times are CUDA-event medians.")

    if args.json:
        parent = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(parent, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")

    if not checks_ok:
        fail("an output did not match its reference (see 'correct' above).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
