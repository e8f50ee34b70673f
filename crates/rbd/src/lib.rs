//! Ceph RBD backend. Being written.
