"""The C interface (Sources/CHPS/include/hps.h, libhps_c.so) driven through ctypes:
lookups against the model files' rows, int32 and int64 keys, several tables in one
call, calls from several threads at once, and every failure as a status and one
sentence with nothing written to the output.

Run after `swift build --product hps_c` (beside hps):
HPS_BIN=.build/debug/hps python3 -m pytest -q Tests/python/test_c_api.py
"""

import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from in_process import at_once  # noqa: E402
from test_http import DIM, MODEL, TABLES, hps_bin, model_dir, tables  # noqa: E402,F401 (fixtures)

OK, INVALID_ARGUMENT, CONFIGURATION, NOT_FOUND, MODEL_FILES, BACKEND, DEVICE, KEYS, INTERNAL = range(9)
INT32, INT64 = 0, 1
HOST, DEVICE_MEMORY = 0, 1


class Part(ctypes.Structure):
    _fields_ = [("table", ctypes.c_int32), ("keys", ctypes.c_void_p), ("count", ctypes.c_uint64)]


class Description(ctypes.Structure):
    _fields_ = [("key_type", ctypes.c_int), ("table_count", ctypes.c_int32), ("fusion_group_count", ctypes.c_int32),
                ("device", ctypes.c_int32)]


class Request(ctypes.Structure):
    _fields_ = [("table", ctypes.c_int32), ("keys", ctypes.c_void_p), ("count", ctypes.c_uint64), ("output", ctypes.c_void_p)]


def library():
    path = os.environ.get("HPS_C_LIB", os.path.join(os.path.dirname(hps_bin()), "libhps_c.so"))
    if not os.path.exists(path):
        pytest.fail(f"libhps_c.so is not at {path}; build it with `swift build --product hps_c` (or set HPS_C_LIB)")
    lib = ctypes.CDLL(path)
    error = ctypes.POINTER(ctypes.c_char_p)
    lib.hps_api_version.restype = ctypes.c_int32
    lib.hps_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_close.argtypes = [ctypes.c_void_p]
    lib.hps_table_info.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32),
                                   ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_table_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32),
                                    ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_lookup.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64,
                               ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_lookup_tables.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Part), ctypes.c_uint64, ctypes.c_int,
                                      ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_int32,
                                      ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_lookup_device.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Part), ctypes.c_uint64, ctypes.c_int,
                                      ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int32, ctypes.c_void_p,
                                      ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_describe_model.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Description),
                                       ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_lookup_requests.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Request), ctypes.c_uint64,
                                        ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
    lib.hps_free_error.argtypes = [ctypes.c_void_p]
    del error
    return lib


