"""The C library's calls for the notebook's batch, from ctypes, fused and not:
whether `fuse_embedding_table` makes the library itself faster, apart from
TensorFlow (`scripts/bench-python-notebook.py` times the whole notebook).

Writes the notebook's 8 tables (10,000 keys × 128 floats, as
`python/examples/table_fusion_demo.py` does) into a temporary folder, opens
its configuration with fusion off and on, and times `hps_lookup_requests` for
one batch (8 tables × 256 samples × 26 int32 keys) three ways: one call of
the 8 requests, 8 calls of one, and one call of the first then one of the
other seven (what the TensorFlow op's combining does). Median of 50 calls
after 10.

    HPS_C_LIB=.build/release/libhps_c.so python3 scripts/bench-python-fused-calls.py
"""

import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "python", "examples"))
import table_fusion_demo as demo  # noqa: E402
from swift_hps import library  # noqa: E402


def main():
    directory = tempfile.mkdtemp(prefix="hps-fused-calls-")
    demo.set_up_model_files(directory)
    rng = np.random.default_rng(1)
    keys = [rng.integers(i * demo.VOCAB_SIZE, (i + 1) * demo.VOCAB_SIZE,
                         size=demo.MAX_BATCH_SIZE * demo.NUM_QUERY_KEY).astype(np.int32) for i in range(demo.NUM_TABLES)]
    outputs = [np.empty((k.size, demo.EMB_VEC_SIZE), dtype=np.float32) for k in keys]
    requests = [(i, keys[i].ctypes.data, keys[i].size, outputs[i].ctypes.data) for i in range(demo.NUM_TABLES)]
    shapes = {
        "one call of the 8 requests": lambda h: h.lookup_requests(demo.MODEL, requests, library.KEYS_INT32),
        "8 calls of one request": lambda h: [h.lookup_requests(demo.MODEL, [r], library.KEYS_INT32) for r in requests],
        "the first, then the other seven": lambda h: (h.lookup_requests(demo.MODEL, requests[:1], library.KEYS_INT32),
                                                     h.lookup_requests(demo.MODEL, requests[1:], library.KEYS_INT32)),
    }
    print("| fuse_embedding_table | calls | median ms per batch |")
    print("| --- | --- | --- |")
    for fuse in (False, True):
        handle = library.Handle(demo.write_config(directory, fuse))
        for name, call in shapes.items():
            times = []
            for _ in range(60):
                start = time.perf_counter()
                call(handle)
                times.append(time.perf_counter() - start)
            print(f"| {str(fuse).lower()} | {name} | {np.median(times[10:]) * 1e3:.2f} |")
        handle.close()


if __name__ == "__main__":
    main()
