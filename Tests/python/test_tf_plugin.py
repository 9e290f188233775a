"""swift-hps's TensorFlow plugin (python/hierarchical_parameter_server) on the CPU:
LookupLayer and SparseLookupLayer against the model files' vectors and numpy
references, int32 and int64 ids of ranks 1 to 3, max_norm, every combiner, a
SavedModel loaded back in a fresh process, lookups from several threads, and bad
input as a Python exception with one sentence.

Run after `swift build --product hps_c` (beside hps), with tensorflow-cpu installed:
HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python/test_tf_plugin.py
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from in_process import PYTHON_DIR, at_once, config, reference, use_checkout_packages  # noqa: E402,F401 (fixtures)
from test_http import DIM, MODEL, TABLES, hps_bin, model_dir, tables  # noqa: E402,F401 (fixtures)

use_checkout_packages()
import tensorflow as tf  # noqa: E402

import hierarchical_parameter_server as hps  # noqa: E402


def layer(config, table=0, cls=None, size=DIM, model=MODEL):
    return (cls or hps.LookupLayer)(model_name=model, table_id=table, emb_vec_size=size, emb_vec_dtype=tf.float32,
                                    ps_config_file=config, global_batch_size=16)



def test_init(config):
    assert hps.Init(global_batch_size=16, ps_config_file=config) == "OK"
    assert hps.Init(global_batch_size=16, ps_config_file=config) == "OK"


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 2)])
def test_lookup_layer_equals_the_files(config, tables, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    for table in range(TABLES):
        ids = rng.choice(list(tables[table].keys()) + [10**6], size=shape)
        out = layer(config, table)(tf.constant(ids, dtype=dtype))
        assert out.dtype == tf.float32 and tuple(out.shape) == shape + (DIM,)
        np.testing.assert_array_equal(out.numpy(), reference(tables, table, ids))


def test_the_command_line_agrees(config, tables):
    keys = [1, 50, 99]
    out = subprocess.run([hps_bin(), "lookup", "--config", config, "--model", MODEL, "--table", "0",
                          "--keys", ",".join(map(str, keys)), "--json"], check=True, capture_output=True, text=True).stdout
    np.testing.assert_array_equal(layer(config)(tf.constant(keys, tf.int64)).numpy(),
                                  np.array(json.loads(out)["vectors"], dtype=np.float32))


def test_max_norm(config, tables):
    ids = np.array([[1, 2], [3, 4]])
    out = layer(config)(tf.constant(ids, tf.int64), max_norm=0.05).numpy()
    expected = reference(tables, 0, ids)
    norms = np.linalg.norm(expected, axis=-1, keepdims=True)
    expected = np.where(norms > 0.05, expected * (0.05 / np.maximum(norms, 1e-30)), expected)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert (np.linalg.norm(out, axis=-1) <= 0.05 + 1e-6).all()


@pytest.mark.parametrize("combiner", ["mean", "sum", "sqrtn", None])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_lookup_layer_combiners(config, tables, combiner, weighted):
    rows = [[101, 102, 103], [150], [199, 100]]
    indices = [[r, c] for r, row in enumerate(rows) for c in range(len(row))]
    values = [k for row in rows for k in row]
    weights = np.array([0.5, 2.0, 1.0, 3.0, 1.5, 0.25], dtype=np.float32)
    sp_ids = tf.SparseTensor(indices, tf.constant(values, tf.int64), [3, 3])
    sp_weights = tf.SparseTensor(indices, weights, [3, 3]) if weighted else None
    out = layer(config, 1, hps.SparseLookupLayer)(sp_ids, sp_weights, combiner=combiner).numpy()
    expected, start = [], 0
    for row in rows:
        vectors = reference(tables, 1, row)
        w = weights[start:start + len(row)] if weighted else np.ones(len(row), np.float32)
        start += len(row)
        total = (vectors * w[:, None]).sum(axis=0)
        expected.append({"sum": total, "mean": total / w.sum(), None: total / w.sum(),
                         "sqrtn": total / np.sqrt((w * w).sum())}[combiner])
    np.testing.assert_allclose(out, np.stack(expected), rtol=1e-6, atol=1e-7)


def test_threads_at_once(config, tables):
    lookups = [layer(config, t % TABLES) for t in range(6)]
    rng = np.random.default_rng(3)
    ids = [rng.choice(list(tables[t % TABLES].keys()), size=(32, 4)) for t in range(6)]
    results = at_once([lambda i=i: lookups[i](tf.constant(ids[i], tf.int64)).numpy() for i in range(6)], 20)
    for i in range(6):
        np.testing.assert_array_equal(results[i], reference(tables, i % TABLES, ids[i]))


@pytest.mark.parametrize("fuse", [True, False])
def test_layers_of_one_model_in_one_function(config, tables, tmp_path, fuse):
    """Every layer of the model in one tf.function, fused (the lookups combined
    into one call per fusion group) and not: the files' vectors either way; and
    a bad lookup among combined ones fails alone, with its own sentence."""
    with open(config) as f:
        settings = json.load(f)
    settings["fuse_embedding_table"] = fuse
    path = os.path.join(os.path.dirname(config), f"hps-fuse-{str(fuse).lower()}.json")  # beside its relative sparse_files
    with open(path, "w") as f:
        json.dump(settings, f)
    layers = [layer(path, t % TABLES) for t in range(2 * TABLES)]

    @tf.function
    def all_layers(ids):
        return [layers[i](ids[i]) for i in range(len(layers))]

    rng = np.random.default_rng(11 + fuse)
    for _ in range(5):
        ids = [rng.choice(list(tables[i % TABLES].keys()) + [10**6], size=(16, 3)) for i in range(len(layers))]
        results = all_layers([tf.constant(i, tf.int32) for i in ids])
        for i, result in enumerate(results):
            np.testing.assert_array_equal(result.numpy(), reference(tables, i % TABLES, ids[i]))
    good = rng.choice(list(tables[0].keys()), size=(8, 2))
    too_many = np.ones(10**4, np.int64)
    calls = [lambda: layers[0](tf.constant(good, tf.int64)).numpy()] * 3

    def bad():
        with pytest.raises(tf.errors.InvalidArgumentError, match="exceed max_batch_size"):
            layers[1](tf.constant(too_many))
        return "refused"

    results = at_once(calls + [bad], 10)
    for i in range(3):
        np.testing.assert_array_equal(results[i], reference(tables, 0, good))
    assert results[3] == "refused"


def test_savedmodel_loads_in_a_fresh_process(config, tables, tmp_path):
    """A Keras model of LookupLayers → concat → Dense(1), saved as a SavedModel, loaded back by a new
    process that imported the package (no Init), predicts what it predicted here."""
    inputs = [tf.keras.Input(shape=(4,), dtype=tf.int32) for _ in range(TABLES)]
    vectors = [tf.keras.layers.Reshape((4 * DIM,))(layer(config, t)(inputs[t])) for t in range(TABLES)]
    logit = tf.keras.layers.Dense(1, kernel_initializer="ones")(tf.keras.layers.Concatenate()(vectors))
    model = tf.keras.Model(inputs, logit)
    ids = [np.array([[1, 2, 3, 4], [5, 6, 7, 99]], np.int32), np.array([[100, 101, 102, 103], [150, 160, 170, 199]], np.int32)]
    here = model([tf.constant(i) for i in ids]).numpy()
    path = str(tmp_path / "model.savedmodel")
    if hasattr(model, "export"):  # Keras 3: a SavedModel with a `serve` endpoint
        model.export(path)
    else:  # Keras 2 (tf_keras, TF_USE_LEGACY_KERAS=1), as the notebook saves it
        model.save(path)
    np.save(tmp_path / "ids0.npy", ids[0])
    np.save(tmp_path / "ids1.npy", ids[1])
    script = f"""
