//! The copy pipeline. (Stub: being written.)
