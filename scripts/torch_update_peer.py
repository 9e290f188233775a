#!/usr/bin/env python3
"""The peer of `hps bench --device gpu --updates`: new rows for some keys of an
embedding table kept as a PyTorch tensor on the GPU, as a user without
swift-hps would apply an update from training: the batch's row indices and
vectors arrive in host memory (pageable, as a Kafka consumer decodes them),
are copied to the GPU, and `weight.index_copy_(0, rows, vectors)` writes them.
Same shapes as the Swift benchmark: a [1,000,000, 128] float32 weight,
batches of 1,000, 10,000 and 100,000 distinct rows, five sets rotated; host
wall clock per update (each ends with torch.cuda.synchronize()), median of 50
after 5 warm-ups. The row index stands in for the key: PyTorch has no key
lookup, so the peer is spared finding the rows.

Usage: python3 scripts/torch_update_peer.py   (prints one markdown row per batch)
"""
import time

import numpy as np
import torch


def main():
    device = torch.device("cuda")
    weight = torch.randn(1_000_000, 128, device=device)
    generator = np.random.default_rng(91)
    print("| PyTorch: index_copy_ of rows from host memory (%s, [1M, 128] fp32) | median per call | key updates/s |" % torch.cuda.get_device_name())
    print("| --- | --- | --- |")
    for batch in (1000, 10_000, 100_000):
        sets = []
        for _ in range(5):
            rows = np.unique(generator.integers(0, weight.shape[0], size=batch)).astype(np.int64)
            vectors = generator.standard_normal((rows.size, 128), dtype=np.float32)
            sets.append((torch.from_numpy(rows), torch.from_numpy(vectors)))
        times = []
        for i in range(55):
            rows, vectors = sets[i % 5]
            torch.cuda.synchronize()
            start = time.perf_counter()
            weight.index_copy_(0, rows.to(device), vectors.to(device))
            torch.cuda.synchronize()
            if i >= 5:
                times.append(time.perf_counter() - start)
        median = float(np.median(times))
        keys = sum(s[0].numel() for s in sets) // 5
        print("| %d keys per call | %.1f µs | %.2f M |" % (keys, median * 1e6, keys / median / 1e6))


if __name__ == "__main__":
    main()
