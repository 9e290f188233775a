"""What the tests of the in-process interfaces share (test_c_api, test_tf_plugin,
test_torch_module): the checkout's Python packages on the path with the library
built beside hps, the expected vectors, and lookups from several threads at once."""

import os
import sys
import threading

import numpy as np
import pytest

from test_http import DIM, hps_bin

PYTHON_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "python")


def use_checkout_packages():
    """The checkout's python/ first on the path, libhps_c.so from beside hps, models served from the CPU."""
    os.environ.setdefault("HPS_C_LIB", os.path.join(os.path.dirname(hps_bin()), "libhps_c.so"))
    os.environ.setdefault("HPS_DEVICE", "cpu")
    if PYTHON_DIR not in sys.path:
        sys.path.insert(0, PYTHON_DIR)


@pytest.fixture(scope="module")
def config(model_dir):
    return os.path.join(model_dir, "hps.json")


def reference(tables, table, keys):
    """The files' vectors of `keys` (zeros, the default, for a key not in the table), shaped keys.shape + [DIM]."""
    keys = np.asarray(keys)
    return np.stack([tables[table].get(int(k), np.zeros(DIM, np.float32)) for k in keys.reshape(-1)]).reshape(keys.shape + (DIM,))


def at_once(calls, repeats):
    """Runs each of `calls` `repeats` times, each on its own thread, all at once;
    returns each call's last result. Fails with the first error any raised."""
    results, errors = {}, []

    def work(i):
        try:
            for _ in range(repeats):
                results[i] = calls[i]()
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [results[i] for i in range(len(calls))]
