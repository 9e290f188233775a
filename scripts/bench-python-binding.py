"""The Python bindings' own cost per call (issue 15's target: at most 10 µs
beyond the Swift lookup), on the CPU, in one run:

- C: a small C program (compiled here with the system's cc against hps.h)
  calls hps_lookup in a loop on preallocated buffers: the Swift lookup and the
  C boundary, nothing of Python;
- ctypes: the same call from Python through swift_hps.library, on numpy
  buffers allocated once;
- hps_torch: `LookupLayer(keys)` on a CPU tensor (allocates the output);
- TensorFlow: `hps.LookupLayer(ids)` called eagerly (allocates the output).

One sample's keys of one table (26 int64 keys, vec size 128, a model of
8 tables × 10,000 keys, served from the CPU), median of 20,000 calls after
2,000 warm-up calls (C: median of 200 blocks of 100 calls).

    python3 scripts/bench-python-binding.py   # after swift build -c release --product hps_c
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(CHECKOUT, "python"))
os.environ.setdefault("HPS_DEVICE", "cpu")
os.environ.setdefault("HPS_C_LIB", os.path.join(CHECKOUT, ".build", "release", "libhps_c.so"))
sys.path.insert(0, os.path.join(CHECKOUT, "python", "examples"))
import table_fusion_demo as demo  # noqa: E402

from swift_hps import library  # noqa: E402

KEYS, CALLS, WARMUP = 26, 20000, 2000

C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "hps.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int compare(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    hps_handle *h = NULL; char *error = NULL;
    if (hps_open(argv[1], "cpu", &h, &error) != HPS_OK) { fprintf(stderr, "%s\n", error); return 1; }
    int64_t keys[26]; float out[26 * 128]; double blocks[200];
    for (int i = 0; i < 26; i++) keys[i] = 17 + 331 * i;
    for (int i = 0; i < 2000; i++) hps_lookup(h, "8_table", 0, keys, HPS_KEYS_INT64, 26, out, 26 * 128, HPS_MEMORY_HOST, 0, NULL);
    for (int b = 0; b < 200; b++) {
        double start = now();
        for (int i = 0; i < 100; i++) hps_lookup(h, "8_table", 0, keys, HPS_KEYS_INT64, 26, out, 26 * 128, HPS_MEMORY_HOST, 0, NULL);
        blocks[b] = (now() - start) / 100;
    }
    qsort(blocks, 200, sizeof(double), compare);
    printf("%.1f\n", blocks[100]);
    hps_close(h);
    return 0;
}
"""


def median_ns(function):
    for _ in range(WARMUP):
        function()
    times = np.empty(CALLS)
    for i in range(CALLS):
        start = time.perf_counter_ns()
        function()
        times[i] = time.perf_counter_ns() - start
    return float(np.median(times))


def main():
    directory = tempfile.mkdtemp(prefix="hps-binding-bench-")
    demo.set_up_model_files(directory)
    config = demo.write_config(directory, fuse=True)
    library_path = library.c_library_path()
    program = os.path.join(directory, "bench")
    with open(program + ".c", "w") as f:
        f.write(C_PROGRAM)
    subprocess.run([os.environ.get("CC", "cc"), "-O2", program + ".c", "-o", program, f"-I{library.c_include_folder()}",
                    f"-L{os.path.dirname(library_path)}", "-l:libhps_c.so", f"-Wl,-rpath,{os.path.dirname(library_path)}"],
                   check=True)
    c_ns = float(subprocess.run([program, config], check=True, capture_output=True, text=True).stdout)

    keys = (17 + 331 * np.arange(KEYS)).astype(np.int64)
    out = np.empty((KEYS, 128), np.float32)
    handle = library.Handle.shared(config)
    keys_pointer, out_pointer = keys.ctypes.data, out.ctypes.data
    ctypes_ns = median_ns(lambda: handle.lookup("8_table", 0, keys_pointer, library.KEYS_INT64, KEYS, out_pointer, KEYS * 128))
    rows = [("C loop: hps_lookup (the Swift lookup and the C boundary)", c_ns),
            ("ctypes: swift_hps.library.Handle.lookup on numpy buffers", ctypes_ns)]
    try:
        import torch

        import hps_torch
        layer = hps_torch.LookupLayer(config, "8_table", 0, 128)
        tensor = torch.tensor(keys)
        with torch.no_grad():
            torch_ns = median_ns(lambda: layer(tensor))
        assert np.array_equal(layer(tensor).numpy(), out)
        rows.append(("hps_torch.LookupLayer(keys), CPU tensor", torch_ns))
    except ImportError:
        rows.append(("hps_torch.LookupLayer(keys)", float("nan")))
    try:
        import tensorflow as tf

        import hierarchical_parameter_server as hps
        tf_layer = hps.LookupLayer(model_name="8_table", table_id=0, emb_vec_size=128, emb_vec_dtype=tf.float32,
                                   ps_config_file=config)
        ids = tf.constant(keys)
        tf_ns = median_ns(lambda: tf_layer(ids))
        assert np.array_equal(tf_layer(ids).numpy(), out)
        rows.append(("TensorFlow hps.LookupLayer(ids), eager", tf_ns))
        op_ns = median_ns(lambda: hps._ops.hps_lookup(ids=ids, model_name="8_table", table_id=0, emb_vec_size=128,
                                                      ps_config_file=config))
        rows.append(("TensorFlow: the HpsLookup op alone, eager", op_ns))
        # TensorFlow's own floor and peers on the same ids, eager: the cheapest op
        # (Identity, no attributes, no copy) is what any op's dispatch costs; the
        # gathers are what a TensorFlow user would run instead (a tf.Variable of
        # 10,000 × 128, the ids taken modulo its rows).
        rows.append(("TensorFlow: tf.raw_ops.Identity(ids), eager (the dispatch floor of any op)",
                     median_ns(lambda: tf.raw_ops.Identity(input=ids))))
        table = tf.Variable(np.random.default_rng(3).random((10000, 128), dtype=np.float32))
        local = tf.constant(keys % 10000)
        rows.append(("TensorFlow: tf.raw_ops.ResourceGather on a tf.Variable, eager",
                     median_ns(lambda: tf.raw_ops.ResourceGather(resource=table.handle, indices=local, dtype=tf.float32))))
        rows.append(("TensorFlow: tf.nn.embedding_lookup on a tf.Variable, eager (the plain approach)",
                     median_ns(lambda: tf.nn.embedding_lookup(table, local))))
        traced = tf.function(lambda x: tf_layer(x))
        function_ns = median_ns(lambda: traced(ids))
        assert np.array_equal(traced(ids).numpy(), out)
        rows.append(("TensorFlow hps.LookupLayer inside a tf.function (as a SavedModel runs it)", function_ns))
    except ImportError:
        rows.append(("TensorFlow hps.LookupLayer(ids)", float("nan")))
    print(f"| one sample's keys ({KEYS} int64, vec 128) of one table, CPU | median µs per call | beyond the C loop µs |")
    print("| --- | --- | --- |")
    for name, ns in rows:
        print(f"| {name} | {ns / 1000:.2f} | {(ns - c_ns) / 1000:.2f} |")


if __name__ == "__main__":
    main()
