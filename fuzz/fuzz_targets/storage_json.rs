//! cargo-fuzz target `storage_json`: see `targets::storage_json` in fuzz/targets_common.rs, which the corpus
//! replay (tests/fuzz_corpus.rs) runs too.
#![no_main]

#[path = "../targets_common.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::storage_json(data));
