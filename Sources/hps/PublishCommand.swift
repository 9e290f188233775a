import ArgumentParser
import HPS
import HPSKafka

/// `hps publish`: posts new vectors of a table to Kafka in HugeCTR's format.
struct PublishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Post new vectors of a table to Kafka as HugeCTR's update messages (topic hps_et.<model>.<table>).",
        discussion: """
        The rows come from a HugeCTR sparse model folder (--from DIR, its key and emb_vector files) or from a \
        key file and a vector file in the same format (--keys FILE --vectors FILE). Keys are split over the \
        topic's partitions by key group, as HugeCTR's producer does. Servers following the topic apply the rows \
        to every tier; the command returns once the brokers acknowledged every message.
        """
    )

    @Option(help: "Kafka brokers, comma-separated host:port.")
    var brokers: String
    @Option(help: "The model's name.")
    var model: String
    @Option(help: "The table's name (embedding_table_names).")
    var table: String
    @Option(help: "A HugeCTR sparse model folder holding the rows (key and emb_vector).")
    var from: String?
    @Option(help: "A key file (little-endian int64 per key); with --vectors.")
    var keys: String?
    @Option(help: "A vector file (float32 × vec size per key); with --keys.")
    var vectors: String?
    @Option(help: "Floats per vector (read from the files' sizes when left out).")
    var vecSize: Int?
    @Option(help: "Key groups to split the keys by.")
    var keyGroups: Int = 64
    @Option(help: "The largest message in bytes.")
    var maxMessageBytes: Int = 1 << 20

    func run() throws {
        try reportingErrors {
            guard UpdateTopic.isValidName(model) else {
                throw ValidationError("--model must be 1 to 120 of a-z, A-Z, 0-9, _ and -, not \"\(model)\"")
            }
            guard UpdateTopic.isValidName(table) else {
                throw ValidationError("--table must be 1 to 120 of a-z, A-Z, 0-9, _ and -, not \"\(table)\"")
            }
            guard keyGroups >= 1 else { throw ValidationError("--key-groups must be at least 1, not \(keyGroups)") }
            guard maxMessageBytes >= 1024 else {
                throw ValidationError("--max-message-bytes must be at least 1024, not \(maxMessageBytes)")
            }
            let folder: SparseModelFolder
            switch (from, keys, vectors) {
            case let (from?, nil, nil):
                folder = try SparseModelFolder(path: from, table: table, vecSize: vecSize)
            case let (nil, keys?, vectors?):
                folder = try SparseModelFolder(keyPath: keys, vectorPath: vectors, table: table, vecSize: vecSize)
            default:
                throw ValidationError("give the rows as --from DIR, or as --keys FILE and --vectors FILE")
            }
            #if Kafka
            let publisher = try UpdatePublisher(brokers: brokers, keyGroups: keyGroups, maxMessageBytes: maxMessageBytes)
            let topic = UpdateTopic(model: model, table: table)
            var rows = 0, messages = 0
            try folder.read(chunkKeys: 65_536) { keys, vectors throws(KafkaError) in
                messages += try publisher.publish(topic, keys: keys, vectors: vectors, vecSize: folder.vecSize)
                rows += keys.count
            }
            try publisher.flush()
            print("published \(rows) rows of vec size \(folder.vecSize) to \(topic) in \(messages) message(s)")
            #else
            throw KafkaError.notBuilt
            #endif
        }
    }
}
