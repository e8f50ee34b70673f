//! SQLite implementation of [`blockback_core::catalog::Catalog`]. Being written.
