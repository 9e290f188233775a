import CHPS
import Glibc
import HPS
import HPSCUDA

/// A failure of a C interface call: its `hps_status` and its sentence.
struct CFailure: Error {
    let status: hps_status
    let message: String

    init(_ status: hps_status, _ message: String) {
        self.status = status
        self.message = message
    }

    /// The status and sentence of any error a call meets: the error's own
    /// description, written as the command line writes it (capitalized,
    /// ending with a period).
    init(_ error: any Error) {
        if let failure = error as? CFailure {
            self = failure
            return
        }
        let status: hps_status
        switch error {
        case is ConfigurationError:
            status = HPS_CONFIGURATION
        case is ModelFileError:
            status = HPS_MODEL_FILES
        case is StoreError:
            status = HPS_BACKEND
        case is CUDAError:
            status = HPS_DEVICE
        case let error as LookupError:
            switch error {
            case .unknownModel, .unknownTable: status = HPS_NOT_FOUND
            case .tooManyKeys, .keyOutOfRange: status = HPS_KEYS
            case .notOnDevice, .device: status = HPS_DEVICE
            case .destination, .shape, .invalidOffsets, .deviceKeys: status = HPS_INVALID_ARGUMENT
            }
        default:
            // A tier's own error (RocksDB, the mapped files) thrown while a model loads.
            let module = String(reflecting: type(of: error))
            status = module.hasPrefix("HPSRocksDB.") || module.hasPrefix("HPSMapped.") || module.hasPrefix("HPSRedis.")
                ? HPS_BACKEND : HPS_INTERNAL
        }
        self.init(status, Self.sentence(String(describing: error)))
    }

    /// `text` as one sentence ending with a period, its first word as the
    /// error wrote it (often a JSON path or a name, which must read as the
    /// user wrote it), as the command line prints it after `hps: `.
    static func sentence(_ text: String) -> String {
        var text = text
        if !text.hasSuffix(".") { text += "." }
        return text
    }

    /// Runs a call's body, returning HPS_OK, or the failure's status with its
    /// sentence copied to `sentence` (if given; freed with `hps_free_error`).
    static func reporting(_ sentence: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                          _ body: () throws -> Void) -> hps_status {
        sentence?.pointee = nil
        do {
            try body()
            return HPS_OK
        } catch {
            let failure = CFailure(error)
            sentence?.pointee = strdup(failure.message)
            return failure.status
        }
    }
}
