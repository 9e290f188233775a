import Foundation
import Testing

@testable import HPS

/// Quantized storage (`vector_storage`, `fp8_quant`): each format against a
/// reference quantizer written plainly here, from the formats' definitions
/// and in Double, not with the codec's own arithmetic.
struct VectorStorageTests {
    // MARK: The reference

    /// What a stored row should read back as, per the format's definition.
    static func reference(_ row: [Float], _ storage: VectorStorage) -> [Float] {
        switch storage {
        case .fp32:
            return row
        case .fp16:
            return row.map { Float(Float16($0)) }
        case .bf16:
            return row.map(nearestBF16)
        case .int8:
            let lo = row.min()!, hi = row.max()!
            let scale = (hi - lo) / 255
            guard scale.isNormal else { return row.map { _ in lo } }
            return row.map { x in
                // The format's definition, in float32: q = round((x − min) / scale), x ≈ q × scale + min.
                let q = min(255, max(0, ((x - lo) / scale).rounded(.toNearestOrEven)))
                return q * scale + lo
            }
        case .fp8:
            let amax = row.map(\.magnitude).max()!
            let scale = amax / 448
            guard scale.isNormal else { return row.map { _ in 0 } }
            return row.map { x in nearestE4M3(Double(x / scale)) * scale }
        }
    }

    /// The bfloat16 nearest x (ties to the even significand), as a Float.
    static func nearestBF16(_ x: Float) -> Float {
        let down = Float(bitPattern: x.bitPattern & 0xFFFF_0000)
        let up = Float(bitPattern: (x.bitPattern & 0xFFFF_0000) &+ 0x1_0000)
        let dDown = abs(Double(x) - Double(down)), dUp = abs(Double(x) - Double(up))
        if dDown != dUp { return dDown < dUp ? down : up }
        return (down.bitPattern >> 16) & 1 == 0 ? down : up
    }

    /// Every finite e4m3 value, from the definition: 2^(e − 7) × (1 + m/8), and m × 2⁻⁹ for e = 0.
    static let e4m3: [Double] = {
        var values: [Double] = []
        for e in 0..<16 {
            for m in 0..<8 where !(e == 15 && m == 7) {
                values.append(e == 0 ? Double(m) * pow(2, -9) : pow(2, Double(e - 7)) * (1 + Double(m) / 8))
            }
        }
        return values
    }()

    /// The e4m3 value nearest y (ties to the even mantissa), saturated at ±448.
    static func nearestE4M3(_ y: Double) -> Float {
        let a = min(abs(y), 448)
        var best = 0
        for (i, v) in e4m3.enumerated() {
            let d = abs(v - a), b = abs(e4m3[best] - a)
            if d < b || (d == b && i % 2 == 0) { best = i }
        }
        return Float(y < 0 ? -e4m3[best] : e4m3[best])
    }

    static func roundTrip(_ row: [Float], _ storage: VectorStorage) -> (decoded: [Float], bad: Int?) {
        let codec = VectorCodec(storage: storage, dim: row.count)
        let stored = UnsafeMutableRawPointer.allocate(byteCount: codec.rowBytes, alignment: 16)
        defer { stored.deallocate() }
        var decoded = [Float](repeating: .nan, count: row.count)
        let bad = row.withUnsafeBufferPointer { codec.encode($0.baseAddress!, into: stored) }
        if bad == nil { decoded.withUnsafeMutableBufferPointer { codec.decode(stored, into: $0.baseAddress!) } }
        return (decoded, bad)
    }

    /// Equal, or one unit in the last place apart.
    static func close(_ a: Float, _ b: Float) -> Bool {
        a == b || abs(a - b) <= b.ulp
    }

    // MARK: The formats

    @Test("each format reads back as the reference quantizer says, on fresh random rows of several sizes", arguments: VectorStorage.allCases)
    func matchesReference(storage: VectorStorage) {
        var random = SplitMix64(seed: 0xC0DEC + UInt64(storage.kernelCode))
        for dim in [1, 3, 4, 7, 16, 64, 128, 129] {
            for scale in [Float(1e-3), 1, 37, 1e4] {
                let row = (0..<dim).map { _ in random.nextFloat(-1, 1) * scale }
                let (decoded, bad) = Self.roundTrip(row, storage)
                #expect(bad == nil)
                let expected = Self.reference(row, storage)
                let mismatches = (0..<dim).filter { !Self.close(decoded[$0], expected[$0]) }
                #expect(mismatches.isEmpty, "\(storage) dim \(dim) scale \(scale): elements \(mismatches.prefix(4)) differ")
            }
        }
    }

