"""swift-hps's PyTorch module (python/hps_torch) on the CPU: LookupLayer against
the model files' vectors and `hps lookup`, int32 and int64 keys of ranks 1 to 3,
inside torch.no_grad(), from several threads at once, and bad input as a Python
exception with one sentence and no output.

Run after `swift build --product hps_c` (beside hps), with torch installed:
HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python/test_torch_module.py
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from in_process import at_once, config, reference, use_checkout_packages  # noqa: E402,F401 (fixtures)
from test_http import DIM, MODEL, TABLES, hps_bin, model_dir, tables  # noqa: E402,F401 (fixtures)

use_checkout_packages()
import torch  # noqa: E402

import hps_torch  # noqa: E402
from swift_hps.library import HPSError  # noqa: E402


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 2, 3)])
def test_lookup_equals_the_files(config, tables, dtype, shape):
    rng = np.random.default_rng(sum(shape))
    with torch.no_grad():
        for table in range(TABLES):
            layer = hps_torch.LookupLayer(config, MODEL, table, DIM)
            keys = rng.choice(list(tables[table].keys()) + [10**6], size=shape)
            out = layer(torch.tensor(keys, dtype=dtype))
            assert out.dtype == torch.float32 and tuple(out.shape) == shape + (DIM,) and out.device.type == "cpu"
            np.testing.assert_array_equal(out.numpy(), reference(tables, table, keys))


def test_the_command_line_agrees(config):
    keys = [2, 40, 98]
    out = subprocess.run([hps_bin(), "lookup", "--config", config, "--model", MODEL, "--table", "0",
                          "--keys", ",".join(map(str, keys)), "--json"], check=True, capture_output=True, text=True).stdout
    layer = hps_torch.LookupLayer(config, MODEL, 0, DIM)
    np.testing.assert_array_equal(layer(torch.tensor(keys)).numpy(), np.array(json.loads(out)["vectors"], dtype=np.float32))


def test_inside_a_module(config, tables):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lookups = torch.nn.ModuleList([hps_torch.LookupLayer(config, MODEL, t, DIM) for t in range(TABLES)])

        def forward(self, keys):
            return torch.cat([lookup(k).reshape(k.shape[0], -1) for lookup, k in zip(self.lookups, keys)], dim=1).sum(dim=1)
    keys = [torch.tensor([[1, 2], [3, 4]]), torch.tensor([[100, 101], [102, 199]])]
    with torch.no_grad():
        out = Model()(keys)
    expected = sum(reference(tables, t, keys[t].numpy()).reshape(2, -1).sum(axis=1) for t in range(TABLES))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5)
    assert "model_name='2_table'" in repr(Model())


def test_threads_at_once(config, tables):
    layers = [hps_torch.LookupLayer(config, MODEL, t % TABLES, DIM) for t in range(6)]
    rng = np.random.default_rng(4)
    keys = [rng.choice(list(tables[t % TABLES].keys()), size=(64, 3)) for t in range(6)]
    results = at_once([lambda i=i: layers[i](torch.tensor(keys[i])).numpy() for i in range(6)], 30)
    for i in range(6):
        np.testing.assert_array_equal(results[i], reference(tables, i % TABLES, keys[i]))


def test_bad_input_raises_one_sentence(config, tmp_path):
    layer = hps_torch.LookupLayer(config, MODEL, 0, DIM)
    with pytest.raises(TypeError, match="int32 or int64 keys, not torch.float32"):
        layer(torch.tensor([1.0]))
    with pytest.raises(HPSError, match='no model named "nope"'):
        hps_torch.LookupLayer(config, "nope", 0, DIM)
    with pytest.raises(HPSError, match="has no table"):
        hps_torch.LookupLayer(config, MODEL, 9, DIM)
    with pytest.raises(ValueError, match=f"emb_vec_size is 4 but table 0 of model {MODEL}"):
        hps_torch.LookupLayer(config, MODEL, 0, 4)
    with pytest.raises(HPSError, match="cannot read the configuration file .*missing.json"):
        hps_torch.LookupLayer(str(tmp_path / "missing.json"), MODEL, 0, DIM)
    with pytest.raises(HPSError, match="exceed max_batch_size"):
        layer(torch.zeros(100_000, dtype=torch.int64))
