//! nestrank: rerank a shop's daily specials on the device.
//!
//! The core is pure Rust and is compiled twice: natively for the
//! `model-builder` (build, evaluate, push) and to WebAssembly for the phone
//! and the edge. Only the `wasm` module (compiled for `wasm32` alone) knows about
//! JavaScript.
//!
//! ```
//! use nestrank::{Recommender, Event};
//! # let bytes = nestrank::testing::tiny_model().to_bytes();
//! let mut rec = Recommender::from_bytes(&bytes)?;
//! let out = rec.rerank_ids(&["b", "c", "a"], &[("a", Event::Cart, 1_000.0)], 2_000.0, true)?;
//! assert_eq!(out.items[0], "a"); // the item in the cart comes first
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod calendar;
pub mod codec;
pub mod experiment;
pub mod factors;
pub mod format;
pub mod hash;
pub mod model;
pub mod numeric;
pub mod packed;
pub mod params;
pub mod profile;
pub mod rank;
pub mod recommender;
pub mod rules;
pub mod ruleset;
pub mod score;
pub mod signals;
pub mod stage;
pub mod testing;
pub mod usertable;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
pub mod wire;

pub use format::DecodeError;
pub use model::{Model, ModelParts};
pub use rank::{RankerKind, RankerParams, Ranking, Reason};
pub use recommender::{IdRanking, Recommender};
pub use rules::{RuleSet, RulesError};
pub use score::{RerankError, Scratch};
pub use signals::{Event, Signals};
