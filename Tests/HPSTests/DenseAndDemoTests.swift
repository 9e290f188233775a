import HPSDemo
import Testing

@testable import HPS

struct DenseAndDemoTests {
    /// The small seed model of these tests: 3 tables × 500 keys, dim 8, batch 16 × 4 keys.
    private var smallModel: SeedModel {
        var model = SeedModel()
        model.tables = 3
        model.vocab = 500
        model.dim = 8
        model.batchSize = 16
        model.keysPerSample = 4
        return model
    }

    @Test("dense predictions match a double-precision loop", arguments: [1, 15, 16, 37, 96])
    func denseMatchesDoubleLoop(features: Int) {
        let layer = DenseLayer(inputs: features, seed: 7)
        let withBias = DenseLayer(weights: layer.weights, bias: 0.125)
        var random = SplitMix64(seed: UInt64(features))
        let batch = 9
        let input = (0..<(batch * features)).map { _ in random.nextFloat(-1, 1) }
        for dense in [layer, withBias] {
            var output = [Float](repeating: .nan, count: batch)
            input.withUnsafeBufferPointer { i in output.withUnsafeMutableBufferPointer { dense.predict(i, into: $0) } }
            for s in 0..<batch {
                var expected = Double(dense.bias)
                for f in 0..<features { expected += Double(input[s * features + f]) * Double(dense.weights[f]) }
                let scale = max(1e-3, (0..<features).reduce(0.0) { $0 + abs(Double(input[s * features + $1]) * Double(dense.weights[$1])) })
                #expect(abs(Double(output[s]) - expected) <= 1e-4 * scale, "sample \(s): \(output[s]) vs \(expected)")
            }
        }
    }

    @Test("Glorot weights are seeded and within the Keras limit")
    func glorotWeights() {
        let a = DenseLayer(inputs: 100, seed: 3), b = DenseLayer(inputs: 100, seed: 3), c = DenseLayer(inputs: 100, seed: 4)
        #expect(a == b)
        #expect(a != c)
        let limit = (6 / Float(101)).squareRoot()
        #expect(a.weights.count == 100)
        #expect(a.weights.allSatisfy { abs($0) <= limit })
        #expect(a.bias == 0)
    }

    @Test("a seed model writes the notebook's files and configuration")
    func seedModelWrite() throws {
        let directory = try TemporaryDirectory(prefix: "hps-demo")
        defer { directory.remove() }
        let model = smallModel
        let path = try model.write(to: directory.path)
        #expect(path == directory.path + "/hps.json")
        for t in 0..<3 {
            let folder = try SparseModelFolder(path: directory.path + "/embeddings/table\(t)", table: "table\(t)", vecSize: 8)
            #expect(folder.keyCount == 500)
            let keys = try folder.readAll().keys
            #expect(keys == (0..<500).map { Int64(t * 500 + $0) })
            #expect(try fileSize(folder.vectorPath) == 500 * 8 * 4)
        }
        let configuration = try HPSConfiguration.load(path: path)
        #expect(configuration.supportLongLong == false)
        #expect(configuration.fuseEmbeddingTable)
        let m = try #require(configuration.model(named: "3_table"))
        #expect(m.vecSizes == [8, 8, 8])
        #expect(m.maxBatchSize == 16)
        #expect(m.maxQueryKeysPerSample == [4, 4, 4])
    }

    @Test("the demo's fused and unfused runs agree with each other and with the files")
    func demoRuns() throws {
        let directory = try TemporaryDirectory(prefix: "hps-demo")
        defer { directory.remove() }
        let model = smallModel
        try model.write(to: directory.path)
        let result = try SeedDemo(model: model, iterations: 3, threads: 1).run(directory: directory.path)
        #expect(result.device == "cpu")
        #expect(result.iterations == 3)
        #expect(result.predictionsMatch)
        #expect(result.vectorsMatchFiles)
        for timing in [result.unfused, result.fused] {
            #expect(timing.elapsedSeconds > 0)
            #expect(timing.p50Microseconds > 0)
            #expect(timing.p99Microseconds >= timing.p50Microseconds)
            #expect(timing.lookupP50Microseconds > 0)
        }
        #expect(result.speedup > 0)
    }

    @Test("the demo refuses zero iterations")
    func demoZeroIterations() throws {
        let directory = try TemporaryDirectory(prefix: "hps-demo")
        defer { directory.remove() }
        try smallModel.write(to: directory.path)
        let error = #expect(throws: ToolFailure.self) { try SeedDemo(model: smallModel, iterations: 0).run(directory: directory.path) }
        #expect(error?.description == "--iterations must be at least 1, not 0")
    }

    @Test("a seed model that cannot exist is refused before anything is written")
    func seedModelValidation() throws {
        var model = smallModel
        model.dim = 0
        #expect(throws: LookupError.self) { try model.validate() }
        model = smallModel
        model.tables = 5
        model.vocab = 1 << 30
        #expect(throws: LookupError.self) { try model.validate() }
        model.keyType = .int64
        #expect(throws: Never.self) { try model.validate() }
    }

    @Test("an int32 seed model whose largest key is 2^32 − 1 is accepted")
    func seedModelLargestInt32Key() {
        // One table of 2^32 keys holds keys 0 … 2^32 − 1, all of which fit in 32 bits.
        var model = smallModel
        model.tables = 1
        model.vocab = 1 << 32
        model.keyType = .int32
        #expect(KeyType.int32.admits(Int64(model.tables) * Int64(model.vocab) - 1))
        #expect(throws: Never.self) { try model.validate() }
    }

    @Test("percentile is nearest-rank")
    func percentiles() {
        let values = (1...100).map(Double.init).reversed().map { $0 }
        #expect(percentile(values, 0.5) == 50)
        #expect(percentile(values, 0.99) == 99)
        #expect(percentile(values, 1) == 100)
        #expect(percentile([], 0.5) == 0)
    }
}
