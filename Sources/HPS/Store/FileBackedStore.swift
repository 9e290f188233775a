/// A store that serves tables straight from their sparse model folders
/// instead of holding copies (the memory-mapped tier): the server attaches
/// the folders rather than inserting their rows.
package protocol FileBackedStore: EmbeddingStore {
    /// Makes table `tag` serve the member tables in `folders` (one folder per
    /// member, in member order), building or reusing whatever index it keeps
    /// beside them.
    func attach(_ tag: String, folders: [SparseModelFolder], keyType: KeyType) throws -> any EmbeddingStoreTable
}
