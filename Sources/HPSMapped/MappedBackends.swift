public import HPS

extension StoreBackend {
    /// The `mapped` persistent tier (served straight from the model files),
    /// given to a `HierarchicalParameterServer` whose configuration names it.
    public static let mapped = StoreBackend(persistent: .mapped) { MappedStore(configuration: $0) }
}
