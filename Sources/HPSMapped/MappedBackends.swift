import HPS

/// Registers the `mapped` persistent tier with `StoreBackends`.
public func registerBackends() {
    StoreBackends.register(persistent: .mapped) { MappedStore(configuration: $0) }
}
