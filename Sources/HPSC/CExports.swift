public import CHPS
import Glibc
import HPS

// The functions of `hps.h` (Sources/CHPS/include/hps.h), exported with C
// names. Each checks its arguments, runs the call through the same
// `LookupSession` as the server and the command line, and reports a failure
// as a status and one sentence (`CFailure.reporting`).

/// The handle behind an `hps_handle *`.
private func opened(_ handle: OpaquePointer?) throws -> OpenedConfiguration {
    guard let handle else { throw CFailure(HPS_INVALID_ARGUMENT, "The handle is NULL; open a configuration with hps_open first.") }
    return Unmanaged<OpenedConfiguration>.fromOpaque(UnsafeRawPointer(handle)).takeUnretainedValue()
}

/// A C string argument, or the failure naming the NULL one.
private func string(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
    guard let pointer else { throw CFailure(HPS_INVALID_ARGUMENT, "The \(name) is NULL.") }
    return String(cString: pointer)
}

@_cdecl("hps_open")
public func hps_open(_ configPath: UnsafePointer<CChar>?, _ device: UnsafePointer<CChar>?,
                     _ handle: UnsafeMutablePointer<OpaquePointer?>?,
                     _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    handle?.pointee = nil
    return CFailure.reporting(error) {
        guard let handle else { throw CFailure(HPS_INVALID_ARGUMENT, "The handle to set is NULL.") }
        let path = try string(configPath, "configuration path")
        let opened = try OpenedConfiguration(path: path, device: device.map { String(cString: $0) } ?? "auto")
        handle.pointee = OpaquePointer(Unmanaged.passRetained(opened).toOpaque())
    }
}

@_cdecl("hps_close")
public func hps_close(_ handle: OpaquePointer?) {
    guard let handle else { return }
    let opened = Unmanaged<OpenedConfiguration>.fromOpaque(UnsafeRawPointer(handle))
    opened.takeUnretainedValue().close()
    opened.release()
}

@_cdecl("hps_table_info")
public func hps_table_info(_ handle: OpaquePointer?, _ model: UnsafePointer<CChar>?, _ table: UnsafePointer<CChar>?,
                           _ index: UnsafeMutablePointer<Int32>?, _ vecSize: UnsafeMutablePointer<Int32>?,
                           _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    CFailure.reporting(error) {
        let session = try opened(handle).server.session(model: try string(model, "model name"))
        let found = try session.tableIndex(try string(table, "table name"))
        index?.pointee = Int32(found)
        vecSize?.pointee = Int32(session.model.vecSizes[found])
    }
}

@_cdecl("hps_table_count")
public func hps_table_count(_ handle: OpaquePointer?, _ model: UnsafePointer<CChar>?, _ count: UnsafeMutablePointer<Int32>?,
                            _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    CFailure.reporting(error) {
        let session = try opened(handle).server.session(model: try string(model, "model name"))
        count?.pointee = Int32(session.model.tableNames.count)
    }
}

/// The parts of a lookup, checked: not NULL when there are some, a key
/// type of the header's, tables of the model, keys not NULL when counted.
private func checkedParts(_ parts: UnsafePointer<hps_lookup_part>?, _ partCount: UInt64, keyType: hps_key_type,
                          model: String, tables: [String]) throws -> UnsafeBufferPointer<hps_lookup_part> {
    let checked = UnsafeBufferPointer(start: parts, count: parts == nil ? 0 : Int(clamping: partCount))
    guard checked.count == Int(clamping: partCount) else { throw CFailure(HPS_INVALID_ARGUMENT, "The parts are NULL but part_count is \(partCount).") }
    guard keyType == HPS_KEYS_INT32 || keyType == HPS_KEYS_INT64 else {
        throw CFailure(HPS_INVALID_ARGUMENT, "The key type must be HPS_KEYS_INT32 (0) or HPS_KEYS_INT64 (1), not \(keyType.rawValue).")
    }
    for part in checked {
        guard part.table >= 0 && Int(part.table) < tables.count else {
            throw CFailure(HPS_NOT_FOUND, "Model \(model) has no table \(part.table); its tables are \(tables.joined(separator: ", ")) (indices 0–\(tables.count - 1)).")
        }
        guard part.keys != nil || part.count == 0 else {
            throw CFailure(HPS_INVALID_ARGUMENT, "The keys of table \(tables[Int(part.table)]) are NULL but their count is \(part.count).")
        }
    }
    return checked
}

