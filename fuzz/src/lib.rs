//! What the fuzz targets check. Each target reads the fuzzer's bytes as a small program of
//! operations and checks the core against a model simple enough to be plainly right. The stable
//! tests in crates/core/tests/fuzzed.rs include these modules and replay the committed corpus.

pub mod address;
#[cfg(unix)]
pub mod channel;
pub mod frames;
mod input;
mod model;
