//! Gradient shards: the on-disk capture format (docs/shard-format.md) and its verified,
//! parallel, bounded-memory reduction into per-layer AGOP accumulators.
//!
//! - [`manifest`]: `manifest.json`, parsed and validated with serde.
//! - [`shard_file`]: one `shards/NNNNNN.safetensors` file: writing it atomically with its blake3,
//!   parsing its header, checking each layer tensor against the manifest.
//! - [`verify`]: every problem of a capture, shards checked in parallel.
//! - [`reader`]: one shard read once, in file order, into a reusable buffer, hashed as it goes.
//! - [`stream`]: one verified pass over a shard, its selected rows handed out block by block.
//! - [`reduce`]: shards reduced into accumulators across shards in parallel, memory checked first.
//! - [`partial`]: partial accumulators (`agop.safetensors` plus the shards they count) and their
//!   exact merge across captures, processes and machines.

pub mod manifest;
pub mod partial;
pub mod reader;
pub mod reduce;
pub mod shard_file;
pub mod stream;
pub mod verify;

pub use manifest::{LayerInfo, Manifest, ShardInfo, MANIFEST_FILE};
pub use partial::{
    input_kind, load_partial, merge_partials, read_partial, write_partial, InputKind, Partial,
};
pub use reduce::{reduce_capture, reduce_capture_shards, Reduction};
pub use shard_file::{file_blake3, write_shard};
pub use stream::{stream_shard, RowBlock};
pub use verify::{verify_capture, Problem, VerifyReport};
