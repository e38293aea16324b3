//! registries.d configuration and lookaside signature URLs. (Stub: being written.)
