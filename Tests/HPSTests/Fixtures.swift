/// Configuration texts used by the tests.
enum Fixtures {
    /// The configuration of HugeCTR's `hps_table_fusion_demo` notebook as its
    /// `json.dumps(hps_config, indent=4)` writes it: NUM_TABLES = 8, EMB_VEC_SIZE = 128,
    /// MAX_BATCH_SIZE = 256, NUM_QUERY_KEY = 26, after `set_up_model_files()` filled the lists.
    static let notebook = """
{
    "supportlonglong": false,
    "fuse_embedding_table": true,
    "models": [
        {
            "model": "8_table",
            "sparse_files": [
                "embeddings/table0",
                "embeddings/table1",
                "embeddings/table2",
                "embeddings/table3",
                "embeddings/table4",
                "embeddings/table5",
                "embeddings/table6",
                "embeddings/table7"
            ],
            "num_of_worker_buffer_in_pool": 8,
            "embedding_table_names": [
                "table0",
                "table1",
                "table2",
                "table3",
                "table4",
                "table5",
                "table6",
                "table7"
            ],
            "embedding_vecsize_per_table": [
                128,
                128,
                128,
                128,
                128,
                128,
                128,
                128
            ],
            "maxnum_catfeature_query_per_table_per_sample": [
                26,
                26,
                26,
                26,
                26,
                26,
                26,
                26
            ],
            "default_value_for_each_table": [
                0.0
            ],
            "deployed_device_list": [
                0
            ],
            "max_batch_size": 256,
            "cache_refresh_percentage_per_iteration": 1.0,
            "hit_rate_threshold": 1.0,
            "gpucacheper": 1.0,
            "gpucache": true,
            "embedding_cache_type": "dynamic",
            "use_context_stream": true
        }
    ]
}
"""
}
