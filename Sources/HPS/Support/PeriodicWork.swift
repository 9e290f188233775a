/// Background work that runs one step every `interval` until it is
/// cancelled (the server shuts down): the shape of the stores' upkeep, such
/// as catching up a tier or watching files.
package struct PeriodicWork: BackgroundWork {
    /// A name for logs.
    package let name: String
    let interval: Duration
    /// Whether a step is due now; when false the interval passes without one.
    let due: @Sendable () -> Bool
    /// The step, run where blocking is allowed.
    let step: @Sendable () -> Void
    /// Run once when the work is cancelled, on the cooperative pool.
    let onStop: (@Sendable () -> Void)?

    /// Work that runs `step` every `interval` while `due` says so, and
    /// `onStop` when cancelled.
    package init(name: String, interval: Duration, due: @escaping @Sendable () -> Bool = { true },
                 onStop: (@Sendable () -> Void)? = nil, step: @escaping @Sendable () -> Void) {
        self.name = name
        self.interval = interval
        self.due = due
        self.step = step
        self.onStop = onStop
    }

    package func run(blocking: BlockingRunner) async throws {
        while true {
            do {
                try await Task.sleep(for: interval)
            } catch {
                onStop?()
                return  // cancelled: the server shuts down
            }
            guard due() else { continue }
            await blocking.run(step)
        }
    }
}
