//! Backup, restore, verify, delete and gc. Being written.
