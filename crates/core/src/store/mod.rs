//! The embedded local store (see docs/design.md). Being written.