class Failure(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def check(lib, call, *args):
    """Calls `call(*args, &error)`; raises Failure(status, sentence) on failure."""
    error = ctypes.c_void_p()
    status = call(*args, ctypes.byref(error))
    if status != OK:
        assert error.value, "a failed call set no error sentence"
        message = ctypes.string_at(error.value).decode()
        lib.hps_free_error(error)
        raise Failure(status, message)
    assert not error.value


@pytest.fixture(scope="module")
def lib():
    return library()


@pytest.fixture(scope="module")
def handle(lib, model_dir):
    handle = ctypes.c_void_p()
    check(lib, lib.hps_open, os.path.join(model_dir, "hps.json").encode(), b"cpu", ctypes.byref(handle))
    yield handle
    lib.hps_close(handle)


def lookup(lib, handle, table, keys, key_type=INT64, output_floats=None, model=MODEL):
    keys = np.ascontiguousarray(keys, dtype=np.int32 if key_type == INT32 else np.int64)
    output = np.full((len(keys), DIM), np.nan, dtype=np.float32)
    floats = output.size if output_floats is None else output_floats
    check(lib, lib.hps_lookup, handle, model.encode(), table, keys.ctypes.data, key_type, len(keys),
          output.ctypes.data, floats, HOST, 0)
    return output


def test_version(lib):
    assert lib.hps_api_version() == 2


def test_lookup_equals_the_files(lib, handle, tables):
    rng = np.random.default_rng(1)
    for table in range(TABLES):
        keys = rng.choice(list(tables[table].keys()), size=50)
        output = lookup(lib, handle, table, keys)
        np.testing.assert_array_equal(output, np.stack([tables[table][k] for k in keys]))


def test_int32_keys_equal_int64_keys(lib, handle, tables):
    keys = np.array(list(tables[1].keys())[:20], dtype=np.int64)
    np.testing.assert_array_equal(lookup(lib, handle, 1, keys.astype(np.int32), INT32), lookup(lib, handle, 1, keys))


def test_a_missing_key_gets_the_default_and_an_empty_call_is_fine(lib, handle):
    output = lookup(lib, handle, 0, [10**12])
    np.testing.assert_array_equal(output, np.zeros((1, DIM), dtype=np.float32))
    assert lookup(lib, handle, 0, []).shape == (0, DIM)


def test_the_command_line_agrees(lib, handle, model_dir):
    keys = [3, 5, 99]
    out = subprocess.run([hps_bin(), "lookup", "--config", os.path.join(model_dir, "hps.json"), "--model", MODEL,
                          "--table", "table0", "--keys", ",".join(map(str, keys)), "--json"],
                         check=True, capture_output=True, text=True).stdout
    np.testing.assert_array_equal(lookup(lib, handle, 0, keys), np.array(json.loads(out)["vectors"], dtype=np.float32))


def test_table_info(lib, handle):
    index, vec_size, count = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
    check(lib, lib.hps_table_info, handle, MODEL.encode(), b"table1", ctypes.byref(index), ctypes.byref(vec_size))
    assert (index.value, vec_size.value) == (1, DIM)
    check(lib, lib.hps_table_info, handle, MODEL.encode(), b"0", ctypes.byref(index), None)
    assert index.value == 0
    check(lib, lib.hps_table_count, handle, MODEL.encode(), ctypes.byref(count))
    assert count.value == TABLES


def test_several_tables_in_one_call(lib, handle, tables):
    keys = [np.array([1, 2, 3, 2], dtype=np.int64), np.array([150, 101], dtype=np.int64), np.array([7], dtype=np.int64)]
    which = [0, 1, 0]
    parts = (Part * 3)(*[Part(t, k.ctypes.data, len(k)) for t, k in zip(which, keys)])
    output = np.full((7, DIM), np.nan, dtype=np.float32)
    check(lib, lib.hps_lookup_tables, handle, MODEL.encode(), parts, 3, INT64, output.ctypes.data, output.size, HOST, 0)
    expected = np.concatenate([np.stack([tables[t][k] for k in ks]) for t, ks in zip(which, keys)])
    np.testing.assert_array_equal(output, expected)


def test_threads_at_once(lib, handle, tables):
    rng = np.random.default_rng(2)
    key_sets = [rng.choice(list(tables[i % TABLES].keys()), size=200) for i in range(8)]
    results = at_once([lambda i=i: lookup(lib, handle, i % TABLES, key_sets[i]) for i in range(8)], 50)
    for i, keys in enumerate(key_sets):
        np.testing.assert_array_equal(results[i], np.stack([tables[i % TABLES][k] for k in keys]))


@pytest.mark.parametrize("call, status, words", [
    (lambda lib, h: lookup(lib, h, 0, [1], model="nope"), NOT_FOUND, 'no model named "nope"'),
    (lambda lib, h: lookup(lib, h, 5, [1]), NOT_FOUND, "has no table 5"),
    (lambda lib, h: lookup(lib, h, 0, [1, 2], output_floats=DIM), INVALID_ARGUMENT, f"holds {DIM} floats but the keys' vectors take {2 * DIM}"),
    (lambda lib, h: lookup(lib, h, 0, [1] * 100_000), KEYS, "exceed max_batch_size"),
])
def test_failures_say_what_to_fix_and_write_nothing(lib, handle, call, status, words):
    with pytest.raises(Failure) as failure:
        call(lib, handle)
    assert failure.value.status == status
    assert words in str(failure.value), str(failure.value)
    assert str(failure.value).endswith(".")


def test_failed_lookup_writes_nothing(lib, handle):
    keys = np.array([1, 2], dtype=np.int64)
    output = np.full((2, DIM), -9.0, dtype=np.float32)
    with pytest.raises(Failure):
        check(lib, lib.hps_lookup, handle, b"nope", 0, keys.ctypes.data, INT64, 2, output.ctypes.data, output.size, HOST, 0)
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_lookup, handle, MODEL.encode(), 0, keys.ctypes.data, 7, 2, output.ctypes.data, output.size, HOST, 0)
    assert failure.value.status == INVALID_ARGUMENT and "key type" in str(failure.value)
    assert (output == -9.0).all()


def test_device_memory_without_a_gpu(lib, handle):
    output = np.zeros((1, DIM), dtype=np.float32)
    keys = np.array([1], dtype=np.int64)
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_lookup, handle, MODEL.encode(), 0, keys.ctypes.data, INT64, 1, output.ctypes.data, output.size,
              DEVICE_MEMORY, 0)
    assert failure.value.status == DEVICE and "not served from any GPU" in str(failure.value)


def test_describe_model(lib, handle, model_dir):
    description = Description(-1, -1, -1, -2)
    check(lib, lib.hps_describe_model, handle, MODEL.encode(), ctypes.byref(description))
    # The fixture's model: supportlonglong true, tables of one vec size (one group when fused), served from the CPU.
    with open(os.path.join(model_dir, "hps.json")) as f:
        fused = json.load(f).get("fuse_embedding_table", False)
    assert (description.key_type, description.table_count, description.fusion_group_count, description.device) == \
        (INT64, TABLES, 1 if fused else TABLES, -1)
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_describe_model, handle, b"nope", ctypes.byref(description))
    assert failure.value.status == NOT_FOUND and "nope" in str(failure.value)
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_describe_model, handle, MODEL.encode(), None)
    assert failure.value.status == INVALID_ARGUMENT and "description" in str(failure.value)


