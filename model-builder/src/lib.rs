//! The nestrank model builder: import logs, build and publish model blobs,
//! verify them, and evaluate rankers with the daily-specials replay.
//!
//! The binary `model-builder` is a thin CLI over these modules; it links the
//! same `nestrank` core the wasm module is compiled from.

pub mod als;
pub mod build;
pub mod data;
#[cfg(feature = "engine")]
pub mod engine;
pub mod eval;
pub mod family;
pub mod import;
pub mod next_item;
pub mod options;
pub mod pipeline;
pub mod profiles;
pub mod progress;
pub mod publish;
pub mod push;
pub mod replay;
pub mod report;
pub mod report_html;
pub mod rng;
pub mod rows;
#[cfg(feature = "engine")]
pub mod runtime;
pub mod shop;
pub mod simulate;
pub mod stage;
pub mod stage_eval;
pub mod synth;
pub mod train;
pub mod users;