import sys, numpy as np
sys.path.insert(0, {PYTHON_DIR!r})
import tensorflow as tf
import hierarchical_parameter_server
loaded = tf.saved_model.load({path!r})
ids = [tf.constant(np.load({str(tmp_path / 'ids0.npy')!r})), tf.constant(np.load({str(tmp_path / 'ids1.npy')!r}))]
np.save({str(tmp_path / 'there.npy')!r}, (loaded.serve(ids) if hasattr(loaded, "serve") else loaded(ids)).numpy())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "there.npy"), here)
    expected = sum(reference(tables, t, ids[t]).reshape(2, -1).sum(axis=1) for t in range(TABLES))
    np.testing.assert_allclose(here[:, 0], expected, rtol=1e-5)


def test_bad_input_raises_one_sentence(config, tmp_path):
    with pytest.raises(TypeError, match="int32 or int64 ids, not float32"):
        layer(config)(tf.constant([1.0, 2.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match='no model named "nope"'):
        layer(config, model="nope")(tf.constant([1], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="has no table"):
        layer(config, table=7)(tf.constant([1], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"emb_vec_size is 16 but table 0 of model {MODEL}"):
        layer(config, size=16)(tf.constant([1], tf.int64))
    missing = str(tmp_path / "missing.json")
    with pytest.raises(tf.errors.InvalidArgumentError, match="cannot read the configuration file .*missing.json"):
        layer(missing)(tf.constant([1], tf.int64))
    with pytest.raises(RuntimeError, match="missing.json"):
        hps.Init(global_batch_size=1, ps_config_file=missing)
    (tmp_path / "bad.json").write_text('{"models": 3}')
    with pytest.raises(RuntimeError, match="(?i)supportlonglong is required"):
        hps.Init(global_batch_size=1, ps_config_file=str(tmp_path / "bad.json"))
    with pytest.raises(ValueError, match="combiner must be mean, sum or sqrtn"):
        layer(config, cls=hps.SparseLookupLayer)(tf.SparseTensor([[0, 0]], tf.constant([1], tf.int64), [1, 1]), combiner="max")
    with pytest.raises(tf.errors.InvalidArgumentError, match="exceed max_batch_size"):
        layer(config)(tf.zeros([100_000], tf.int64))


def test_keras2_savedmodel_as_the_notebook_saves_it(config, tables, tmp_path):
    """Keras 2 (tf_keras, TF_USE_LEGACY_KERAS=1), as the notebook runs: a model of LookupLayers saved with
    `model.save("x.savedmodel")` in one process and loaded with `tf.keras.models.load_model` in another."""
    path = str(tmp_path / "k2.savedmodel")
    common = f"""
import os, sys, numpy as np
os.environ["TF_USE_LEGACY_KERAS"] = "1"
sys.path.insert(0, {PYTHON_DIR!r})
import tensorflow as tf
import hierarchical_parameter_server as hps
assert "tf_keras" in tf.keras.__name__, tf.keras.__name__
ids = [tf.constant([[1, 2, 3, 4], [5, 6, 7, 8]], tf.int32), tf.constant([[100, 101, 102, 103], [150, 160, 170, 199]], tf.int32)]
"""
    save = common + f"""
inputs = [tf.keras.Input(shape=(4,), dtype=tf.int32) for _ in range(2)]
vectors = [tf.reshape(hps.LookupLayer(model_name={MODEL!r}, table_id=t, emb_vec_size={DIM}, emb_vec_dtype=tf.float32,
                                      ps_config_file={config!r}, global_batch_size=16)(inputs[t]), [-1, 4 * {DIM}])
           for t in range(2)]
model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, kernel_initializer="ones")(tf.concat(vectors, axis=1)))
np.save({str(tmp_path / 'k2-here.npy')!r}, model(ids).numpy())
model.save({path!r})
"""
    load = common + f"""
model = tf.keras.models.load_model({path!r})
np.save({str(tmp_path / 'k2-there.npy')!r}, model(ids).numpy())
"""
    for script in (save, load):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy())
        assert result.returncode == 0, result.stderr[-3000:]
    here, there = np.load(tmp_path / "k2-here.npy"), np.load(tmp_path / "k2-there.npy")
    np.testing.assert_array_equal(there, here)
    expected = sum(reference(tables, t, np.array(k)).reshape(2, -1).sum(axis=1)
                   for t, k in enumerate([[[1, 2, 3, 4], [5, 6, 7, 8]], [[100, 101, 102, 103], [150, 160, 170, 199]]]))
    np.testing.assert_allclose(here[:, 0], expected, rtol=1e-5)