@pytest.mark.parametrize("key_type", [INT32, INT64])
def test_requests_with_outputs_apart(lib, handle, tables, key_type):
    rng = np.random.default_rng(5)
    keys = [np.ascontiguousarray(rng.choice(list(tables[t].keys()) + [10**6], size=7 + t),
                                 dtype=np.int32 if key_type == INT32 else np.int64) for t in range(TABLES)]
    keys.append(keys[0][:3].copy())  # a table twice
    tables_of = list(range(TABLES)) + [0]
    outputs = [np.full((len(k), DIM), np.nan, dtype=np.float32) for k in keys]
    requests = (Request * len(keys))(*[Request(t, k.ctypes.data, len(k), o.ctypes.data) for t, k, o in zip(tables_of, keys, outputs)])
    check(lib, lib.hps_lookup_requests, handle, MODEL.encode(), requests, len(keys), key_type)
    for t, k, o in zip(tables_of, keys, outputs):
        np.testing.assert_array_equal(o, lookup(lib, handle, t, k.astype(np.int64)))
    # One bad request: nothing written to any output.
    outputs = [np.full((len(k), DIM), -9.0, dtype=np.float32) for k in keys]
    requests = (Request * 2)(Request(0, keys[0].ctypes.data, len(keys[0]), outputs[0].ctypes.data),
                             Request(TABLES, keys[1].ctypes.data, len(keys[1]), outputs[1].ctypes.data))
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_lookup_requests, handle, MODEL.encode(), requests, 2, key_type)
    assert failure.value.status == NOT_FOUND
    assert (outputs[0] == -9.0).all() and (outputs[1] == -9.0).all()
    requests = (Request * 1)(Request(0, keys[0].ctypes.data, len(keys[0]), None))
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_lookup_requests, handle, MODEL.encode(), requests, 1, key_type)
    assert failure.value.status == INVALID_ARGUMENT and "output" in str(failure.value)


def test_device_keys_without_a_gpu(lib, handle):
    """hps_lookup_device on a configuration opened on the CPU: refused with one
    sentence before anything is read (the pointers here are not device memory,
    and are never touched); its argument checks as hps_lookup_tables'."""
    parts = (Part * 1)(Part(0, 4096, 4))
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_lookup_device, handle, MODEL.encode(), parts, 1, INT64, 8192, 4 * DIM, 0, None)
    assert failure.value.status == DEVICE and "not served from any GPU" in str(failure.value)
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_lookup_device, handle, b"nope", parts, 1, INT64, 8192, 4 * DIM, 0, None)
    assert failure.value.status == NOT_FOUND
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_lookup_device, None, MODEL.encode(), parts, 1, INT64, 8192, 4 * DIM, 0, None)
    assert failure.value.status == INVALID_ARGUMENT and "handle is NULL" in str(failure.value)


def test_open_failures(lib, model_dir, tmp_path):
    handle = ctypes.c_void_p()
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_open, str(tmp_path / "missing.json").encode(), b"cpu", ctypes.byref(handle))
    assert failure.value.status == CONFIGURATION and "missing.json" in str(failure.value)
    assert not handle.value
    (tmp_path / "bad.json").write_text('{"models": [')
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_open, str(tmp_path / "bad.json").encode(), b"cpu", ctypes.byref(handle))
    assert failure.value.status == CONFIGURATION
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_open, os.path.join(model_dir, "hps.json").encode(), b"tpu", ctypes.byref(handle))
    assert failure.value.status == INVALID_ARGUMENT and '"tpu"' in str(failure.value)
    # "gpu" on a machine without one (CI's): the driver's sentence.
    if not os.path.exists("/dev/nvidia0"):
        with pytest.raises(Failure) as failure:
            check(lib, lib.hps_open, os.path.join(model_dir, "hps.json").encode(), b"gpu", ctypes.byref(handle))
        assert failure.value.status == DEVICE, str(failure.value)
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_open, None, b"cpu", ctypes.byref(handle))
    assert failure.value.status == INVALID_ARGUMENT
    # A model folder that is not there.
    config = json.loads(open(os.path.join(model_dir, "hps.json")).read())
    config["models"][0]["sparse_files"] = [str(tmp_path / "gone"), str(tmp_path / "gone2")]
    (tmp_path / "gone.json").write_text(json.dumps(config))
    with pytest.raises(Failure) as failure:
        check(lib, lib.hps_open, str(tmp_path / "gone.json").encode(), b"cpu", ctypes.byref(handle))
    assert failure.value.status == MODEL_FILES and "gone" in str(failure.value), str(failure.value)


def test_auto_without_a_gpu_serves_from_the_cpu(lib, model_dir, tables):
    handle = ctypes.c_void_p()
    check(lib, lib.hps_open, os.path.join(model_dir, "hps.json").encode(), None, ctypes.byref(handle))
    try:
        np.testing.assert_array_equal(lookup(lib, handle, 0, [4]), tables[0][4][None, :])
    finally:
        lib.hps_close(handle)
    lib.hps_close(None)