    @Test("a row read back from a tier encodes again to the same floats (what a GPU cache stores of a miss)",
          arguments: VectorStorage.allCases)
    func decodedRowsEncodeAgainExactly(storage: VectorStorage) {
        var random = SplitMix64(seed: 0xDEC0DE + UInt64(storage.kernelCode))
        var rows = 0, plainEncodeDiffered = 0
        for dim in [1, 2, 3, 16, 64, 128, 129] {
            let codec = VectorCodec(storage: storage, dim: dim)
            var stored = [UInt8](repeating: 0, count: codec.rowBytes)
            var again = [UInt8](repeating: 0, count: codec.rowBytes)
            var scratch = [Float](repeating: 0, count: dim)
            for scale in [Float(1e-30), 1e-3, 1, 37, 1e4, 3e4] {
                for shape in 0..<60 {
                    // Random rows, offset ones (int8's bias away from zero) and constant ones.
                    let offset: Float = shape % 3 == 1 ? random.nextFloat(-5, 5) * scale : 0
                    let row: [Float] = shape % 20 == 19 ? [Float](repeating: random.nextFloat(-1, 1) * scale, count: dim)
                        : (0..<dim).map { _ in random.nextFloat(-1, 1) * scale + offset }
                    guard row.allSatisfy({ $0.magnitude < 60_000 }) else { continue }
                    var decoded = [Float](repeating: .nan, count: dim)
                    let bad = row.withUnsafeBufferPointer { codec.encode($0.baseAddress!, into: &stored) }
                    #expect(bad == nil)
                    stored.withUnsafeBytes { codec.decode($0.baseAddress!, into: &decoded) }
                    // Plain encode of the decoded row, for the count below.
                    var plain = [Float](repeating: .nan, count: dim)
                    _ = decoded.withUnsafeBufferPointer { codec.encode($0.baseAddress!, into: &again) }
                    again.withUnsafeBytes { codec.decode($0.baseAddress!, into: &plain) }
                    if plain.map(\.bitPattern) != decoded.map(\.bitPattern) { plainEncodeDiffered += 1 }
                    let failed = decoded.withUnsafeBufferPointer { d in
                        scratch.withUnsafeMutableBufferPointer { codec.encodeDecoded(d.baseAddress!, into: &again, scratch: $0.baseAddress!) }
                    }
                    #expect(failed == nil)
                    var reread = [Float](repeating: .nan, count: dim)
                    again.withUnsafeBytes { codec.decode($0.baseAddress!, into: &reread) }
                    #expect(reread.map(\.bitPattern) == decoded.map(\.bitPattern),
                            "\(storage) dim \(dim) scale \(scale) shape \(shape): encoded again, the row reads back otherwise")
                    rows += 1
                }
            }
        }
        #expect(rows > 2000)
        // fp32, fp16 and bf16 reproduce by encode alone; int8 needs the scale
        // search on some rows (fp8's scale × 448 and back has reproduced on
        // every row tried, but nothing guarantees it, so it searches too).
        switch storage {
        case .int8: #expect(plainEncodeDiffered > 0, "no row needed the search: the test no longer covers it")
        case .fp8: break
        default: #expect(plainEncodeDiffered == 0)
        }
    }

    @Test("round-trip error stays within each format's bound")
    func errorBounds() {
        var random = SplitMix64(seed: 5)
        let row = (0..<512).map { _ in random.nextFloat(-3, 3) }
        let amax = Double(row.map(\.magnitude).max()!)
        let range = Double(row.max()! - row.min()!)
        for storage in VectorStorage.allCases {
            let decoded = Self.roundTrip(row, storage).decoded
            for (x, y) in zip(row, decoded) {
                let error = abs(Double(x) - Double(y))
                switch storage {
                case .fp32: #expect(error == 0)
                case .fp16: #expect(error <= abs(Double(x)) * 0x1p-11 + 0x1p-25)
                case .bf16: #expect(error <= abs(Double(x)) * 0x1p-8)
                case .int8: #expect(error <= range / 255 / 2 * 1.0001)
                // Relative 2⁻⁴ in e4m3's normal range, else half its subnormal step 2⁻⁹ (scaled).
                case .fp8: #expect(error <= max(abs(Double(x)) * 0x1p-4, amax / 448 * 0x1p-10) * 1.0001)
                }
            }
        }
    }

    @Test("rows of zeros read back as zeros and constant rows as their value, in every format")
    func zeroAndConstantRows() {
        for storage in VectorStorage.allCases {
            #expect(Self.roundTrip([Float](repeating: 0, count: 9), storage).decoded == [Float](repeating: 0, count: 9))
            let constant = Self.roundTrip([Float](repeating: -2.5, count: 9), storage).decoded
            // int8 keeps the row's bias exactly; fp8 scales 448 back by max |x| / 448.
            #expect(constant.allSatisfy { Self.close($0, -2.5) }, "\(storage): \(constant)")
        }
    }

    @Test("very large and tiny values: fp16 refuses what exceeds 65504; the scaled formats follow the row's range")
    func largeAndTinyValues() {
        #expect(Self.roundTrip([1, 70_000], .fp16).bad == 1)
        #expect(Self.roundTrip([1, 65_504], .fp16).bad == nil)
        let huge: [Float] = [3e38, -3e38, 1]
        #expect(Self.roundTrip(huge, .int8).bad != nil, "max − min overflows float32")
        for storage in [VectorStorage.bf16, .fp8] {
            let (decoded, bad) = Self.roundTrip(huge, storage)
            #expect(bad == nil)
            #expect(zip(huge, decoded).allSatisfy { abs(Double($0) - Double($1)) <= abs(Double($0)) * 0x1p-4 + 1e37 * 0.01 })
        }
        // Tiny rows keep their relative precision in the scaled formats.
        let tiny: [Float] = [1e-30, -2e-30, 5e-31]
        for storage in [VectorStorage.fp8, .bf16] {
            let decoded = Self.roundTrip(tiny, storage).decoded
            #expect(zip(tiny, decoded).allSatisfy { abs($0 - $1) <= abs($0) * 0.07 }, "\(storage): \(decoded)")
        }
        // fp16 flushes what lies below its smallest subnormal to zero.
        #expect(Self.roundTrip(tiny, .fp16).decoded == [0, 0, 0])
    }

    @Test("NaN and infinities are refused by every quantized format, at their element", arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteRefused(value: Float) {
        for storage in VectorStorage.allCases where storage != .fp32 {
            #expect(Self.roundTrip([0.5, -1, value, 2], storage).bad == 2, "\(storage)")
        }
    }

    @Test("fp8 codes: every value e4m3 holds encodes to itself, and the codec's table of values matches the definition")
    func fp8Codes() {
        for (code, value) in VectorCodec.fp8Values.enumerated() where code & 0x7F != 0x7F {
            #expect(VectorCodec.fp8(value) == UInt8(code) || value == 0, "code \(code)")
            #expect(Self.e4m3.contains(Double(abs(value))))
        }
        #expect(VectorCodec.fp8(1000) == 0x7E)
        #expect(VectorCodec.fp8(-1000) == 0xFE)
    }

    @Test("stored row sizes: parameters in 8 bytes, codes, and padding to 8 bytes; fp32 is the floats alone")
    func rowBytes() {
        #expect(VectorStorage.fp32.rowBytes(dim: 128) == 512)
        #expect(VectorStorage.fp16.rowBytes(dim: 128) == 256)
        #expect(VectorStorage.bf16.rowBytes(dim: 3) == 8)
        #expect(VectorStorage.int8.rowBytes(dim: 128) == 136)
        #expect(VectorStorage.int8.rowBytes(dim: 3) == 16)
        #expect(VectorStorage.fp8.rowBytes(dim: 128) == 136)
        #expect(VectorStorage.fp32.rowBytes(dim: 3) == 12)
        #expect(VectorStorage.fp16.rowBytes(dim: 64) == 128)
    }

    // MARK: The hash map tier

    @Test("the hash map stores each format and returns the reference's rows; missing keys get the default", arguments: VectorStorage.allCases)
    func hashMapTable(storage: VectorStorage) throws {
        let store = HashMapStore(partitions: 3)
        let dim = 24
        let table = try store.createTable("hps_et.m.t", vecSize: dim, members: 2, expectedKeys: 1000, storage: storage)
        let rows = RandomTable(count: 1000, vecSize: dim, seed: 11 + UInt64(storage.kernelCode))
        _ = try rows.keys.withUnsafeBufferPointer { k in
            try rows.vectors.withUnsafeBufferPointer { try table.insert(member: 1, keys: k, vectors: $0, parallelism: 2) }
        }
        let keys = rows.keys + [12_345_678_901]
        let output = try table.lookupRows(keys, member: 1, defaultValue: -7)
        for (i, key) in keys.enumerated() {
            let got = Array(output[(i * dim)..<((i + 1) * dim)])
            if i < rows.keys.count {
                let expected = Self.reference(Array(rows.row(i)), storage)
                #expect(zip(got, expected).allSatisfy { Self.close($0, $1) }, "key \(key)")
            } else {
                #expect(got == [Float](repeating: -7, count: dim))
            }
        }
        // Member 0 was given none of them.
        #expect(try table.lookupRows([rows.keys[0]], member: 0, defaultValue: 1) == [Float](repeating: 1, count: dim))
    }

    @Test("an insert with a NaN is refused naming the table, the key and the element; the keys before it are stored, the row's key is not")
    func hashMapRefusesNaN() throws {
        let store = HashMapStore(partitions: 1)
        let table = try store.createTable("hps_et.m.t", vecSize: 2, members: 1, expectedKeys: 4, storage: .int8)
        let keys: [Int64] = [5, 6]
        let vectors: [Float] = [1, 2, 3, .nan]
        let error = #expect(throws: StoreError.self) {
            try keys.withUnsafeBufferPointer { k in
                try vectors.withUnsafeBufferPointer { try table.insert(member: 0, keys: k, vectors: $0, parallelism: 1) }
            }
        }
        #expect(error == .unrepresentable(table: "hps_et.m.t", key: 6, element: 1, value: .nan, storage: .int8))
        #expect(error?.description.contains("key 6 of hps_et.m.t has nan at element 1, which vector_storage int8 cannot store") == true)
        #expect(table.count == 1)
        #expect(try table.lookupRows([5, 6], member: 0, defaultValue: 0) == [1, 2, 0, 0])
    }

    @Test("a store that keeps float32 only refuses another format, naming it and the table")
    func float32OnlyStore() {
        let store = Float32OnlyStore()
        #expect(throws: StoreError.storageUnsupported(kind: "test_store", table: "hps_et.m.t", storage: .fp16)) {
            try store.createTable("hps_et.m.t", vecSize: 4, members: 1, expectedKeys: 1, storage: .fp16)
        }
        #expect(throws: Never.self) { try store.createTable("hps_et.m.t", vecSize: 4, members: 1, expectedKeys: 1, storage: .fp32) }
    }

    @Test("host memory per key at vec 128: int8 takes at most 0.3 × fp32's, fp16 about half")
    func memoryPerKey() throws {
        var bytes: [VectorStorage: Double] = [:]
        for storage in [VectorStorage.fp32, .fp16, .int8] {
            let table = HashMapTable(tag: "t", vecSize: 128, storage: storage, members: 1, partitions: 1,
                                     expectedKeys: 100_000, overflow: .unbounded)
            bytes[storage] = Double(table.partitions[0].bucketCount * 64 + table.partitions[0].rowCapacity * table.rowBytes)
        }
        #expect(bytes[.int8]! <= 0.3 * bytes[.fp32]!)
        #expect(bytes[.fp16]! <= 0.52 * bytes[.fp32]!)
    }

    // MARK: Configuration and the whole server

    @Test("vector_storage is read and written back; fp8_quant means fp8; the two disagreeing is an error naming vector_storage")
    func configuration() throws {
        let base = try TemporaryDirectory(prefix: "hps-storage-config")
        defer { base.remove() }
        func parse(_ extra: [(String, JSONValue)]) throws -> HPSConfiguration {
            let json = TestConfiguration.json(tables: [TableSpec(name: "t", folder: base.path, vecSize: 4)], modelExtra: extra)
            return try HPSConfiguration.parse(json: json.serialized())
        }
        #expect(try parse([]).models[0].vectorStorage == .fp32)
        #expect(try parse([("vector_storage", "int8")]).models[0].vectorStorage == .int8)
        let fp8 = try parse([("fp8_quant", .bool(true))])
        #expect(fp8.models[0].vectorStorage == .fp8)
        #expect(fp8.warnings.isEmpty)
        let again = try HPSConfiguration.parse(json: fp8.jsonValue().serialized())
        #expect(again.models[0] == fp8.models[0])
        #expect(throws: ConfigurationError.self) { try parse([("fp8_quant", .bool(true)), ("vector_storage", "fp16")]) }
        let unknown = #expect(throws: ConfigurationError.self) { try parse([("vector_storage", "int4")]) }
        #expect(unknown?.description.contains("models[0].vector_storage") == true)
        #expect(unknown?.description.contains("fp32, fp16, bf16, int8, fp8") == true)
    }

    @Test("a server with vector_storage int8 answers every key with its quantized row, through the session")
    func serverLookups() throws {
        let directory = try TemporaryDirectory(prefix: "hps-storage-server")
        defer { directory.remove() }
        let rows = RandomTable(count: 300, vecSize: 16, seed: 99)
        let folder = joinPath(directory.path, "t")
        try rows.write(to: folder)
        for storage in [VectorStorage.int8, .fp8, .fp16] {
            let json = TestConfiguration.json(tables: [TableSpec(name: "t", folder: folder, vecSize: 16, defaultValue: 3)],
                                              modelExtra: [("vector_storage", .string(storage.rawValue))])
            let server = try TestConfiguration.server(json, in: directory.path)
            let session = try server.session(model: "m")
            let got = try session.lookup(table: 0, keys: rows.keys + [-1])
            let expected = (0..<rows.keys.count).flatMap { Self.reference(Array(rows.row($0)), storage) }
                + [Float](repeating: 3, count: 16)
            #expect(zip(got, expected).allSatisfy { Self.close($0, $1) }, "\(storage)")
        }
    }

    @Test("a model file with an infinity is refused at load with vector_storage fp16, naming the table and the key")
    func serverRefusesInfinity() throws {
        let directory = try TemporaryDirectory(prefix: "hps-storage-inf")
        defer { directory.remove() }
        var rows = RandomTable(count: 10, vecSize: 4, seed: 3)
        rows.vectors[4 * 7 + 2] = .infinity
        let folder = joinPath(directory.path, "t")
        try rows.write(to: folder)
        let json = TestConfiguration.json(tables: [TableSpec(name: "t", folder: folder, vecSize: 4)],
                                          modelExtra: [("vector_storage", "fp16")])
        let error = #expect(throws: HPSError.self) { try TestConfiguration.server(json, in: directory.path) }
        #expect(error?.code == .store)
        #expect(error?.description.contains("key \(rows.keys[7]) of hps_et.m.t has inf at element 2, which vector_storage fp16 cannot store") == true)
    }
}

