import FuzzSupport
@testable import HPS

/// The HugeCTR JSON configuration reader (`HPSConfiguration.parse`) and the
/// JSON parser under it, on arbitrary text.
///
/// Checks, beyond "no crash, no sanitizer report, no hang":
/// - a document the JSON parser accepts serializes to text it parses back to
///   the same value, compact and pretty;
/// - a configuration the reader accepts serializes (`jsonValue()`) to a
///   document the reader accepts again, giving the same configuration;
/// - every rejection carries a message (the error's description is not empty).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfiguration(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: input(data, size), as: UTF8.self)
    if let value = try? JSONValue.parse(text) {
        for pretty in [false, true] {
            let written = value.serialized(pretty: pretty)
            let again = try? JSONValue.parse(written)
            check(again == value, "JSON \(written) (pretty: \(pretty)) does not parse back to the value it was written from")
        }
    }
    do {
        let configuration = try HPSConfiguration.parse(json: text, baseDirectory: "/models")
        let written = configuration.jsonValue().serialized()
        do {
            let again = try HPSConfiguration.parse(json: written, baseDirectory: "/models")
            check(again == configuration, "the configuration written as \(written) reads back as another configuration")
        } catch {
            check(false, "the configuration written as \(written) is refused when read back: \(error)")
        }
    } catch {
        check(!error.description.isEmpty, "a configuration error without a message")
    }
    return 0
}
