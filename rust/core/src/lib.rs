//! nil-core: the numerical heart of nil (Neural Interaction Law), with no Python in it.
//!
//! - [`gram`]: streaming AGOP accumulation (1/n)·GᵀG in f64.
//! - [`stats`]: interaction statistics (AOFE, ratios, weighted cos², spectrum, null baselines).
//! - [`superposition`]: statistics of a feature matrix W, streamed without a V×V matrix.
//! - [`nfa`]: Neural Feature Ansatz correlation of WᵀW with AGOP^γ and the fit of γ.
//! - [`agop_file`]: safetensors files of accumulators, checksummed, written atomically.
//! - [`limits`]: the documented maximum dims and counts, and the memory check before allocating.
//! - [`fsutil`]: atomic writes and reads that refuse anything but a regular file.
//! - [`interval`]: efficient-interval fitting of a runs table; [`corr`]: correlation statistics.
//! - [`subsets`]: fast transforms over subsets (zeta, Möbius, co-Möbius, OR interactions);
//!   [`andor`]: the sparse AND–OR decomposition of symbolic interactions.

// `!(x > 0.0)` is deliberate throughout: it is true for NaN, which must take the degenerate path.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod agop_file;
pub mod andor;
pub mod corr;
pub mod dtype;
pub mod eig;
pub mod error;
pub mod fsutil;
pub mod gram;
pub mod interval;
pub mod limits;
pub mod nfa;
pub mod shards;
pub mod special;
pub mod stats;
pub mod subsets;
pub mod superposition;

pub use dtype::{Bf16Bits, F16Bits, RowDType, Widen};
pub use error::{NilError, Result};
pub use gram::{AgopAccumulator, NonFinitePolicy};
pub use stats::{interaction_stats, Convention, InteractionStats};
pub use superposition::{superposition_stats, Summary, SuperpositionStats};