/// A store that keeps float32 only: the protocol's default for other formats.
private final class Float32OnlyStore: EmbeddingStore {
    let kind = "test_store"
    func createTable(_ tag: String, vecSize: Int, members: Int, expectedKeys: Int) throws(StoreError) -> any EmbeddingStoreTable {
        HashMapTable(tag: tag, vecSize: vecSize, members: members, partitions: 1, expectedKeys: expectedKeys, overflow: .unbounded)
    }
    func table(_ tag: String) -> (any EmbeddingStoreTable)? { nil }
    func dropTable(_ tag: String) {}
    var tableTags: [String] { [] }
}

extension EmbeddingStoreTable {
    /// Looks up `keys` of one member into a fresh array.
    func lookupRows(_ keys: [Int64], member: Int, defaultValue: Float) throws -> [Float] {
        var output = [Float](repeating: .nan, count: keys.count * vecSize)
        let defaults = [Float](repeating: defaultValue, count: memberCount)
        keys.withUnsafeBufferPointer { k in
            output.withUnsafeMutableBufferPointer { o in
                defaults.withUnsafeBufferPointer { d in
                    let runs = [LookupRun(member: member, keys: k.baseAddress!, count: keys.count, output: o.baseAddress!)]
                    _ = runs.withUnsafeBufferPointer { lookup($0, defaults: d, missed: nil, parallelism: 1) }
                }
            }
        }
        return output
    }
}
