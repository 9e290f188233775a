/// The tier that holds the full model (`persistent_db.type`).
public enum PersistentDatabaseType: String, Sendable, Equatable, CaseIterable {
    /// No persistent tier (HugeCTR's default).
    case disabled
    /// A RocksDB database with one column family per table.
    case rocksDB = "rocks_db"
    /// Memory-mapped model files; an extension of this project, not known to HugeCTR.
    case mapped
}
