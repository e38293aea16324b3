//! The copy pipeline. (Being written: the signature modes and report types are here.)

pub mod report;
pub mod signatures;
