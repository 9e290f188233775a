/// What a volatile database partition evicts when it holds more than `overflow_margin` keys
/// (`volatile_db.overflow_policy`).
public enum OverflowPolicy: String, Sendable, Equatable, CaseIterable {
    /// Evict randomly chosen keys (HugeCTR's default).
    case evictRandom = "evict_random"
    /// Evict the keys looked up least often (LFU).
    case evictLeastUsed = "evict_least_used"
    /// Evict the keys looked up least recently (LRU).
    case evictOldest = "evict_oldest"
}
