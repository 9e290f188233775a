import Testing

@testable import HPS

struct InspectionTests {
    @Test("--storage: each format's error against the files, within its bound; NaN and out-of-range rows counted, not measured")
    func storageErrors() throws {
        let directory = try TemporaryDirectory(prefix: "hps-inspect-storage")
        defer { directory.remove() }
        var table = RandomTable(count: 200, vecSize: 8, seed: 4)
        table.vectors[3 * 8 + 1] = .nan
        table.vectors[5 * 8] = 70_000
        let folder = joinPath(directory.path, "t")
        try table.write(to: folder)
        let inspection = try ModelInspection(path: folder, storages: VectorStorage.allCases)
        let described = try #require(inspection.tables.first)
        #expect(described.nonFiniteElements == 1)
        let errors = Dictionary(uniqueKeysWithValues: described.storageErrors.map { ($0.storage, $0) })
        #expect(errors[.fp32]?.maxAbsolute == 0)
        #expect(errors[.fp32]?.unrepresentableRows == 0)
        // fp16 refuses the NaN row and the 70,000 row; the scaled formats the NaN row only.
        #expect(errors[.fp16]?.unrepresentableRows == 2)
        #expect(errors[.fp16]?.firstUnrepresentableKey == table.keys[3])
        #expect(errors[.int8]?.unrepresentableRows == 1)
        // Values in (-1, 1) but the 70,000 row: bf16 keeps 8 bits of significand.
        #expect(try #require(errors[.bf16]).maxRelative <= 0x1p-8)
        #expect(try #require(errors[.fp16]).maxRowRelative <= 0x1p-10)
        #expect(try #require(errors[.int8]).maxRowRelative <= 1.0 / 255)
        #expect(try #require(errors[.fp8]).maxRowRelative <= 0x1p-4)
        #expect(try #require(errors[.int8]).meanAbsolute > 0)
        let report = inspection.report()
        #expect(report.contains("1 element(s) are NaN or infinite"))
        #expect(report.contains("    fp16: absolute error max "))
        #expect(report.contains("2 row(s) cannot be stored (first: key \(table.keys[3]))"))
        #expect(ModelInspection.figure(0.000123456) == "1.235e-4")
        #expect(ModelInspection.figure(9.9996) == "1.000e1")
    }

    @Test("a configuration whose tables share keys reports the overlap")
    func overlapInConfiguration() throws {
        let directory = try TemporaryDirectory(prefix: "hps-inspect")
        defer { directory.remove() }
        // t0: keys 0..<100; t1: keys 60..<160 (40 shared, the first 60); t2: keys 1000..<1010, another vec size.
        try RandomTable(keys: (0..<100).map(Int64.init), vecSize: 4, seed: 1).write(to: joinPath(directory.path, "t0"))
        try RandomTable(keys: (60..<160).map(Int64.init), vecSize: 4, seed: 2).write(to: joinPath(directory.path, "t1"))
        try RandomTable(keys: (1000..<1010).map(Int64.init), vecSize: 2, seed: 3).write(to: joinPath(directory.path, "t2"))
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 4),
                                                   TableSpec(name: "t1", folder: "t1", vecSize: 4),
                                                   TableSpec(name: "t2", folder: "t2", vecSize: 2)], fuse: true)
        let path = try TestConfiguration.write(json, to: directory.path)

        let inspection = try ModelInspection(path: path)
        #expect(inspection.kind == "configuration")
        #expect(inspection.tables.map(\.name) == ["t0", "t1", "t2"])
        #expect(inspection.tables.map(\.group) == ["fused_embedding1", "fused_embedding1", "fused_embedding0"])
        #expect(inspection.overlaps.count == 1)
        let overlap = try #require(inspection.overlaps.first)
        #expect(overlap == ModelInspection.Overlap(model: "m", first: "t0", second: "t1", sharedKeys: 40,
                                                   exampleKey: 60, sameGroup: true))
        let report = inspection.report()
        #expect(report.contains("share 40 key(s), e.g. 60"))
        #expect(report.contains("fused together"))
    }

    @Test("shared keys between tables of different groups are not in the same group")
    func overlapAcrossGroups() throws {
        let directory = try TemporaryDirectory(prefix: "hps-inspect")
        defer { directory.remove() }
        try RandomTable(keys: [1, 2, 3], vecSize: 4, seed: 1).write(to: joinPath(directory.path, "t0"))
        try RandomTable(keys: [3, 4], vecSize: 2, seed: 2).write(to: joinPath(directory.path, "t1"))
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 4),
                                                   TableSpec(name: "t1", folder: "t1", vecSize: 2)], fuse: true)
        let inspection = try ModelInspection(path: try TestConfiguration.write(json, to: directory.path))
        #expect(inspection.overlaps == [ModelInspection.Overlap(model: "m", first: "t0", second: "t1", sharedKeys: 1,
                                                                exampleKey: 3, sameGroup: false)])
    }

    @Test("tables without shared keys report none")
    func noOverlap() throws {
        let directory = try TemporaryDirectory(prefix: "hps-inspect")
        defer { directory.remove() }
        try RandomTable(keys: [1, 2], vecSize: 2, seed: 1).write(to: joinPath(directory.path, "t0"))
        try RandomTable(keys: [3, 4], vecSize: 2, seed: 2).write(to: joinPath(directory.path, "t1"))
        let json = TestConfiguration.json(tables: [TableSpec(name: "t0", folder: "t0", vecSize: 2),
                                                   TableSpec(name: "t1", folder: "t1", vecSize: 2)], fuse: true)
        let inspection = try ModelInspection(path: try TestConfiguration.write(json, to: directory.path))
        #expect(inspection.overlaps.isEmpty)
        #expect(inspection.report().contains("no keys are shared between tables"))
    }

    @Test("a lone folder reports rows, distinct keys, vec size and key range")
    func loneFolder() throws {
        let directory = try TemporaryDirectory(prefix: "hps-inspect")
        defer { directory.remove() }
        let path = joinPath(directory.path, "table7")
        // 6 rows, 5 distinct keys from −5 to 40.
        try RandomTable(keys: [10, -5, 40, 10, 7, 8], vecSize: 3, seed: 4).write(to: path)

        let inspection = try ModelInspection(path: path)
        #expect(inspection.kind == "sparse model folder")
        #expect(inspection.overlaps.isEmpty)
        let table = try #require(inspection.tables.first)
        #expect(inspection.tables.count == 1)
        #expect(table.name == "table7")
        #expect(table.model == nil)
        #expect(table.rows == 6)
        #expect(table.distinctKeys == 5)
        #expect(table.vecSize == 3)
        #expect(table.keyRange == -5...40)
        let report = inspection.report()
        #expect(report.contains("6 keys, vec size 3, keys -5…40, 1 repeated key(s)"))
    }

    @Test("inspecting a path that does not exist is an error naming it")
    func missingPath() throws {
        let directory = try TemporaryDirectory(prefix: "hps-inspect")
        defer { directory.remove() }
        let path = joinPath(directory.path, "nothing.json")
        let error = #expect(throws: ModelFileError.self) { try ModelInspection(path: path) }
        #expect(error?.description.contains(path) == true)
    }
}
