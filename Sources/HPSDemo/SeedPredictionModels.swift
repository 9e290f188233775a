package import HPS
package import HPSCUDA

// The seed model's dense head, for the demo and `hps serve --demo`: the
// prediction models themselves know nothing of the seed model.

extension PredictionModel {
    /// The seed model's dense head over `session` (its tables loaded from `model`).
    package init(session: LookupSession, seed model: SeedModel) throws(LookupError) {
        try self.init(session: session, dense: model.denseHead, keysPerSample: model.keysPerSample)
    }
}

extension GPUPredictionModel {
    /// The seed model's dense head over `session` (its tables loaded from
    /// `model`), computed on the session's GPU.
    package convenience init(session: LookupSession, seed model: SeedModel) throws(LookupError) {
        try self.init(session: session, dense: model.denseHead, keysPerSample: model.keysPerSample)
    }
}
