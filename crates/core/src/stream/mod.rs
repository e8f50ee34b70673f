//! Ceph's diff and export stream formats. Being written.