/// The output, which may be NULL only when it holds no floats.
private func checkedOutput(_ output: UnsafeMutablePointer<Float>?, _ floats: Int) throws -> UnsafeMutablePointer<Float> {
    guard let output = output ?? (floats == 0 ? UnsafeMutablePointer<Float>(bitPattern: 8) : nil) else {
        throw CFailure(HPS_INVALID_ARGUMENT, "The output is NULL.")
    }
    return output
}

/// Runs `body` with each part's keys as Int64: in place for 64-bit keys,
/// widened into one buffer for 32-bit ones (keys are Int64 inside).
private func withWideKeys(_ parts: UnsafeBufferPointer<hps_lookup_part>, keyType: hps_key_type,
                          _ body: ([UnsafeBufferPointer<Int64>]) throws -> Void) throws {
    guard keyType == HPS_KEYS_INT32 else {
        try body(parts.map { UnsafeBufferPointer(start: $0.keys?.assumingMemoryBound(to: Int64.self), count: Int($0.count)) })
        return
    }
    let total = parts.reduce(0) { $0 + Int($1.count) }
    let wide = UnsafeMutableBufferPointer<Int64>.allocate(capacity: max(1, total))
    defer { wide.deallocate() }
    var keys: [UnsafeBufferPointer<Int64>] = []
    var offset = 0
    for part in parts {
        let n = Int(part.count)
        let narrow = UnsafeBufferPointer(start: part.keys?.assumingMemoryBound(to: Int32.self), count: n)
        for i in 0..<n { wide[offset + i] = Int64(narrow[i]) }
        keys.append(UnsafeBufferPointer(rebasing: wide[offset..<(offset + n)]))
        offset += n
    }
    try body(keys)
}

@_cdecl("hps_lookup")
public func hps_lookup(_ handle: OpaquePointer?, _ model: UnsafePointer<CChar>?, _ table: Int32, _ keys: UnsafeRawPointer?,
                       _ keyType: hps_key_type, _ count: UInt64, _ output: UnsafeMutablePointer<Float>?, _ outputFloats: UInt64,
                       _ memory: hps_memory, _ device: Int32,
                       _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    var part = hps_lookup_part(table: table, keys: keys, count: count)
    return hps_lookup_tables(handle, model, &part, 1, keyType, output, outputFloats, memory, device, error)
}

@_cdecl("hps_lookup_tables")
public func hps_lookup_tables(_ handle: OpaquePointer?, _ model: UnsafePointer<CChar>?, _ parts: UnsafePointer<hps_lookup_part>?,
                              _ partCount: UInt64, _ keyType: hps_key_type, _ output: UnsafeMutablePointer<Float>?,
                              _ outputFloats: UInt64, _ memory: hps_memory, _ device: Int32,
                              _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    CFailure.reporting(error) {
        let opened = try opened(handle)
        let name = try string(model, "model name")
        let session = try opened.session(model: name, memory: memory, device: device)
        let parts = try checkedParts(parts, partCount, keyType: keyType, model: name, tables: session.model.tableNames)
        // The session checks that the output holds the keys' vectors exactly.
        let floats = Int(clamping: outputFloats)
        let output = try checkedOutput(output, floats)
        try withWideKeys(parts, keyType: keyType) { keys in
            let lookupParts = zip(parts, keys).map { (table: Int($0.table), keys: $1) }
            let destination: LookupDestination = memory == HPS_MEMORY_DEVICE
                ? .device(DevicePointer(device: Int(device), address: UInt64(UInt(bitPattern: output))), count: floats)
                : .host(UnsafeMutableBufferPointer(start: output, count: floats))
            try session.lookup(lookupParts, into: destination)
        }
    }
}

