//! The conformance suite every image backend runs. Being written.
