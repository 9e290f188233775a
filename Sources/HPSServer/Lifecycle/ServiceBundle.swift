package import ServiceLifecycle

/// Services run side by side as one service of a `ServiceGroup`, so that a
/// graceful shutdown reaches all of them at once.
///
/// A `ServiceGroup` shuts its services down one after the other, each only once
/// the previous has returned; the KServe v2 HTTP and gRPC servers must both stop
/// accepting at SIGTERM, not the second one only when the first has drained.
/// The services' graceful-shutdown handlers all hang off the bundle's, so they
/// fire together; the bundle returns when every service has returned, and the
/// first error cancels the others.
package struct ServiceBundle: Service {
    /// The services, run concurrently.
    package let services: [any Service]

    /// A bundle of `services`.
    package init(_ services: [any Service]) { self.services = services }

    /// Runs every service until all have returned.
    package func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for service in services {
                group.addTask { try await service.run() }
            }
        }
    }
}
