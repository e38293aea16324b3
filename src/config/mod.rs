//! The configuration files a container host already has, read as skopeo, podman and CRI-O
//! read them. Pure parsing and lookup; the transports do the IO these files describe.

pub mod certs_d;
pub mod registries_conf;
pub mod registries_d;
