//! Format sniffing of a signature blob by its first byte. (Stub: being written.)
