/// How a model's GPU tables are spread over its GPUs (`gpu_sharding`, an
/// extension of ours; HugeCTR always replicates).
///
/// The shards are `gpu_shards` (default: one per device of
/// `deployed_device_list`), placed on those devices in turn: shard s on
/// `effectiveDevices[s % effectiveDevices.count]`, so several shards may
/// share one GPU (which is how the routing is tested on a machine of one GPU).
public enum GPUSharding: String, Sendable, Equatable, CaseIterable {
    /// Every device holds every table (HugeCTR's behaviour, the default).
    case replicated
    /// Each key's row is held by one shard, chosen by a hash of the key
    /// (`RowShard`); a lookup routes each key to its owner and gathers the
    /// rows back. A fusion group larger than one GPU fits in several.
    case rowWise = "row_wise"
    /// Each fusion group is held whole by one shard, the groups placed to
    /// balance the shards' bytes (`ShardPlacement`); a lookup asks each
    /// group's shard.
    case tableWise = "table_wise"
}