@_cdecl("hps_lookup_device")
public func hps_lookup_device(_ handle: OpaquePointer?, _ model: UnsafePointer<CChar>?, _ parts: UnsafePointer<hps_lookup_part>?,
                              _ partCount: UInt64, _ keyType: hps_key_type, _ output: UnsafeMutablePointer<Float>?,
                              _ outputFloats: UInt64, _ device: Int32, _ stream: UnsafeMutableRawPointer?,
                              _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    CFailure.reporting(error) {
        let opened = try opened(handle)
        let name = try string(model, "model name")
        let session = try opened.session(model: name, memory: HPS_MEMORY_DEVICE, device: device)
        let parts = try checkedParts(parts, partCount, keyType: keyType, model: name, tables: session.model.tableNames)
        let output = try checkedOutput(output, Int(clamping: outputFloats))
        let type: KeyType = keyType == HPS_KEYS_INT64 ? .int64 : .int32
        let deviceParts = parts.map { part in
            (table: Int(part.table),
             keys: DeviceKeys(start: DevicePointer(device: Int(device), address: UInt64(UInt(bitPattern: part.keys))),
                              count: Int(clamping: part.count), type: type))
        }
        // The session checks the keys' type and the output's size.
        try session.lookup(deviceKeys: deviceParts, after: DeviceStream(handle: UInt(bitPattern: stream)),
                           into: .device(DevicePointer(device: Int(device), address: UInt64(UInt(bitPattern: output))),
                                         count: Int(clamping: outputFloats)))
    }
}

@_cdecl("hps_describe_model")
public func hps_describe_model(_ handle: OpaquePointer?, _ model: UnsafePointer<CChar>?,
                               _ description: UnsafeMutablePointer<hps_model_description>?,
                               _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    CFailure.reporting(error) {
        guard let description else { throw CFailure(HPS_INVALID_ARGUMENT, "The description to fill is NULL.") }
        let opened = try opened(handle)
        let session = try opened.session(model: try string(model, "model name"), memory: HPS_MEMORY_HOST, device: 0)
        description.pointee = hps_model_description(
            key_type: session.keyType == .int64 ? HPS_KEYS_INT64 : HPS_KEYS_INT32,
            table_count: Int32(session.model.tableNames.count), fusion_group_count: Int32(session.plan.groups.count),
            device: Int32(session.device ?? -1))
    }
}

@_cdecl("hps_lookup_requests")
public func hps_lookup_requests(_ handle: OpaquePointer?, _ model: UnsafePointer<CChar>?,
                                _ requests: UnsafePointer<hps_lookup_request>?, _ requestCount: UInt64, _ keyType: hps_key_type,
                                _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> hps_status {
    CFailure.reporting(error) {
        let opened = try opened(handle)
        let name = try string(model, "model name")
        let session = try opened.session(model: name, memory: HPS_MEMORY_HOST, device: 0)
        let requests = UnsafeBufferPointer(start: requests, count: requests == nil ? 0 : Int(clamping: requestCount))
        guard requests.count == Int(clamping: requestCount) else {
            throw CFailure(HPS_INVALID_ARGUMENT, "The requests are NULL but request_count is \(requestCount).")
        }
        let parts = requests.map { hps_lookup_part(table: $0.table, keys: $0.keys, count: $0.count) }
        try parts.withUnsafeBufferPointer { parts in
            let checked = try checkedParts(parts.baseAddress, UInt64(parts.count), keyType: keyType, model: name,
                                           tables: session.model.tableNames)
            for request in requests where request.output == nil && request.count > 0 {
                throw CFailure(HPS_INVALID_ARGUMENT, "The output of table \(session.model.tableNames[Int(request.table)]) is NULL but its count is \(request.count).")
            }
            try withWideKeys(checked, keyType: keyType) { keys in
                let runs = zip(requests, keys).map { request, keys in
                    LookupRun(member: Int(request.table), keys: keys.baseAddress ?? UnsafePointer(bitPattern: 8)!, count: keys.count,
                              output: request.output ?? UnsafeMutablePointer(bitPattern: 8)!)
                }
                try runs.withUnsafeBufferPointer { _ = try session.lookup($0) }
            }
        }
    }
}

@_cdecl("hps_free_error")
public func hps_free_error(_ error: UnsafeMutablePointer<CChar>?) {
    free(error)
}
