"""swift-hps's TensorFlow plugin, with the names and arguments of HugeCTR's
`hierarchical_parameter_server`: `Init`, `LookupLayer` and `SparseLookupLayer`.

The lookups run in process, in swift-hps's library (libhps_c.so), through a
TensorFlow custom op (`HpsLookup`), so a Keras model built of these layers
saves as a SavedModel and loads back in any process that imported this package.

    import hierarchical_parameter_server as hps
    hps.Init(global_batch_size=1024, ps_config_file="8_table.json")   # optional
    layer = hps.LookupLayer(model_name="8_table", table_id=0, emb_vec_size=128,
                            emb_vec_dtype=tf.float32, ps_config_file="8_table.json")
    vectors = layer(ids)                       # ids.shape + [128], float32

The configuration is opened once per process, by `Init` or by the first lookup
of a layer naming it; `HPS_DEVICE` (cpu, gpu or auto, the default) chooses
where its models are served from.
"""

import ctypes

import tensorflow as tf

from . import build

__all__ = ["Init", "LookupLayer", "SparseLookupLayer"]

_OP_LIBRARY = build.op_library()
_ops = tf.load_op_library(_OP_LIBRARY)
_native = ctypes.CDLL(_OP_LIBRARY)
_native.hps_tf_init.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
_native.hps_tf_init.restype = ctypes.c_int
_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]
print("[INFO] hierarchical_parameter_server is imported")


def Init(global_batch_size=1, ps_config_file=""):  # noqa: N802 (HugeCTR's name)
    """Opens the HPS configuration `ps_config_file` (its tiers built, its
    models loaded) for the lookups of this process; a later `Init` or layer
    naming the same file uses it. Returns "OK"; raises RuntimeError with one
    sentence when the configuration cannot be opened."""
    if not isinstance(global_batch_size, int) or global_batch_size < 1:
        raise ValueError(f"global_batch_size must be a positive integer, not {global_batch_size!r}")
    message = ctypes.c_void_p()
    if _native.hps_tf_init(str(ps_config_file).encode(), ctypes.byref(message)) != 0:
        text = ctypes.string_at(message.value).decode()
        _libc.free(message)
        raise RuntimeError(text)
    return "OK"


def _check_ids(ids, layer):
    if ids.dtype not in (tf.int32, tf.int64):
        raise TypeError(f"{layer} takes int32 or int64 ids, not {ids.dtype.name}")


def _clip(vectors, max_norm):
    return vectors if max_norm is None else tf.clip_by_norm(vectors, max_norm, axes=[-1])


class LookupLayer(tf.keras.layers.Layer):
    """The vectors of `ids` (int32 or int64, any shape) in table `table_id` of
    model `model_name`: float32 of shape `ids.shape + [emb_vec_size]`; a key
    found in no tier gets the table's default value."""

    def __init__(self, model_name, table_id, emb_vec_size, emb_vec_dtype=tf.float32, ps_config_file="",
                 global_batch_size=1, **kwargs):
        super().__init__(**kwargs)
        if tf.as_dtype(emb_vec_dtype) != tf.float32:
            raise ValueError(f"emb_vec_dtype must be float32, not {tf.as_dtype(emb_vec_dtype).name}")
        self.model_name = model_name
        self.table_id = int(table_id)
        self.emb_vec_size = int(emb_vec_size)
        self.emb_vec_dtype = tf.float32
        self.ps_config_file = ps_config_file
        self.global_batch_size = int(global_batch_size)

    def _lookup(self, ids):
        return _ops.hps_lookup(ids=ids, model_name=self.model_name, table_id=self.table_id,
                               emb_vec_size=self.emb_vec_size, ps_config_file=self.ps_config_file,
                               global_batch_size=self.global_batch_size)

    def call(self, ids, max_norm=None):
        ids = tf.convert_to_tensor(ids)
        _check_ids(ids, "LookupLayer")
        return _clip(self._lookup(ids), max_norm)

    def get_config(self):
        config = super().get_config()
        config.update({"model_name": self.model_name, "table_id": self.table_id, "emb_vec_size": self.emb_vec_size,
                       "emb_vec_dtype": "float32", "ps_config_file": self.ps_config_file,
                       "global_batch_size": self.global_batch_size})
        return config


class SparseLookupLayer(LookupLayer):
    """Pools the vectors of each row of a `tf.SparseTensor` of ids (int32 or
    int64, rank 2, rows in canonical order) with `combiner` `mean` (the
    default), `sum` or `sqrtn`, optionally weighted by `sp_weights`; returns
    float32 of shape [rows, emb_vec_size]. A row with no ids gets zeros."""

    def call(self, sp_ids, sp_weights=None, name=None, combiner=None, max_norm=None):  # noqa: ARG002 (HugeCTR's arguments)
        combiner = combiner or "mean"
        if combiner not in ("mean", "sum", "sqrtn"):
            raise ValueError(f"combiner must be mean, sum or sqrtn, not {combiner!r}")
        if not isinstance(sp_ids, tf.SparseTensor):
            raise TypeError(f"SparseLookupLayer takes a tf.SparseTensor of ids, not {type(sp_ids).__name__}")
        _check_ids(sp_ids.values, "SparseLookupLayer")
        rows = sp_ids.indices[:, 0]
        count = sp_ids.dense_shape[0]
        vectors = _clip(self._lookup(sp_ids.values), max_norm)
        weights = tf.ones_like(sp_ids.values, dtype=tf.float32) if sp_weights is None else tf.cast(sp_weights.values, tf.float32)
        pooled = tf.math.unsorted_segment_sum(vectors * weights[:, None], rows, count)
        if combiner == "mean":
            pooled = tf.math.divide_no_nan(pooled, tf.math.unsorted_segment_sum(weights, rows, count)[:, None])
        elif combiner == "sqrtn":
            pooled = tf.math.divide_no_nan(pooled, tf.sqrt(tf.math.unsorted_segment_sum(weights * weights, rows, count))[:, None])
        return pooled
