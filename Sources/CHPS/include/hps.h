/*
 * hps.h: the C interface of swift-hps (library libhps_c.so), version 2
 * (version 1 and `hps_lookup_device`, `hps_describe_model`, `hps_lookup_requests`).
 *
 * Opens a HugeCTR HPS configuration (its tiers built and its models loaded
 * as `hps serve` does) and looks up embedding vectors in process, through the
 * same lookup sessions as the server and the command line. Python's
 * `hierarchical_parameter_server` and `hps_torch` packages are built on it.
 *
 *     hps_handle *hps = NULL;
 *     char *error = NULL;
 *     if (hps_open("hps.json", "auto", &hps, &error) != HPS_OK) {
 *         fprintf(stderr, "%s\n", error);
 *         hps_free_error(error);
 *         return 1;
 *     }
 *     int64_t keys[3] = {1, 2, 3};
 *     float vectors[3 * 16];   // vec size 16
 *     hps_status status = hps_lookup(hps, "my_model", 0, keys, HPS_KEYS_INT64, 3,
 *                                    vectors, 3 * 16, HPS_MEMORY_HOST, &error);
 *     ...
 *     hps_close(hps);
 *
 * Errors: every call that can fail returns an `hps_status` and, when `error`
 * is not NULL, sets `*error` to one sentence saying what to fix (the same
 * sentence the command line prints), to be freed with `hps_free_error`; on
 * success `*error` is set to NULL. A failed call writes nothing to its output.
 *
 * Thread safety: every function may be called from any thread, and lookups
 * on one handle may run concurrently; `hps_close` must be the handle's last
 * call. No Swift type crosses this interface.
 */
#ifndef HPS_H
#define HPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The interface version this header describes; `hps_api_version` returns the library's. */
#define HPS_C_API_VERSION 2

/* An opened configuration: its tiers, models and lookup sessions. */
typedef struct hps_handle hps_handle;

typedef enum hps_status {
    HPS_OK = 0,
    /* A NULL pointer, an unknown key type or memory kind, an output of the wrong size. */
    HPS_INVALID_ARGUMENT = 1,
    /* The configuration file cannot be read or is not a valid HPS configuration. */
    HPS_CONFIGURATION = 2,
    /* No such model or table. */
    HPS_NOT_FOUND = 3,
    /* A model's sparse files cannot be read or disagree with the configuration. */
    HPS_MODEL_FILES = 4,
    /* A store tier failed (Redis Cluster, RocksDB, the mapped files) or is not in this build. */
    HPS_BACKEND = 5,
    /* The GPU: none can be used, or a CUDA call failed. */
    HPS_DEVICE = 6,
    /* Keys the model cannot take: more than its limit per table, or out of the 32-bit range. */
    HPS_KEYS = 7,
    /* Anything else. */
    HPS_INTERNAL = 8
} hps_status;

/* How the keys are stored. */
typedef enum hps_key_type {
    HPS_KEYS_INT32 = 0,
    HPS_KEYS_INT64 = 1
} hps_key_type;

/* Where the output lies. */
typedef enum hps_memory {
    /* Host memory. */
    HPS_MEMORY_HOST = 0,
    /* Memory of the GPU given by `device`, in the CUDA context current on the calling thread. */
    HPS_MEMORY_DEVICE = 1
} hps_memory;

/* One table's keys in a lookup of several tables (`hps_lookup_tables`). */
typedef struct hps_lookup_part {
    /* The table's index in its model (the order of `embedding_table_names`). */
    int32_t table;
    /* `count` keys of the call's key type, in host memory (in device memory for `hps_lookup_device`). */
    const void *keys;
    uint64_t count;
} hps_lookup_part;

/* The interface version of the library loaded (HPS_C_API_VERSION of the header it was built with). */
int32_t hps_api_version(void);

/*
 * Opens the configuration at `config_path`: builds its tiers and loads every
 * model into them, as `hps serve` does, and starts their background work
 * (cache refreshes, catching up a Redis node, watching mapped files).
 * `device`: "cpu" (the CPU sessions), "gpu" (the GPU tables of every model
 * with `gpucache: true`; HPS_DEVICE when no GPU can be used) or "auto" (the
 * GPU when one can be used, else the CPU); NULL means "auto".
 * On success `*handle` is the opened configuration.
 */
hps_status hps_open(const char *config_path, const char *device, hps_handle **handle, char **error);

/* Stops the handle's background work and frees it. NULL is ignored. */
void hps_close(hps_handle *handle);

/*
 * The table `table` (a name, or an index as decimal digits) of model `model`:
 * its index in the model and its vector size (floats per key). Either output
 * may be NULL.
 */
hps_status hps_table_info(hps_handle *handle, const char *model, const char *table, int32_t *index, int32_t *vec_size,
                          char **error);

/* The number of tables of model `model`. */
hps_status hps_table_count(hps_handle *handle, const char *model, int32_t *count, char **error);

