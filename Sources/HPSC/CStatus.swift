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
        case let error as HPSError:
            switch error.code {
            case .invalidConfiguration:
                // hps.h promises HPS_BACKEND for a tier this build lacks.
                if case .backendUnavailable = error.cause as? ConfigurationError {
                    status = HPS_BACKEND
                } else {
                    status = HPS_CONFIGURATION
                }
            case .modelFiles: status = HPS_MODEL_FILES
            case .store: status = HPS_BACKEND
            case .device: status = HPS_DEVICE
            case .unknownModel: status = HPS_NOT_FOUND
            default: status = HPS_INTERNAL
            }
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
            status = HPS_INTERNAL
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
