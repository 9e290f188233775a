#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
package import HPS
import NIOCore
import Synchronization

/// One table of the `redis_cluster` store, in HugeCTR's layout.
///
/// Layout, per table tag and partition `p` (`num_partitions` of them):
/// - `hps_et{<tag>/p<p>}v`: a hash from field to vector, the vector's
///   `vecSize` float32 values as raw little-endian bytes (HugeCTR's layout),
///   or for a `vector_storage` other than fp32 the row as `VectorCodec`
///   stores it;
/// - `hps_et{<tag>/p<p>}t`: a hash from the same field to its access record as
///   decimal text: the time in microseconds since the epoch of the last insert
///   (and, under `evict_oldest` with a finite margin, of the last lookup), or
///   under `evict_least_used` with a finite margin a use count (0 on insert,
///   +1 per lookup hit).
/// The `{…}` hash tag keeps both hashes of a partition on one node.
///
/// A key's partition is `KeyHash.partition(KeyHash.hash(key, member), num_partitions)`
/// (the hash of the in-process store). The field is the key's 8 bytes,
/// little-endian (as HugeCTR stores it); in a fused table of several members
/// it is followed by the member index as 2 bytes little-endian, so equal keys
/// of two members are two fields.
///
/// Overflow: after an insert, each partition it touched whose value hash holds
/// more than `overflow_margin` fields is pruned to
/// `overflow_resolution_target × overflow_margin`: `evict_random` drops fields
/// chosen by `HRANDFIELD`; `evict_oldest` and `evict_least_used` read the
/// partition's access hash and drop the fields with the smallest records.
/// Lookups touch the access hash only when a margin is set and the policy is
/// not `evict_random` (one more pipelined round trip per lookup).
///
/// Failures: a lookup never throws. The keys of a request that got no usable
/// reply (node down, timeout, a node skipped during its back-off, an error
/// reply such as `CLUSTERDOWN`) are reported as misses, with the defaults
/// written, and the store's `errorCount` grows; the next call tries again.
/// An insert that cannot be written throws `StoreError.backend`, naming the node's
/// failure; when the only failures are nodes that cannot be reached (down,
/// timed out, backing off, no node for the slot), the other nodes' shares
/// are stored and it throws `StoreError.partlyUnavailable` with the count
/// left out, which a model's load survives (`StoreCatchUp`).
///
/// Thread safety: lookups, inserts and erases may run concurrently.
package final class RedisClusterTable: EmbeddingStoreTable, @unchecked Sendable {
    /// The table's tag.
    package let tag: String
    /// Floats per vector.
    package let vecSize: Int
    /// How rows are stored (`vector_storage`).
    package let storage: VectorStorage
    /// The number of member tables.
    package let memberCount: Int
    /// Partitions of the table (`num_partitions`).
    package let partitionCount: Int
    /// The value hash of each partition.
    package let valueKeys: [String]
    /// The access hash of each partition.
    package let timeKeys: [String]
    /// The hash slot of each partition.
    package let slots: [Int]
    private let fieldWidth: Int
    private let maxBatch: Int
    private let margin: Int
    private let policy: OverflowPolicy
    private let resolutionTarget: Double
    private let cluster: RedisCluster
    private let errors: ErrorCounter

    init(tag: String, vecSize: Int, storage: VectorStorage = .fp32, members: Int, store: RedisClusterStore) {
        self.tag = tag
        self.vecSize = vecSize
        self.storage = storage
        self.memberCount = members
        cluster = store.cluster
        errors = store.errors
        let configuration = store.configuration
        partitionCount = max(1, configuration.numPartitions)
        valueKeys = (0..<partitionCount).map { "hps_et{\(tag)/p\($0)}v" }
        timeKeys = (0..<partitionCount).map { "hps_et{\(tag)/p\($0)}t" }
        slots = valueKeys.map(HashSlot.slot)
        fieldWidth = members > 1 ? 10 : 8
        maxBatch = max(1, configuration.maxBatchSize)
        margin = configuration.overflowMargin >= UInt64(Int.max) ? .max : Int(configuration.overflowMargin)
        policy = configuration.overflowPolicy
        resolutionTarget = configuration.overflowResolutionTarget
    }

    private var tracksUse: Bool { margin < .max && policy != .evictRandom }

    func partition(_ key: Int64, member: Int) -> Int {
        partitionCount == 1 ? 0 : KeyHash.partition(KeyHash.hash(key, member: member), count: partitionCount)
    }

    /// Appends the field of (key, member) to a command.
    private func appendField(_ command: inout RedisCommand, key: Int64, member: Int) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 10) { bytes in
            let raw = UnsafeMutableRawBufferPointer(bytes)
            raw.storeBytes(of: UInt64(bitPattern: key).littleEndian, as: UInt64.self)
            if fieldWidth == 10 {
                raw.storeBytes(of: UInt16(truncatingIfNeeded: member).littleEndian, toByteOffset: 8, as: UInt16.self)
            }
            command.append(UnsafeRawBufferPointer(rebasing: raw[0..<fieldWidth]))
        }
    }

    /// The indices 0..<n sorted by partition (stable), and each partition's start.
    private func groupByPartition(_ n: Int, partitionOf: (Int) -> Int) -> (order: [Int32], starts: [Int]) {
        PartitionGrouping.group(count: n, partitions: partitionCount, partitionOf: partitionOf)
    }

    /// The chunks of at most `max_batch_size` keys of each partition: (partition, range in `order`).
    private func chunks(_ starts: [Int]) -> [(partition: Int, range: Range<Int>)] {
        var result: [(Int, Range<Int>)] = []
        for p in 0..<partitionCount {
            var s = starts[p]
            while s < starts[p + 1] {
                let e = min(starts[p + 1], s + maxBatch)
                result.append((p, s..<e))
                s = e
            }
        }
        return result
    }

    // MARK: Count

    /// The number of fields of the table's value hashes (`HLEN`), all members
    /// together; partitions on unreachable nodes count 0.
    package var count: Int {
        let replies = cluster.execute((0..<partitionCount).map { p in
            RedisClusterTable.request(slot: slots[p], ["HLEN", valueKeys[p]])
        })
        return replies.reduce(0) { sum, reply in
            if case let .success(.integer(n)) = reply { return sum + Int(n) }
            return sum
        }
    }

    /// The number of fields of one partition's value hash, or nil if its node did not answer.
    package func fieldCount(partition p: Int) -> Int? {
        let reply = cluster.execute([Self.request(slot: slots[p], ["HLEN", valueKeys[p]])])[0]
        if case let .success(.integer(n)) = reply { return Int(n) }
        return nil
    }

    static func request(slot: Int, _ arguments: [String]) -> RedisCluster.Request {
        RedisCluster.Request(slot: slot, command: RedisCommand(arguments))
    }

    // MARK: Lookup

    /// Looks up every key of every run: one `HMGET` per partition and chunk of
    /// at most `max_batch_size` keys, pipelined per node. `parallelism` is not
    /// used: the requests to all nodes are in flight at once.
    package func lookup(_ runs: UnsafeBufferPointer<LookupRun>, defaults: UnsafeBufferPointer<Float>?,
                       missed: UnsafeMutablePointer<Int>?, parallelism: Int) -> Int {
        var total = 0
        for run in runs { total += run.count }
        guard total > 0 else { return 0 }
        // Flat index → key, member, output row.
        var keys = [Int64](repeating: 0, count: total)
        var members = [Int32](repeating: 0, count: total)
        var outputs = [UnsafeMutablePointer<Float>?](repeating: nil, count: total)
        var i = 0
        for run in runs {
            for j in 0..<run.count {
                keys[i] = run.keys[j]
                members[i] = Int32(truncatingIfNeeded: run.member)
                outputs[i] = run.output + j * vecSize
                i += 1
            }
        }
        let (order, starts) = groupByPartition(total) { partition(keys[$0], member: Int(members[$0])) }
        let work = chunks(starts)
        let codec = VectorCodec(storage: storage, dim: vecSize)
        var requests: [RedisCluster.Request] = []
        requests.reserveCapacity(work.count)
        for (p, range) in work {
            var command = RedisCommand(arguments: 2 + range.count, capacity: range.count * (fieldWidth + 6) + 64)
            command.append("HMGET")
            command.append(valueKeys[p])
            var rows: [UnsafeMutableRawPointer] = []
            rows.reserveCapacity(range.count)
            for j in range {
                let f = Int(order[j])
                appendField(&command, key: keys[f], member: Int(members[f]))
                rows.append(UnsafeMutableRawPointer(outputs[f]!))
            }
            // The event loops copy each value straight into its output row.
            command.sink = VectorSink(rows: rows, codec: codec)
            requests.append(RedisCluster.Request(slot: slots[p], command: command))
        }
        let replies = cluster.execute(requests)
        var found = [Bool](repeating: false, count: total)
        var hitChunks: [(partition: Int, flat: [Int])] = []
        for (r, (p, range)) in work.enumerated() {
            guard case .success(.integer) = replies[r], let sink = requests[r].command.sink else {
                errors.add()
                continue
            }
            var hits: [Int] = []
            for (k, j) in range.enumerated() where sink.found[k] {
                let f = Int(order[j])
                found[f] = true
                if tracksUse { hits.append(f) }
            }
            if !hits.isEmpty { hitChunks.append((p, hits)) }
        }
        var misses = 0
        for f in 0..<total where !found[f] {
            if let defaults {
                outputs[f]!.update(repeating: defaults[Int(members[f])], count: vecSize)
            }
            missed?[misses] = f
            misses += 1
        }
        if !hitChunks.isEmpty { recordUse(hitChunks, keys: keys, members: members) }
        return misses
    }

    /// Updates the access records of keys found: their time under
    /// `evict_oldest`, their count under `evict_least_used`.
    private func recordUse(_ chunks: [(partition: Int, flat: [Int])], keys: [Int64], members: [Int32]) {
        var requests: [RedisCluster.Request] = []
        if policy == .evictLeastUsed {
            for (p, flat) in chunks {
                for f in flat {
                    var command = RedisCommand(arguments: 4)
                    command.append("HINCRBY")
                    command.append(timeKeys[p])
                    appendField(&command, key: keys[f], member: Int(members[f]))
                    command.append("1")
                    requests.append(RedisCluster.Request(slot: slots[p], command: command))
                }
            }
        } else {
            let stamp = String(Self.microseconds())
            for (p, flat) in chunks {
                var command = RedisCommand(arguments: 2 + 2 * flat.count)
                command.append("HSET")
                command.append(timeKeys[p])
                for f in flat {
                    appendField(&command, key: keys[f], member: Int(members[f]))
                    command.append(stamp)
                }
                requests.append(RedisCluster.Request(slot: slots[p], command: command))
            }
        }
        _ = cluster.execute(requests)
    }

    static func microseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
    }

    // MARK: Insert and erase

    /// Inserts with one `HSET` of values and one of access records per
    /// partition and chunk of at most `max_batch_size` keys, pipelined per
    /// node, then prunes partitions over the overflow margin.
    /// - Throws: `StoreError.backend` if a node could not store its share
    ///   (the other nodes' shares are stored).
    package func insert(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       parallelism: Int) throws(StoreError) -> InsertCounts {
        try write(member: member, keys: keys, vectors: vectors, onlyAbsent: false)
    }

    /// Inserts only the keys the table does not hold, with one Lua script per
    /// partition and chunk that sets each field with `HSETNX` (and its access
    /// record when it was set), so a vector written meanwhile is kept.
    /// - Throws: as `insert`.
    package func insertAbsent(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                             parallelism: Int) throws(StoreError) -> InsertCounts {
        try write(member: member, keys: keys, vectors: vectors, onlyAbsent: true)
    }

    /// Sets each field and access record only if the field is absent; answers the number set.
    /// KEYS: the value hash and the access hash; ARGV: field, vector, … , then the access record.
    private static let setAbsentScript = """
        local set = 0
        for i = 1, #ARGV - 1, 2 do
          if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
            redis.call('HSET', KEYS[2], ARGV[i], ARGV[#ARGV])
            set = set + 1
          end
        end
        return set
        """

    /// `insert` (`HSET` of values and of access records per partition and
    /// chunk) or `insertAbsent` (`setAbsentScript` per partition and chunk).
    private func write(member: Int, keys: UnsafeBufferPointer<Int64>, vectors: UnsafeBufferPointer<Float>,
                       onlyAbsent: Bool) throws(StoreError) -> InsertCounts {
        try checkInsert(member: member, keys: keys.count, floats: vectors.count)
        guard let keyBase = keys.baseAddress, let vectorBase = vectors.baseAddress, !keys.isEmpty else { return InsertCounts() }
        let (order, starts) = groupByPartition(keys.count) { partition(keyBase[$0], member: member) }
        let work = chunks(starts)
        let stamp = tracksUse && policy == .evictLeastUsed ? "0" : String(Self.microseconds())
        // A quantized table's rows are encoded first: a row it cannot hold fails the insert before anything is sent.
        let codec = VectorCodec(storage: storage, dim: vecSize)
        let bytes = codec.rowBytes
        let encoded = storage == .fp32 ? nil : try EncodedRows(vectorBase, count: keys.count, codec: codec, table: tag) { keyBase[$0] }
        let source = encoded.map { UnsafeRawPointer($0.base) } ?? UnsafeRawPointer(vectorBase)
        defer { withExtendedLifetime(encoded) {} }
        var requests: [RedisCluster.Request] = []
        requests.reserveCapacity(work.count * 2)
        for (p, range) in work {
            if onlyAbsent {
                var script = RedisCommand(arguments: 5 + 2 * range.count + 1,
                                          capacity: range.count * (fieldWidth + bytes + 16) + Self.setAbsentScript.utf8.count + 128)
                script.append("EVAL")
                script.append(Self.setAbsentScript)
                script.append("2")
                script.append(valueKeys[p])
                script.append(timeKeys[p])
                for j in range {
                    let i = Int(order[j])
                    appendField(&script, key: keyBase[i], member: member)
                    script.append(UnsafeRawBufferPointer(start: source + i * bytes, count: bytes))
                }
                script.append(stamp)
                requests.append(RedisCluster.Request(slot: slots[p], command: script))
                continue
            }
            var values = RedisCommand(arguments: 2 + 2 * range.count, capacity: range.count * (fieldWidth + bytes + 16) + 64)
            values.append("HSET")
            values.append(valueKeys[p])
            var times = RedisCommand(arguments: 2 + 2 * range.count, capacity: range.count * (fieldWidth + 32) + 64)
            times.append("HSET")
            times.append(timeKeys[p])
            for j in range {
                let i = Int(order[j])
                appendField(&values, key: keyBase[i], member: member)
                values.append(UnsafeRawBufferPointer(start: source + i * bytes, count: bytes))
                appendField(&times, key: keyBase[i], member: member)
                times.append(stamp)
            }
            requests.append(RedisCluster.Request(slot: slots[p], command: values))
            requests.append(RedisCluster.Request(slot: slots[p], command: times))
        }
        let replies = cluster.execute(requests)
        let perChunk = onlyAbsent ? 1 : 2
        var counts = InsertCounts()
        var failure: RedisError? = nil
        var unreachable: (keys: Int, reason: String?) = (0, nil)
        for (c, (_, range)) in work.enumerated() {
            switch replies[perChunk * c] {
            case let .success(.integer(added)):
                counts.inserted += Int(added)
                counts.replaced += onlyAbsent ? 0 : range.count - Int(added)
            case let .success(.error(message)) where message.hasPrefix("CLUSTERDOWN"):
                // The cluster refuses while it misses a node (cluster-require-full-coverage yes).
                unreachable.keys += range.count
                unreachable.reason = unreachable.reason ?? "the cluster answered \(message)"
            case let .success(other):
                failure = failure ?? .unexpectedReply(command: onlyAbsent ? "EVAL" : "HSET", reply: "\(other)")
            case let .failure(error) where error.isUnreachable:
                unreachable.keys += range.count
                unreachable.reason = unreachable.reason ?? error.description
            case let .failure(error):
                failure = failure ?? error
            }
        }
        if let failure {
            errors.add()
            throw .backend(kind: "redis_cluster", table: tag, operation: "inserting into \(tag)", cause: failure)
        }
        if margin < .max {
            let touched = (0..<partitionCount).filter { starts[$0 + 1] > starts[$0] }
            counts.evicted = pruneOverflow(touched)
        }
        if let reason = unreachable.reason {
            errors.add()
            throw .partlyUnavailable(kind: "redis_cluster", table: tag, keys: unreachable.keys, counts: counts, reason: reason)
        }
        return counts
    }

    /// Prunes each partition of `partitions` that holds more than the margin.
    /// - Returns: the number of fields evicted.
    private func pruneOverflow(_ partitions: [Int]) -> Int {
        let lengths = cluster.execute(partitions.map { Self.request(slot: slots[$0], ["HLEN", valueKeys[$0]]) })
        let target = min(margin - 1, Int(Double(margin) * resolutionTarget))
        var evicted = 0
        for (k, p) in partitions.enumerated() {
            guard case let .success(.integer(length)) = lengths[k], length > margin else { continue }
            let excess = Int(length) - target
            var victims: [RESPValue] = []
            switch policy {
            case .evictRandom:
                let reply = cluster.execute([Self.request(slot: slots[p], ["HRANDFIELD", valueKeys[p], String(excess)])])[0]
                if case let .success(.array(fields?)) = reply { victims = fields }
            case .evictOldest, .evictLeastUsed:
                let reply = cluster.execute([Self.request(slot: slots[p], ["HGETALL", timeKeys[p]])])[0]
                guard case let .success(.array(pairs?)) = reply else { continue }
                var records: [(record: Int64, field: RESPValue)] = []
                records.reserveCapacity(pairs.count / 2)
                var i = 0
                while i + 1 < pairs.count {
                    records.append((Int64(pairs[i + 1].string ?? "") ?? 0, pairs[i]))
                    i += 2
                }
                records.sort { $0.record < $1.record }
                victims = records.prefix(excess).map(\.field)
            }
            evicted += erase(partition: p, fields: victims)
        }
        return evicted
    }

    /// Deletes `fields` (bulk strings) from a partition's value and access hashes.
    private func erase(partition p: Int, fields: [RESPValue]) -> Int {
        guard !fields.isEmpty else { return 0 }
        var requests: [RedisCluster.Request] = []
        var s = 0
        while s < fields.count {
            let part = fields[s..<min(fields.count, s + maxBatch)]
            for key in [valueKeys[p], timeKeys[p]] {
                var command = RedisCommand(arguments: 2 + part.count)
                command.append("HDEL")
                command.append(key)
                for field in part {
                    if case let .bulkString(bytes?) = field {
                        bytes.withUnsafeReadableBytes { command.append($0) }
                    } else {
                        command.append("")
                    }
                }
                requests.append(RedisCluster.Request(slot: slots[p], command: command))
            }
            s += maxBatch
        }
        let replies = cluster.execute(requests)
        var erased = 0
        for r in stride(from: 0, to: replies.count, by: 2) {
            if case let .success(.integer(n)) = replies[r] { erased += Int(n) }
        }
        return erased
    }

    /// Erases keys of `member` with `HDEL` per partition and chunk; keys on an
    /// unreachable node are not erased (and not counted).
    package func erase(member: Int, keys: UnsafeBufferPointer<Int64>) -> Int {
        guard let keyBase = keys.baseAddress, !keys.isEmpty else { return 0 }
        let (order, starts) = groupByPartition(keys.count) { partition(keyBase[$0], member: member) }
        let work = chunks(starts)
        var requests: [RedisCluster.Request] = []
        for (p, range) in work {
            for key in [valueKeys[p], timeKeys[p]] {
                var command = RedisCommand(arguments: 2 + range.count)
                command.append("HDEL")
                command.append(key)
                for j in range { appendField(&command, key: keyBase[Int(order[j])], member: member) }
                requests.append(RedisCluster.Request(slot: slots[p], command: command))
            }
        }
        let replies = cluster.execute(requests)
        var erased = 0
        for r in stride(from: 0, to: replies.count, by: 2) {
            switch replies[r] {
            case let .success(.integer(n)): erased += Int(n)
            default: errors.add()
            }
        }
        return erased
    }
}
