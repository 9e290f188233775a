import HPSRedis

/// The store backends of the modules this binary is built with.
enum StoreModules {
    /// Registers every backend with `StoreBackends`; call before building a server.
    static func register() {
        HPSRedis.registerBackends()
    }
}
