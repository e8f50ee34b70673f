//! Maps librados/librbd errnos to the image model's semantic errors.

use blockback_core::image::ImageError;

use crate::ffi::Errno;

/// The semantic error for `errno` returned while working on `what`
/// (a message naming the pool, image or snapshot).
pub(crate) fn from_errno(errno: Errno, what: impl Into<String>) -> ImageError {
    let what = what.into();
    match errno.0 {
        libc::ENOENT => ImageError::NotFound { what },
        libc::EEXIST => ImageError::Exists { what },
        libc::EBUSY => ImageError::Busy { what },
        libc::ENOTEMPTY => ImageError::HasSnapshots { what },
        libc::EROFS => ImageError::ReadOnly { what },
        libc::EACCES | libc::EPERM => ImageError::PermissionDenied { what },
        libc::EINVAL => ImageError::Invalid {
            what,
            why: "rejected by librbd (EINVAL)".into(),
        },
        // What librados reports once rados_osd_op_timeout or
        // rados_mon_op_timeout passes: the cluster stopped answering.
        libc::ETIMEDOUT => ImageError::Backend {
            what,
            msg: format!(
                "Ceph is unreachable: the cluster did not answer in time (check that \
                 its monitors and OSDs are up and reachable from this host, e.g. \
                 `ceph -s`; the wait is rados_osd_op_timeout / rados_mon_op_timeout) ({})",
                errno_text(libc::ETIMEDOUT)
            ),
        },
        n => ImageError::Backend {
            what,
            msg: errno_text(n),
        },
    }
}

/// "No such file or directory (errno 2)"-style text for messages.
pub(crate) fn errno_text(n: i32) -> String {
    let text = std::io::Error::from_raw_os_error(n).to_string();
    // std appends " (os error N)"; say it once, our way.
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{text} (errno {n})")
}

/// The error for Ceph's client libraries missing on this machine.
pub(crate) fn libs_missing(msg: String) -> ImageError {
    ImageError::Backend {
        what: "Ceph".into(),
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: i32) -> ImageError {
        from_errno(Errno(n), "volumes/img")
    }

    #[test]
    fn maps_each_documented_errno() {
        assert!(matches!(map(libc::ENOENT), ImageError::NotFound { .. }));
        assert!(matches!(map(libc::EEXIST), ImageError::Exists { .. }));
        assert!(matches!(map(libc::EBUSY), ImageError::Busy { .. }));
        assert!(matches!(
            map(libc::ENOTEMPTY),
            ImageError::HasSnapshots { .. }
        ));
        assert!(matches!(map(libc::EROFS), ImageError::ReadOnly { .. }));
        assert!(matches!(
            map(libc::EACCES),
            ImageError::PermissionDenied { .. }
        ));
        assert!(matches!(
            map(libc::EPERM),
            ImageError::PermissionDenied { .. }
        ));
        assert!(matches!(map(libc::EINVAL), ImageError::Invalid { .. }));
    }

    #[test]
    fn other_errnos_keep_their_text_and_subject() {
        let msg = map(libc::ETIMEDOUT).to_string();
        assert!(msg.contains("volumes/img"), "{msg}");
        assert!(msg.contains("errno 110"), "{msg}");
        assert!(msg.contains("did not answer in time"), "{msg}");
        let msg = map(libc::EIO).to_string();
        assert!(msg.ends_with("Input/output error (errno 5)"), "{msg}");
    }
}