/*
 * Looks up `count` keys of table `table` of model `model`.
 * keys:   (count) keys of `key_type`, in host memory.
 * output: (count × vec size) floats, key i's vector at row i; `output_floats`
 *         must be exactly count × vec size. In device memory (`memory`
 *         HPS_MEMORY_DEVICE, on GPU `device`), the model must be served from
 *         that GPU (opened with "gpu" or "auto", `gpucache: true`, the device
 *         in its `deployed_device_list`); the vectors are written there by the
 *         GPU tables without a copy through the host, and are complete when
 *         the call returns.
 * A key found in no tier gets the table's `default_value_for_each_table`.
 */
hps_status hps_lookup(hps_handle *handle, const char *model, int32_t table, const void *keys, hps_key_type key_type,
                      uint64_t count, float *output, uint64_t output_floats, hps_memory memory, int32_t device,
                      char **error);

/*
 * Looks up the keys of several tables of one model in one call: one lookup
 * per fusion group (`fuse_embedding_table: true` fuses the tables of one
 * vector size). The parts' rows go to `output` end to end in the order
 * given; `output_floats` must be their sum of count × vec size. In device
 * memory, the parts of one fusion group must follow one another.
 */
hps_status hps_lookup_tables(hps_handle *handle, const char *model, const hps_lookup_part *parts, uint64_t part_count,
                             hps_key_type key_type, float *output, uint64_t output_floats, hps_memory memory,
                             int32_t device, char **error);

/*
 * Looks up keys that lie in GPU memory into GPU memory (version 2): the keys
 * never visit the host, and the model's GPU tables write the vectors.
 * parts:  as for `hps_lookup_tables`, but each part's `keys` is in the memory
 *         of GPU `device` (the CUDA context is the device's primary one, as
 *         PyTorch's). `key_type` must be the model's (`hps_describe_model`:
 *         HPS_KEYS_INT64 for `supportlonglong: true`, else HPS_KEYS_INT32,
 *         read as unsigned); convert on the device first. Parts whose keys
 *         follow one another in memory are read in place; others are gathered
 *         on the device.
 * output: (output_floats) floats in the memory of GPU `device`, the parts'
 *         rows end to end; the parts of one fusion group must follow one another.
 * stream: a CUstream of that context (NULL: the legacy default stream). The
 *         lookup's GPU work starts after the work queued on it before the
 *         call, which may still be writing the keys, and the work queued on
 *         it after the call starts once the vectors are written: they are in
 *         stream order, as a kernel launched on `stream` would leave them
 *         (synchronize the stream before reading them on the host). The call
 *         may return before the GPU has written them: it does when the model's
 *         tables are GPU static tables and no update has given the tiers
 *         below a key they lack (no key can then need the host); otherwise it
 *         returns once they are written.
 * The model must be served from GPU `device` (opened with "gpu" or "auto",
 * `gpucache: true`, the device in its `deployed_device_list`). Keys no GPU
 * table holds are answered by the tiers below, as in `hps_lookup`: only
 * those keys are copied to the host.
 */
hps_status hps_lookup_device(hps_handle *handle, const char *model, const hps_lookup_part *parts, uint64_t part_count,
                             hps_key_type key_type, float *output, uint64_t output_floats, int32_t device, void *stream,
                             char **error);

/* What a caller needs to know of a model (version 2). */
typedef struct hps_model_description {
    /* HPS_KEYS_INT64 for `supportlonglong: true`, else HPS_KEYS_INT32 (the key type `hps_lookup_device` takes). */
    hps_key_type key_type;
    /* Its tables (`embedding_table_names`). */
    int32_t table_count;
    /* Its fusion groups: `table_count` unless `fuse_embedding_table: true` fuses tables of one vector size. */
    int32_t fusion_group_count;
    /* The GPU its lookups into host memory run on, or -1 for the CPU. */
    int32_t device;
} hps_model_description;

/* Describes model `model` (version 2). */
hps_status hps_describe_model(hps_handle *handle, const char *model, hps_model_description *description, char **error);

/* One table's keys and where their vectors go, in a lookup whose tables' outputs lie apart (`hps_lookup_requests`). */
typedef struct hps_lookup_request {
    /* The table's index in its model. */
    int32_t table;
    /* `count` keys of the call's key type, in host memory. */
    const void *keys;
    uint64_t count;
    /* count × vec size floats in host memory, key i's vector at row i. */
    float *output;
} hps_lookup_request;

/*
 * Looks up several tables of one model in one call, each table's rows into
 * its own output in host memory (version 2): one lookup per fusion group, as
 * `hps_lookup_tables`, for callers whose outputs are separate buffers (the
 * TensorFlow plugin combines the lookups of a model's layers this way). All
 * requests are checked before any is looked up; a failed call writes no output.
 */
hps_status hps_lookup_requests(hps_handle *handle, const char *model, const hps_lookup_request *requests,
                               uint64_t request_count, hps_key_type key_type, char **error);

/* Frees an error sentence. NULL is ignored. */
void hps_free_error(char *error);

#ifdef __cplusplus
}
#endif

#endif
