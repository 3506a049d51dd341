//! medgate's data plane.
//!
//! The Pingora proxy arrives with the data-plane issue; until then this crate only states
//! that, so `medgate serve` can say so instead of pretending to proxy.
#![forbid(unsafe_code)]

/// Whether this build carries a working data plane.
pub const AVAILABLE: bool = false;

/// What `medgate serve` and `medgate proxy` print while the data plane is not built yet.
pub const NOT_AVAILABLE: &str =
    "the data plane (proxy) is not available in this build yet; the control plane runs alone";
