import Glibc
import HPS
import HPSKafka

/// `hps bench --updates`: online updates applied into the in-process hash map
/// on one core, as a Kafka consumer applies them (messages decoded, then
/// written through `HierarchicalParameterServer.update`), against inserting
/// the same rows straight into the table (the plain approach) and memcpy of
/// the same bytes, in alternating rounds.
enum UpdateBenchmark {
    /// Prints one row per measurement.
    static func run(tableKeys: Int, updates: Int, keysPerMessage: Int, runs: Int, markdown: Bool) throws {
        let vecSize = 128
        let directory = try TemporaryDirectory(prefix: "hps-bench-updates")
        defer { directory.remove() }
        var random = SplitMix64(seed: 77)
        let keys = (0..<tableKeys).map { Int64($0) * 7 + 3 }
        let rows = (0..<(tableKeys * vecSize)).map { _ in random.nextFloat(-1, 1) }
        _ = try keys.withUnsafeBufferPointer { k in
            try rows.withUnsafeBufferPointer { v in
                try SparseModelFolder.write(path: directory.path + "/t0", table: "t0", keys: k, vectors: v, vecSize: vecSize)
            }
        }
        let json = """
        {"supportlonglong": true, "volatile_db": {"type": "hash_map", "num_partitions": 1},
         "models": [{"model": "m", "sparse_files": ["\(directory.path)/t0"], "embedding_table_names": ["t0"],
                     "embedding_vecsize_per_table": [\(vecSize)], "maxnum_catfeature_query_per_table_per_sample": [1],
                     "default_value_for_each_table": [0], "deployed_device_list": [0], "max_batch_size": 1, "gpucache": false}]}
        """
        let path = directory.path + "/hps.json"
        let file = fopen(path, "w")!
        fputs(json, file)
        fclose(file)
        let server = try HierarchicalParameterServer(configuration: try HPSConfiguration.load(path: path), parallelism: 1)
        let applier = UpdateApplier(server: server)
        // Updates of keys the table holds, in random order, as messages of keysPerMessage pairs.
        let updateKeys = (0..<updates).map { _ in keys[Int(random.next() % UInt64(tableKeys))] }
        let updateRows = (0..<(updates * vecSize)).map { _ in random.nextFloat(-1, 1) }
        var messages: [ReceivedUpdate] = []
        for start in stride(from: 0, to: updates, by: keysPerMessage) {
            let end = min(start + keysPerMessage, updates)
            let message = UpdateMessage(keys: Array(updateKeys[start..<end]),
                                        vectors: Array(updateRows[(start * vecSize)..<(end * vecSize)]), vecSize: vecSize)
            messages.append(ReceivedUpdate(topic: "hps_et.m.t0", partition: 0, offset: Int64(messages.count), payload: message.encoded()))
        }
        let bytes = updates * vecSize * 4
        let source = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        defer { source.deallocate(); target.deallocate() }
        memset(source, 1, bytes)
        memset(target, 2, bytes)
        var failure: (any Error)?
        let medians = LookupBenchmark.interleavedMedians(runs: runs, [
            { memcpy(target, source, bytes) },
            {
                do { try applier.apply(messages) } catch { failure = error }
            },
            {
                updateKeys.withUnsafeBufferPointer { k in
                    updateRows.withUnsafeBufferPointer { v in
                        do { _ = try server.update(model: "m", table: 0, keys: k, vectors: v) } catch { failure = error }
                    }
                }
            },
        ])
        if let failure { throw failure }
        let names = [
            "memcpy of the updates' \(bytes) bytes",
            "\(updates) updates as \(messages.count) Kafka messages of \(keysPerMessage) keys: decoded and applied",
            "the same rows inserted straight into the table (one update call)",
        ]
        if markdown {
            print("| measurement (one core, vec \(vecSize), table of \(tableKeys) keys) | median | × memcpy | key updates/s |")
            print("| --- | --- | --- | --- |")
        }
        for (name, seconds) in zip(names, medians) {
            let rate = name.hasPrefix("memcpy") ? "-" : "\(format(Double(updates) / seconds / 1e6, 2)) M"
            if markdown {
                print("| \(name) | \(format(seconds * 1e3, 2)) ms | \(format(seconds / medians[0], 2)) | \(rate) |")
            } else {
                print("  \(name): \(format(seconds * 1e3, 2)) ms, \(format(seconds / medians[0], 2))× memcpy, \(rate) key updates/s")
            }
        }
    }
}
