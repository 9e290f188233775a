"""`pip install ./python` as a user runs it, into a folder of its own: the
installed packages carry libhps_c.so and hps.h, and work from a fresh process
outside the checkout with nothing pointing back at it (no HPS_C_LIB, the
checkout not on the path): swift_hps's ctypes handle, hps_torch's LookupLayer
and the TensorFlow plugin's LookupLayer (its op compiled at first import
against the installed TensorFlow, from the installed header) each against the
model files' vectors.

Run after `swift build --product hps_c` (beside hps):
HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python/test_pip_install.py
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from in_process import PYTHON_DIR, reference  # noqa: E402
from test_http import DIM, MODEL, TABLES, hps_bin, model_dir, tables  # noqa: E402,F401 (fixtures)

USE_INSTALLED = r'''
import json, os, sys
import numpy as np
config, model, dim, tables, keys = json.loads(sys.argv[1])
from swift_hps import library
import swift_hps
assert os.path.dirname(library.c_library_path()) == os.path.dirname(swift_hps.__file__), library.c_library_path()
assert os.path.dirname(library.c_include_folder()) == os.path.dirname(swift_hps.__file__), library.c_include_folder()
handle = library.Handle(config, "cpu")
results = {}
for t in range(tables):
    k = np.array(keys, dtype=np.int64)
    out = np.full((len(k), dim), np.nan, dtype=np.float32)
    handle.lookup(model, t, k.ctypes.data, library.KEYS_INT64, len(k), out.ctypes.data, out.size)
    results[f"ctypes{t}"] = out.tolist()
import torch, hps_torch
with torch.no_grad():
    for t in range(tables):
        results[f"torch{t}"] = hps_torch.LookupLayer(config, model, t, dim)(torch.tensor(keys)).numpy().tolist()
import tensorflow as tf
import hierarchical_parameter_server as hps
for t in range(tables):
    layer = hps.LookupLayer(model_name=model, table_id=t, emb_vec_size=dim, emb_vec_dtype=tf.float32,
                            ps_config_file=config, global_batch_size=16)
    results[f"tf{t}"] = layer(tf.constant(keys, dtype=tf.int64)).numpy().tolist()
print("RESULTS " + json.dumps(results))
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    library = os.path.join(os.path.dirname(hps_bin()), "libhps_c.so")
    environment = dict(os.environ, HPS_C_LIB=library)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
                    "--target", str(target), PYTHON_DIR], check=True, env=environment, cwd=str(target))
    return str(target)


def test_the_install_holds_the_library_and_header(installed):
    package = os.path.join(installed, "swift_hps")
    assert os.path.getsize(os.path.join(package, "libhps_c.so")) > 0
    assert os.path.exists(os.path.join(package, "include", "hps.h"))
    assert os.path.exists(os.path.join(installed, "hierarchical_parameter_server", "lookup_ops.cc"))
    assert os.path.exists(os.path.join(installed, "hps_torch", "__init__.py"))


def test_the_installed_packages_look_up_from_a_fresh_process(installed, model_dir, tables, tmp_path):
    keys = [int(k) for k in list(tables[0].keys())[:5]] + [10**6]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HPS_")}
    environment.update(PYTHONPATH=installed, HPS_TF_OPS_DIR=str(tmp_path / "ops"), TF_CPP_MIN_LOG_LEVEL="2")
    arguments = json.dumps([os.path.join(model_dir, "hps.json"), MODEL, DIM, TABLES, keys])
    run = subprocess.run([sys.executable, "-c", USE_INSTALLED, arguments], capture_output=True, text=True,
                         env=environment, cwd=str(tmp_path), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULTS "))
    results = json.loads(line[len("RESULTS "):])
    for t in range(TABLES):
        want = reference(tables, t, np.array(keys))
        for path in ("ctypes", "torch", "tf"):
            np.testing.assert_array_equal(np.array(results[f"{path}{t}"], dtype=np.float32), want, err_msg=f"{path}, table {t}")
