"""Where the Python notebook's time goes, beside its peers, on this machine
(issue 15's target: the fused 100 iterations within 1.2× of `hps demo`'s).

In one run, one process each, 100 iterations of the notebook's batch (8
tables × 256 samples × 26 int32 keys, vec 128), the same inputs:
1. `hps demo`'s fused lookups and Dense head (Swift), from its own output;
2. `python/examples/table_fusion_demo.py`: the SavedModel of eight
   `hps.LookupLayer`s → reshape → concat → Dense(1), fusion off and on;
3. the plain TensorFlow approach: the same model with `tf.keras.layers.Embedding`
   tables holding the same vectors in TensorFlow (what a user would run
   without a parameter server);
4. the model's head alone (reshape → concat → Dense(1)) on the 8 looked-up
   tensors precomputed: the part of every iteration that is not a lookup.
Medians are not taken: each figure is the elapsed time of the 100 iterations,
as the notebook prints it, best of `--repeats` processes.

    HPS_C_LIB=.build/release/libhps_c.so python3 scripts/bench-python-notebook.py [--hps .build/release/hps] [--device cpu|gpu]
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python", "examples"))
import table_fusion_demo as demo  # noqa: E402


def plain_tensorflow(directory, iterations, head_only):
    """The notebook's model on TensorFlow's own Embedding tables (or its head alone)."""
    import tensorflow as tf
    tables = []
    for i in range(demo.NUM_TABLES):
        folder = os.path.join(directory, "embeddings", f"table{i}")
        tables.append(np.fromfile(os.path.join(folder, "emb_vector"), dtype=np.float32).reshape(demo.VOCAB_SIZE, -1))
    dense = tf.keras.layers.Dense(1, activation="sigmoid", kernel_initializer=tf.keras.initializers.GlorotUniform(seed=7))
    embeddings = [tf.keras.layers.Embedding(demo.VOCAB_SIZE * demo.NUM_TABLES, demo.EMB_VEC_SIZE) for _ in tables]
    for i, layer in enumerate(embeddings):
        layer.build((None, demo.NUM_QUERY_KEY))
        full = np.zeros((demo.VOCAB_SIZE * demo.NUM_TABLES, demo.EMB_VEC_SIZE), dtype=np.float32)
        full[i * demo.VOCAB_SIZE:(i + 1) * demo.VOCAB_SIZE] = tables[i]
        layer.set_weights([full])

    @tf.function
    def model(ids):
        vectors = [tf.reshape(embeddings[i](ids[i]), (-1, demo.NUM_QUERY_KEY * demo.EMB_VEC_SIZE)) for i in range(len(ids))]
        return dense(tf.concat(vectors, axis=1))

    @tf.function
    def head(vectors):
        return dense(tf.concat([tf.reshape(v, (-1, demo.NUM_QUERY_KEY * demo.EMB_VEC_SIZE)) for v in vectors], axis=1))

    rng = np.random.default_rng(42)
    inputs = [[tf.constant(rng.integers(i * demo.VOCAB_SIZE, (i + 1) * demo.VOCAB_SIZE,
                                        (demo.MAX_BATCH_SIZE, demo.NUM_QUERY_KEY), dtype=np.int32))
               for i in range(demo.NUM_TABLES)] for _ in range(iterations + 1)]
    if head_only:
        inputs = [[tf.constant(tables[i][ids.numpy() - i * demo.VOCAB_SIZE]) for i, ids in enumerate(step)] for step in inputs]
        function = head
    else:
        function = model
    function(inputs[0]).numpy()
    start = time.time()
    for i in range(iterations):
        function(inputs[i + 1]).numpy()
    return time.time() - start


def best(command, pattern, repeats):
    times = []
    for _ in range(repeats):
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        times.append([float(x) for x in re.findall(pattern, out)])
    return [min(column) for column in zip(*times)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hps", default=os.path.join(ROOT, ".build", "release", "hps"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="where hps demo and the Python layers look up")
    parser.add_argument("--plain", choices=["model", "head"], help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.plain:
        print(f"elapsed {plain_tensorflow(arguments.directory, 100, arguments.plain == 'head'):.6f}")
        return
    os.environ["HPS_DEVICE"] = arguments.device
    directory = tempfile.mkdtemp(prefix="hps-notebook-bench-")
    demo.set_up_model_files(directory)
    hps_unfused, hps_fused = best([arguments.hps, "demo", "--iterations", "100", "--device", arguments.device],
                                  r"[Ee]lapsed time for 100 iterations: ([0-9.]+) seconds", arguments.repeats)
    python_unfused, python_fused = best([sys.executable, os.path.join(ROOT, "python", "examples", "table_fusion_demo.py")],
                                        r"[Ee]lapsed time for 100 iterations: ([0-9.]+) seconds", arguments.repeats)
    plain = best([sys.executable, __file__, "--plain", "model", "--directory", directory], r"elapsed ([0-9.]+)",
                 arguments.repeats)[0]
    head = best([sys.executable, __file__, "--plain", "head", "--directory", directory], r"elapsed ([0-9.]+)",
                arguments.repeats)[0]
    rows = [
        ("`hps demo`, fused (Swift lookups and head)", hps_fused),
        ("`hps demo`, unfused", hps_unfused),
        ("Python notebook, SavedModel of `hps.LookupLayer`s, fused", python_fused),
        ("Python notebook, unfused", python_unfused),
        ("the same model on `tf.keras.layers.Embedding` tables (plain TensorFlow)", plain),
        ("its head alone (reshape → concat → Dense) on precomputed vectors", head),
    ]
    print("| 100 iterations of the notebook's batch (best of %d processes) | seconds | × `hps demo` fused |" % arguments.repeats)
    print("| --- | --- | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.4f} | {seconds / hps_fused:.2f} |")


if __name__ == "__main__":
    main()
