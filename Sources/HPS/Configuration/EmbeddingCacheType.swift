/// The kind of GPU embedding cache of a model (`embedding_cache_type`).
public enum EmbeddingCacheType: String, Sendable, Equatable, CaseIterable {
    /// A set-associative LRU cache that inserts keys on a miss.
    case dynamic
    /// The whole table in GPU memory, read-only; the fastest kind.
    case `static`
    /// The table in host memory reached through unified memory, with a GPU cache in front.
    case uvm
}
