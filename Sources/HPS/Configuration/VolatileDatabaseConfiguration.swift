#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `volatile_db` section: the in-memory tier shared by all models.
///
/// Defaults are those of HugeCTR's parser. When the section is absent the in-memory hash map
/// is used; when it is present without `type` the tier is disabled.
public struct VolatileDatabaseConfiguration: Sendable, Equatable {
    /// The backend (`type`); `hashMap` when the section is absent.
    public var type: VolatileDatabaseType = .hashMap
    /// Comma-separated `host:port` nodes of a Redis Cluster (`address`).
    public var address: String = "127.0.0.1:7000"
    /// The Redis user (`user_name`).
    public var userName: String = "default"
    /// The Redis password (`password`).
    public var password: String = ""
    /// Partitions per table; a key goes to partition `hash(key) % numPartitions`
    /// (`num_partitions`, at least 1). Defaults to min(16, online hardware threads).
    public var numPartitions: Int = VolatileDatabaseConfiguration.defaultPartitionCount
    /// Bytes allocated at a time by the hash map (`allocation_rate`, 256 MiB).
    public var allocationRate: Int = 256 << 20
    /// Size in bytes of the shared memory segment (`shared_memory_size`, 16 GiB).
    public var sharedMemorySize: Int = 16 << 30
    /// Name of the shared memory segment (`shared_memory_name`).
    public var sharedMemoryName: String = "hctr_mp_hash_map_database"
    /// Whether the shared memory segment is removed when the last user exits
    /// (`shared_memory_auto_remove`).
    public var sharedMemoryAutoRemove: Bool = true
    /// Connections per Redis node (`num_node_connections`).
    public var numNodeConnections: Int = 5
    /// The most keys sent to the backend in one request (`max_batch_size`).
    public var maxBatchSize: Int = 65536
    /// Whether Redis connections use TLS (`enable_tls`).
    public var enableTLS: Bool = false
    /// The CA certificate bundle for TLS (`tls_ca_certificate`).
    public var tlsCACertificate: String = "cacertbundle.crt"
    /// The client certificate for TLS (`tls_client_certificate`).
    public var tlsClientCertificate: String = "client_cert.pem"
    /// The client key for TLS (`tls_client_key`).
    public var tlsClientKey: String = "client_key.pem"
    /// The server name sent for TLS SNI (`tls_server_name_identification`).
    public var tlsServerNameIdentification: String = "redis.localhost"
    /// Keys a partition may hold before it evicts (`overflow_margin`, at least 1; unlimited
    /// by default).
    public var overflowMargin: UInt64 = .max
    /// Which keys are evicted on overflow (`overflow_policy`).
    public var overflowPolicy: OverflowPolicy = .evictRandom
    /// The fraction of `overflowMargin` a partition is pruned to on overflow
    /// (`overflow_resolution_target`, in (0, 1]).
    public var overflowResolutionTarget: Double = 0.8
    /// The fraction of each table loaded at start (`initial_cache_rate`, in [0, 1]).
    public var initialCacheRate: Double = 1.0
    /// Whether keys found only in the persistent database are copied into this tier
    /// (`cache_missed_embeddings`).
    public var cacheMissedEmbeddings: Bool = false
    /// Regular expressions selecting the update topics this tier follows (`update_filters`).
    public var updateFilters: [String] = ["^hps_.+$"]

    /// The defaults, with the in-memory hash map as the backend.
    public init() {}

    /// min(16, online hardware threads), at least 1.
    public static var defaultPartitionCount: Int {
        let threads = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, min(16, threads))
    }

    /// Reads the section; a present section without `type` is disabled.
    init(reading reader: inout ConfigurationReader) throws(ConfigurationError) {
        type = try reader.choice("type", default: .disabled)
        address = try reader.string("address", default: address)
        userName = try reader.string("user_name", default: userName)
        password = try reader.string("password", default: password)
        numPartitions = try reader.int("num_partitions", default: numPartitions, mustBe: "at least 1") { $0 >= 1 }
        allocationRate = try reader.int("allocation_rate", default: allocationRate, mustBe: "at least 1") { $0 >= 1 }
        sharedMemorySize = try reader.int("shared_memory_size", default: sharedMemorySize, mustBe: "at least 1") { $0 >= 1 }
        sharedMemoryName = try reader.string("shared_memory_name", default: sharedMemoryName)
        sharedMemoryAutoRemove = try reader.bool("shared_memory_auto_remove", default: sharedMemoryAutoRemove)
        numNodeConnections = try reader.int("num_node_connections", default: numNodeConnections, mustBe: "at least 1") { $0 >= 1 }
        maxBatchSize = try reader.int("max_batch_size", default: maxBatchSize, mustBe: "at least 1") { $0 >= 1 }
        enableTLS = try reader.bool("enable_tls", default: enableTLS)
        tlsCACertificate = try reader.string("tls_ca_certificate", default: tlsCACertificate)
        tlsClientCertificate = try reader.string("tls_client_certificate", default: tlsClientCertificate)
        tlsClientKey = try reader.string("tls_client_key", default: tlsClientKey)
        tlsServerNameIdentification = try reader.string(
            "tls_server_name_identification", default: tlsServerNameIdentification)
        overflowMargin = try reader.uint64("overflow_margin", default: overflowMargin, mustBe: "at least 1") { $0 >= 1 }
        overflowPolicy = try reader.choice("overflow_policy", default: overflowPolicy)
        overflowResolutionTarget = try reader.double(
            "overflow_resolution_target", default: overflowResolutionTarget,
            mustBe: "greater than 0 and at most 1"
        ) { $0 > 0 && $0 <= 1 }
        initialCacheRate = try reader.double(
            "initial_cache_rate", default: initialCacheRate, mustBe: "between 0 and 1"
        ) { (0...1).contains($0) }
        cacheMissedEmbeddings = try reader.bool("cache_missed_embeddings", default: cacheMissedEmbeddings)
        updateFilters = try reader.array("update_filters", ConfigurationReader.string) ?? updateFilters
    }

    /// Every key of the section, so that reading it back gives an equal configuration.
    func jsonValue() -> JSONValue {
        .object(JSONObject([
            ("type", .string(type.rawValue)),
            ("address", .string(address)),
            ("user_name", .string(userName)),
            ("password", .string(password)),
            ("num_partitions", .integer(Int64(numPartitions))),
            ("allocation_rate", .integer(Int64(allocationRate))),
            ("shared_memory_size", .integer(Int64(sharedMemorySize))),
            ("shared_memory_name", .string(sharedMemoryName)),
            ("shared_memory_auto_remove", .bool(sharedMemoryAutoRemove)),
            ("num_node_connections", .integer(Int64(numNodeConnections))),
            ("max_batch_size", .integer(Int64(maxBatchSize))),
            ("enable_tls", .bool(enableTLS)),
            ("tls_ca_certificate", .string(tlsCACertificate)),
            ("tls_client_certificate", .string(tlsClientCertificate)),
            ("tls_client_key", .string(tlsClientKey)),
            ("tls_server_name_identification", .string(tlsServerNameIdentification)),
            ("overflow_margin", JSONValue(overflowMargin)),
            ("overflow_policy", .string(overflowPolicy.rawValue)),
            ("overflow_resolution_target", .double(overflowResolutionTarget)),
            ("initial_cache_rate", .double(initialCacheRate)),
            ("cache_missed_embeddings", .bool(cacheMissedEmbeddings)),
            ("update_filters", .array(updateFilters.map(JSONValue.string))),
        ]))
    }
}
