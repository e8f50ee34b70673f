//! Raw files and block devices as images. Being written.
