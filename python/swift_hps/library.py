"""swift-hps's C interface (hps.h, libhps_c.so) through ctypes: finding the
library and its header, and `Handle`, an opened configuration. ctypes
releases the GIL for each call, so lookups from several Python threads run
at once.

Where things are looked for, first found wins:
- libhps_c.so: $HPS_C_LIB; this package's folder (an installed copy); the
  swift-hps checkout this package sits in (`.build/release`, then `.build/debug`).
- hps.h: $HPS_C_INCLUDE; this package's `include` folder; the checkout's
  `Sources/CHPS/include`.
"""

import ctypes
import os
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))

OK, INVALID_ARGUMENT, CONFIGURATION, NOT_FOUND, MODEL_FILES, BACKEND, DEVICE, KEYS, INTERNAL = range(9)
KEYS_INT32, KEYS_INT64 = 0, 1
MEMORY_HOST, MEMORY_DEVICE = 0, 1


class NotFoundError(RuntimeError):
    """libhps_c.so or hps.h is not where it was looked for."""


class HPSError(RuntimeError):
    """A failed call of the C interface: its status and its one sentence."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def c_library_path():
    candidates = [os.environ.get("HPS_C_LIB"), os.path.join(HERE, "libhps_c.so"),
                  os.path.join(CHECKOUT, ".build", "release", "libhps_c.so"),
                  os.path.join(CHECKOUT, ".build", "debug", "libhps_c.so")]
    for path in candidates:
        if path and os.path.exists(path):
            return os.path.abspath(path)
    raise NotFoundError("libhps_c.so was not found: build it with `swift build -c release --product hps_c` in the "
                        f"swift-hps checkout ({CHECKOUT}), or set HPS_C_LIB to its path")


def c_include_folder():
    candidates = [os.environ.get("HPS_C_INCLUDE"), os.path.join(HERE, "include"),
                  os.path.join(CHECKOUT, "Sources", "CHPS", "include")]
    for folder in candidates:
        if folder and os.path.exists(os.path.join(folder, "hps.h")):
            return folder
    raise NotFoundError("hps.h was not found: set HPS_C_INCLUDE to the folder holding it (Sources/CHPS/include)")


_lib = None
_lib_lock = threading.Lock()


def c_library():
    """libhps_c.so, loaded once, with the argument types of hps.h."""
    global _lib
    with _lib_lock:
        if _lib is None:
            lib = ctypes.CDLL(c_library_path())
            error = ctypes.POINTER(ctypes.c_void_p)
            lib.hps_api_version.restype = ctypes.c_int32
            lib.hps_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), error]
            lib.hps_close.argtypes = [ctypes.c_void_p]
            lib.hps_table_info.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                           ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32), error]
            lib.hps_lookup.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int,
                                       ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_int32, error]
            lib.hps_lookup_tables.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int,
                                              ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_int32, error]
            if lib.hps_api_version() >= 2:
                lib.hps_lookup_device.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_uint64,
                                                  ctypes.c_int, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int32,
                                                  ctypes.c_void_p, error]
                lib.hps_describe_model.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ModelDescription), error]
                lib.hps_lookup_requests.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_uint64,
                                                    ctypes.c_int, error]
            lib.hps_free_error.argtypes = [ctypes.c_void_p]
            _lib = lib
        return _lib


class LookupPart(ctypes.Structure):
    """hps.h's `hps_lookup_part`: a table's index, and its keys by pointer and count."""
    _fields_ = [("table", ctypes.c_int32), ("keys", ctypes.c_void_p), ("count", ctypes.c_uint64)]


class ModelDescription(ctypes.Structure):
    """hps.h's `hps_model_description`."""
    _fields_ = [("key_type", ctypes.c_int), ("table_count", ctypes.c_int32), ("fusion_group_count", ctypes.c_int32),
                ("device", ctypes.c_int32)]


class LookupRequest(ctypes.Structure):
    """hps.h's `hps_lookup_request`: a table's index, its keys by pointer and count, and its output."""
    _fields_ = [("table", ctypes.c_int32), ("keys", ctypes.c_void_p), ("count", ctypes.c_uint64),
                ("output", ctypes.c_void_p)]


