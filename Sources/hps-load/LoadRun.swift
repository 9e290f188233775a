import HPS
import Synchronization

/// One load run: `connections` keep-alive connections sending requests of
/// one kind for `duration`, either open loop (a fixed schedule of `rate`
/// requests a second, latency counted from each request's scheduled time so
/// that a slow server is not hidden by requests it delayed) or closed loop
/// (each connection sends its next request as soon as the last is answered:
/// the most the server gives; latency counted from the send). Either way a
/// request is drawn and encoded before its time starts.
struct LoadRun: Sendable {
    var transport: any LoadTransport
    var kind: RequestKind
    var connections: Int
    /// Requests a second for the whole run; nil: closed loop.
    var rate: Double?
    var duration: Duration
    /// The model's rows, to spot-check one key of each answer; nil: sizes
    /// only (and, for predictions, that each is finite).
    var expected: ExpectedRows?
    var seed: UInt64 = 1

    /// What a run measured.
    struct Report: Sendable {
        var requests = 0
        var failures = 0
        /// The first failures' reasons (at most 5).
        var failureReasons: [String] = []
        /// Latencies in nanoseconds.
        var latencies: [UInt64] = []
        /// How late each request was sent after its scheduled time (open
        /// loop; the generator's own lag, included in the latencies), nanoseconds.
        var sendDelays: [UInt64] = []
        var elapsed: Duration = .zero

        mutating func add(_ other: Report) {
            requests += other.requests
            failures += other.failures
            failureReasons += other.failureReasons.prefix(max(0, 5 - failureReasons.count))
            latencies += other.latencies
            sendDelays += other.sendDelays
        }

        /// Answered requests a second.
        var throughput: Double { Double(requests) / elapsed.seconds }

        /// The nearest-rank percentile `q` of the latencies, in microseconds.
        func percentile(_ q: Double, sorted: [UInt64]) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let rank = min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
            return Double(sorted[rank]) / 1000
        }
    }

    func run() async throws -> Report {
        let tickets = Tickets()
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + duration
        let interval: Duration? = rate.map { .nanoseconds(Int64(1e9 / $0)) }
        var total = Report()
        try await withThrowingTaskGroup(of: Report.self) { group in
            for c in 0..<connections {
                group.addTask {
                    var report = Report()
                    var random = SplitMix64(seed: seed &+ UInt64(c) &* 0x9E37_79B9)
                    var connection = try await transport.connect()
                    while true {
                        // The request is drawn and encoded before its time starts (a
                        // seed batch's 53,248 keys take a good part of a millisecond).
                        let scheduled: ContinuousClock.Instant
                        let request: LoadRequest
                        let prepared: any PreparedRequest
                        if let interval {
                            let ticket = tickets.next()
                            scheduled = start + interval * ticket
                            if scheduled >= end { break }
                            request = kind.request(&random)
                            prepared = connection.prepare(request)
                            if clock.now < scheduled { try await Task.sleep(until: scheduled, tolerance: .microseconds(20), clock: clock) }
                        } else {
                            if clock.now >= end { break }
                            request = kind.request(&random)
                            prepared = connection.prepare(request)
                            scheduled = clock.now
                        }
                        report.requests += 1
                        report.sendDelays.append((clock.now - scheduled).nanoseconds)
                        do {
                            let response = try await prepared.send()
                            report.latencies.append((clock.now - scheduled).nanoseconds)
                            if let reason = check(request, response, &random) {
                                report.failures += 1
                                if report.failureReasons.count < 5 { report.failureReasons.append(reason) }
                            }
                        } catch {
                            report.latencies.append((clock.now - scheduled).nanoseconds)
                            report.failures += 1
                            if report.failureReasons.count < 5 { report.failureReasons.append("transport: \(error)") }
                            await connection.close()
                            connection = try await transport.connect()
                        }
                    }
                    await connection.close()
                    return report
                }
            }
            for try await report in group { total.add(report) }
        }
        total.elapsed = clock.now - start
        return total
    }

    /// Why an answer is wrong, or nil when it is right.
    private func check(_ request: LoadRequest, _ response: LoadResponse, _ random: inout SplitMix64) -> String? {
        guard response.status == 200 else { return "status \(response.status): \(response.error ?? "")" }
        guard response.output.count == kind.outputBytes else {
            return "OUTPUT0 has \(response.output.count) bytes, not \(kind.outputBytes)"
        }
        if kind.answer == .predictions {
            // No file holds the predictions, so only their being numbers is checked.
            for sample in 0..<kind.samples where !response.float(at: sample).isFinite {
                return "prediction \(sample) is \(response.float(at: sample)), not a finite number"
            }
        }
        if let expected {
            let index = Int(random.next() % UInt64(request.keys.count))
            guard expected.check(request, response, index: index) else {
                return "the vector of key \(request.keys[index]) (index \(index)) is not its row in the model files"
            }
        }
        return nil
    }
}

/// The open loop's schedule: request i is due at start + i × interval,
/// whichever connection sends it.
final class Tickets: Sendable {
    private let counter = Atomic<Int>(0)

    /// The next request's number.
    func next() -> Int { counter.wrappingAdd(1, ordering: .relaxed).oldValue }
}
