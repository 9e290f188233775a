"""HugeCTR's table fusion notebook (../../../shared/seed/hps_table_fusion_demo.txt)
on swift-hps's TensorFlow plugin, in process:

- writes 8 tables of 10,000 keys × 128 floats in HugeCTR's format (table i holds
  keys [i × 10,000, (i + 1) × 10,000); seeded random vectors, so that equal
  predictions mean equal lookups) and the notebook's HPS configuration;
- builds the notebook's Keras model (eight `hps.LookupLayer`s → reshape → concat
  → Dense(1)) and saves it as a SavedModel;
- in a fresh process each, loads the SavedModel with `fuse_embedding_table`
  false and then true, runs 100 iterations of batch 256 (26 keys per table and
  sample, int32), times them, and prints the notebook's lines;
- says whether both runs' predictions are equal.

    python3 python/examples/table_fusion_demo.py [--output DIR] [--iterations 100]

Needs tensorflow(-cpu) and libhps_c.so (see python/hierarchical_parameter_server/build.py).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

NUM_TABLES, VOCAB_SIZE, EMB_VEC_SIZE, NUM_QUERY_KEY, MAX_BATCH_SIZE = 8, 10000, 128, 26, 256
MODEL = f"{NUM_TABLES}_table"
HERE = os.path.dirname(os.path.abspath(__file__))


def hps_config(directory, fuse):
    return {
        "supportlonglong": False,
        "fuse_embedding_table": fuse,
        "models": [{
            "model": MODEL,
            "sparse_files": [os.path.join(directory, "embeddings", f"table{i}") for i in range(NUM_TABLES)],
            "num_of_worker_buffer_in_pool": NUM_TABLES,
            "embedding_table_names": [f"table{i}" for i in range(NUM_TABLES)],
            "embedding_vecsize_per_table": [EMB_VEC_SIZE] * NUM_TABLES,
            "maxnum_catfeature_query_per_table_per_sample": [NUM_QUERY_KEY] * NUM_TABLES,
            "default_value_for_each_table": [0.0] * NUM_TABLES,
            "deployed_device_list": [0],
            "max_batch_size": MAX_BATCH_SIZE,
            "cache_refresh_percentage_per_iteration": 1.0,
            "hit_rate_threshold": 1.0,
            "gpucacheper": 1.0,
            "gpucache": True,
            "embedding_cache_type": "dynamic",
            "use_context_stream": True,
        }],
    }


def set_up_model_files(directory):
    rng = np.random.default_rng(2023)
    for i in range(NUM_TABLES):
        folder = os.path.join(directory, "embeddings", f"table{i}")
        os.makedirs(folder, exist_ok=True)
        np.arange(i * VOCAB_SIZE, (i + 1) * VOCAB_SIZE, dtype=np.int64).tofile(os.path.join(folder, "key"))
        rng.uniform(-0.05, 0.05, (VOCAB_SIZE, EMB_VEC_SIZE)).astype(np.float32).tofile(os.path.join(folder, "emb_vector"))


def write_config(directory, fuse):
    path = os.path.join(directory, f"{MODEL}.json")
    with open(path, "w") as f:
        json.dump(hps_config(directory, fuse), f, indent=4)
    return path


def create_savedmodel(directory):
    import tensorflow as tf

    import hierarchical_parameter_server as hps
    config = write_config(directory, fuse=False)
    inputs = [tf.keras.Input(shape=(NUM_QUERY_KEY,), dtype=tf.int32) for _ in range(NUM_TABLES)]
    embeddings = []
    for i in range(NUM_TABLES):
        layer = hps.LookupLayer(model_name=MODEL, table_id=i, emb_vec_size=EMB_VEC_SIZE, emb_vec_dtype=tf.float32,
                                ps_config_file=config, global_batch_size=MAX_BATCH_SIZE, name=f"embedding_lookup{i}")
        embeddings.append(tf.keras.layers.Reshape((NUM_QUERY_KEY * EMB_VEC_SIZE,))(layer(inputs[i])))
    logit = tf.keras.layers.Dense(1, activation="sigmoid", name="fc",
                                  kernel_initializer=tf.keras.initializers.GlorotUniform(seed=7))(
        tf.keras.layers.Concatenate(axis=1)(embeddings))
    model = tf.keras.Model(inputs, logit)
    model.summary()
    path = os.path.join(directory, f"{MODEL}.savedmodel")
    if hasattr(model, "export"):  # Keras 3
        model.export(path)
    else:  # Keras 2 (TF_USE_LEGACY_KERAS=1), as the notebook saves it
        model.save(path)
    return path


def inference(directory, fuse, iterations):
    """In this (fresh) process: loads the SavedModel under the configuration
    with `fuse`, runs the iterations and saves the predictions."""
    import tensorflow as tf

    import hierarchical_parameter_server  # noqa: F401 (registers the lookup op)
    write_config(directory, fuse)
    path = os.path.join(directory, f"{MODEL}.savedmodel")
    loaded = tf.saved_model.load(path)
    model = loaded.serve if hasattr(loaded, "serve") else tf.keras.models.load_model(path)
    rng = np.random.default_rng(42)
    inputs_seq = [[tf.constant(rng.integers(i * VOCAB_SIZE, (i + 1) * VOCAB_SIZE, (MAX_BATCH_SIZE, NUM_QUERY_KEY),
                                            dtype=np.int32)) for i in range(NUM_TABLES)]
                  for _ in range(iterations + 1)]
    model(inputs_seq[0])  # warm-up: the first call opens the configuration
    predictions = []
    start = time.time()
    for i in range(iterations):
        predictions.append(model(inputs_seq[i + 1]).numpy())
    end = time.time()
    print("[INFO] Elapsed time for " + str(iterations) + " iterations: " + str(end - start) + " seconds")
    np.save(os.path.join(directory, f"predictions-{'fused' if fuse else 'unfused'}.npy"), np.stack(predictions))
    return end - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="where the tables, configuration and SavedModel go (default: a temporary folder)")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--inference", choices=["fused", "unfused"], help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    sys.path.insert(0, os.path.dirname(HERE))
    directory = arguments.output or tempfile.mkdtemp(prefix="hps-table-fusion-")
    if arguments.inference:
        inference(directory, arguments.inference == "fused", arguments.iterations)
        return
    os.makedirs(directory, exist_ok=True)
    set_up_model_files(directory)
    create_savedmodel(directory)
    times = {}
    for kind in ("unfused", "fused"):
        print(f"Make inference with HPS table fusion {'enabled' if kind == 'fused' else 'disabled'}")
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--output", directory,
                              "--iterations", str(arguments.iterations), "--inference", kind],
                             check=True, capture_output=True, text=True).stdout
        line = next(line for line in out.splitlines() if line.startswith("[INFO] Elapsed time"))
        print(line)
        times[kind] = float(line.split(": ")[1].split()[0])
    unfused = np.load(os.path.join(directory, "predictions-unfused.npy"))
    fused = np.load(os.path.join(directory, "predictions-fused.npy"))
    print(f"[INFO] unfused {times['unfused']:.4f} s, fused {times['fused']:.4f} s for {arguments.iterations} iterations; "
          f"predictions equal: {bool(np.array_equal(unfused, fused))}")


if __name__ == "__main__":
    main()
