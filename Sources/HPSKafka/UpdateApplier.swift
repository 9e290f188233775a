public import HPS
public import Logging

/// One message as a consumer received it.
public struct ReceivedUpdate: Sendable, Equatable {
    /// Its topic, `hps_et.<model>.<table>`.
    public var topic: String
    /// Its partition.
    public var partition: Int32
    /// Its offset in the partition.
    public var offset: Int64
    /// Its value, in HugeCTR's format (`UpdateMessage`).
    public var payload: [UInt8]

    public init(topic: String, partition: Int32, offset: Int64, payload: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.payload = payload
    }
}

/// Applies batches of received messages to a parameter server's tiers:
/// each message in order, decoded against its table's vec size. A malformed
/// message is counted, logged once per topic with what is wrong, and
/// skipped; a tier that refuses a write stops the batch with the error, so
/// that its offsets are not committed and the batch is applied again.
///
/// Thread safety: `apply` may be called from any thread, one batch at a
/// time per consumer; `counts` may be read at any time.
public final class UpdateApplier: Sendable {
    /// The server whose tiers take the updates.
    public let server: HierarchicalParameterServer
    /// The parts of the hierarchy written.
    public let targets: UpdateTargets
    private let logger: Logger
    private let state = Locked([String: UpdateCounts]())

    /// An applier writing into `targets` of `server`, logging to `logger`.
    public init(server: HierarchicalParameterServer, targets: UpdateTargets = .all,
                logger: Logger = Logger(label: "hps.updates")) {
        self.server = server
        self.targets = targets
        self.logger = logger
    }

    /// The counts so far, per topic.
    public var counts: [String: UpdateCounts] { state.withLock { $0 } }

    /// Applies `messages` in order.
    /// - Returns: the keys applied.
    /// - Throws: `UpdateError.store` when a tier refused a write (the
    ///   messages before it were applied; applying them again is harmless).
    @discardableResult
    public func apply(_ messages: [ReceivedUpdate]) throws(UpdateError) -> Int {
        var applied = 0
        for message in messages {
            let model: String, table: Int, update: UpdateMessage
            do throws(UpdateMessageError) {
                (model, table, update) = try decode(message)
            } catch {
                skip(message, because: error)
                continue
            }
            let report: UpdateReport
            do throws(UpdateError) {
                report = try update.keys.withUnsafeBufferPointer { keys throws(UpdateError) in
                    try update.vectors.withUnsafeBufferPointer { vectors throws(UpdateError) in
                        try server.update(model: model, table: table, keys: keys, vectors: vectors, targets: targets)
                    }
                }
            } catch .lookup(.keyOutOfRange(_, let key)) {
                // Checked before any tier is written: the message is malformed, not the tiers at fault.
                skip(message, because: .keyOutOfRange(key: key))
                continue
            }
            applied += update.keys.count
            let unheld = report.keysNotInStaticTables
            let firstUnheld = state.withLock { counts in
                let before = counts[message.topic, default: UpdateCounts()].keysNotInGPUTables
                counts[message.topic, default: UpdateCounts()].messages += 1
                counts[message.topic, default: UpdateCounts()].keys += update.keys.count
                counts[message.topic, default: UpdateCounts()].keysNotInGPUTables += unheld
                return before == 0 && unheld > 0
            }
            if firstUnheld {
                logger.warning("\(unheld) key(s) of an update in \(message.topic) are not in the model's GPU table (\(report.unheldKeys.keys.sorted().joined(separator: ", "))), which keeps the keys it was built with: they are served from the tiers below; later ones of this topic are counted in hps_update_keys_not_in_gpu_table_total, not logged")
            }
        }
        return applied
    }

    /// The model and table index a message's topic names, and its decoded pairs.
    private func decode(_ message: ReceivedUpdate) throws(UpdateMessageError) -> (String, Int, UpdateMessage) {
        guard let name = UpdateTopic(message.topic), let session = try? server.session(model: name.model),
              let table = session.model.tableNames.firstIndex(of: name.table) else {
            throw .unknownTable(topic: message.topic)
        }
        let vecSize = session.model.vecSizes[table]
        let update = try message.payload.withUnsafeBytes { bytes in
            Result { () throws(UpdateMessageError) in try UpdateMessage(decoding: bytes, vecSize: vecSize) }
        }.get()
        return (name.model, table, update)
    }

    /// Counts a malformed message, logging the first of its topic.
    private func skip(_ message: ReceivedUpdate, because error: UpdateMessageError) {
        let first = state.withLock { counts in
            counts[message.topic, default: UpdateCounts()].malformed += 1
            counts[message.topic, default: UpdateCounts()].lastProblem = error.description
            return counts[message.topic]!.malformed == 1
        }
        if first {
            logger.warning("skipped a malformed update in \(message.topic) (partition \(message.partition), offset \(message.offset)): \(error.description); later ones of this topic are counted, not logged")
        }
    }
}