def _parts(parts):
    """A ctypes array of LookupPart from (table, keys pointer, count) triples."""
    array = (LookupPart * len(parts))()
    for i, (table, keys, count) in enumerate(parts):
        array[i].table, array[i].keys, array[i].count = table, keys, count
    return array


def _call(function, *arguments):
    """Calls `function(*arguments, &error)`; raises HPSError on failure."""
    error = ctypes.c_void_p()
    status = function(*arguments, ctypes.byref(error))
    if status != OK:
        message = ctypes.string_at(error.value).decode() if error.value else f"status {status}"
        c_library().hps_free_error(error)
        raise HPSError(status, message)


class Handle:
    """An opened HPS configuration (`hps_open`). `Handle.shared(path)` gives
    one per path and process, as HugeCTR's plugins initialize once."""

    _shared = {}
    _shared_lock = threading.Lock()

    def __init__(self, path, device=None):
        lib = c_library()
        handle = ctypes.c_void_p()
        _call(lib.hps_open, str(path).encode(), (device or os.environ.get("HPS_DEVICE") or "auto").encode(),
              ctypes.byref(handle))
        self._handle = handle
        self._lib = lib
        self._version = lib.hps_api_version()

    @classmethod
    def shared(cls, path):
        key = os.path.abspath(str(path))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(path)
            return cls._shared[key]

    def table_info(self, model, table):
        """(index, vec size) of table `table` (a name or an index) of `model`."""
        index, size = ctypes.c_int32(), ctypes.c_int32()
        _call(self._lib.hps_table_info, self._handle, model.encode(), str(table).encode(), ctypes.byref(index),
              ctypes.byref(size))
        return index.value, size.value

    def lookup(self, model, table, keys_pointer, key_type, count, output_pointer, output_floats,
               memory=MEMORY_HOST, device=0):
        """`hps_lookup` on raw pointers."""
        _call(self._lib.hps_lookup, self._handle, model.encode(), table, keys_pointer, key_type, count,
              output_pointer, output_floats, memory, device)

    def lookup_tables(self, model, parts, key_type, output_pointer, output_floats, memory=MEMORY_HOST, device=0):
        """`hps_lookup_tables`: parts are (table index, keys pointer, count) triples, their rows end to end."""
        _call(self._lib.hps_lookup_tables, self._handle, model.encode(), _parts(parts), len(parts), key_type,
              output_pointer, output_floats, memory, device)

    def _require(self, version, what):
        if self._version < version:
            raise NotFoundError(f"{what} needs version {version} of the C interface but {c_library_path()} is version "
                                f"{self._version}; rebuild it with `swift build -c release --product hps_c`")

    def describe(self, model):
        """`hps_describe_model`: a dict of key_type, table_count, fusion_group_count and device (-1: the CPU)."""
        self._require(2, "hps_describe_model")
        description = ModelDescription()
        _call(self._lib.hps_describe_model, self._handle, model.encode(), ctypes.byref(description))
        return {name: getattr(description, name) for name, _ in ModelDescription._fields_}

    def key_type(self, model):
        """KEYS_INT64 or KEYS_INT32: the key type of `model` (`supportlonglong`)."""
        return self.describe(model)["key_type"]

    def lookup_requests(self, model, requests, key_type):
        """`hps_lookup_requests`: requests are (table index, keys pointer, count, output pointer) in host memory."""
        self._require(2, "hps_lookup_requests")
        array = (LookupRequest * len(requests))()
        for i, (table, keys, count, output) in enumerate(requests):
            array[i].table, array[i].keys, array[i].count, array[i].output = table, keys, count, output
        _call(self._lib.hps_lookup_requests, self._handle, model.encode(), array, len(requests), key_type)

    def lookup_device(self, model, parts, key_type, output_pointer, output_floats, device, stream):
        """`hps_lookup_device`: keys and output in the memory of GPU `device`,
        after the work queued on `stream` (a CUstream handle, 0 for the legacy default)."""
        self._require(2, "hps_lookup_device")
        _call(self._lib.hps_lookup_device, self._handle, model.encode(), _parts(parts), len(parts), key_type,
              output_pointer, output_floats, device, stream)

    def close(self):
        if self._handle:
            self._lib.hps_close(self._handle)
            self._handle = None
