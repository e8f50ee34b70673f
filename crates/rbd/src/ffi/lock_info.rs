//! Who holds a RADOS lock: the `lock` class's `get_info` call, and the
//! decoding of its reply, so a "busy" error can name the holder and say
//! when its lease runs out.
//!
//! The reply (`cls_lock_get_info_reply` in Ceph's encoding, little endian)
//! is a versioned struct (u8 version, u8 compat, u32 length) holding a map
//! (u32 count) of `locker_id_t` (versioned: entity name = u8 type + i64
//! number, then the cookie) to `locker_info_t` (versioned: expiration as
//! u32 seconds + u32 nanoseconds, the holder's address, its description),
//! then the lock type and tag. Strings are a u32 length and the bytes.
//! Each versioned struct is skipped to its end by its length, so fields a
//! newer Ceph appends are ignored.

use std::ffi::CStr;
use std::time::{Duration, SystemTime};

use super::{Errno, IoCtx};
use crate::encoding::Reader;

/// One holder of a lock, as the OSD records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Locker {
    pub cookie: String,
    pub description: String,
    /// When the lock lapses unless renewed; `None`: it never does.
    pub expires: Option<SystemTime>,
}

impl IoCtx {
    /// The holders of lock `name` on object `oid` (none when the object
    /// or the lock does not exist).
    pub(crate) fn lockers(&self, oid: &CStr, name: &CStr) -> Result<Vec<Locker>, Errno> {
        self.guard(|| {
            let input = get_info_op(name.to_bytes());
            match self.exec(oid, c"lock", c"get_info", &input, 64 * 1024) {
                Err(e) if e.0 == libc::ENOENT => Ok(Vec::new()),
                Err(e) => Err(e),
                Ok(out) => decode_reply(&out).ok_or(Errno(libc::EBADMSG)),
            }
        })
    }
}
/// `cls_lock_get_info_op`: version 1, compat 1, length, the lock name.
fn get_info_op(name: &[u8]) -> Vec<u8> {
    let mut out = vec![1u8, 1u8];
    out.extend_from_slice(&(name.len() as u32 + 4).to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name);
    out
}

fn decode_reply(bytes: &[u8]) -> Option<Vec<Locker>> {
    let mut reply = Reader(bytes).versioned()?;
    let count = reply.u32()?;
    let mut lockers = Vec::new();
    for _ in 0..count {
        let mut id = reply.versioned()?;
        id.take(1 + 8)?; // entity name: type and number
        let cookie = id.string()?;
        let mut info = reply.versioned()?;
        let (secs, nanos) = (info.u32()?, info.u32()?);
        skip_address(&mut info)?;
        let description = info.string()?;
        let expires = (secs != 0 || nanos != 0).then(|| {
            SystemTime::UNIX_EPOCH + Duration::new(u64::from(secs), nanos.min(999_999_999))
        });
        lockers.push(Locker {
            cookie,
            description,
            expires,
        });
    }
    Some(lockers)
}

/// `entity_addr_t`: a marker byte 1 then a versioned struct (what every
/// current OSD sends), or the legacy fixed form (marker 0: 3 more bytes,
/// the nonce and a 128-byte sockaddr_storage).
fn skip_address(r: &mut Reader<'_>) -> Option<()> {
    match r.u8()? {
        1 => r.versioned().map(|_| ()),
        0 => r.take(3 + 4 + 128).map(|_| ()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versioned(body: &[u8]) -> Vec<u8> {
        let mut out = vec![1, 1];
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    fn locker(cookie: &str, secs: u32, address: &[u8], description: &str) -> Vec<u8> {
        let mut id = vec![8u8]; // CEPH_ENTITY_TYPE_CLIENT
        id.extend_from_slice(&4242i64.to_le_bytes());
        id.extend(string(cookie));
        let mut info = secs.to_le_bytes().to_vec();
        info.extend_from_slice(&7u32.to_le_bytes());
        info.extend_from_slice(address);
        info.extend(string(description));
        info.extend_from_slice(b"later field");
        let mut out = versioned(&id);
        out.extend(versioned(&info));
        out
    }

    #[test]
    fn a_reply_with_both_address_forms_decodes() {
        let mut modern = vec![1u8];
        modern.extend(versioned(&[2, 0, 0, 0, 9, 9, 9, 9]));
        let legacy = [0u8; 1 + 3 + 4 + 128];
        let mut body = 2u32.to_le_bytes().to_vec();
        body.extend(locker(
            "host.1.2.0",
            1_000,
            &modern,
            "blockback on host pid 1",
        ));
        body.extend(locker("c2", 0, &legacy, "d2"));
        body.push(1); // exclusive
        body.extend(string(""));
        let lockers = decode_reply(&versioned(&body)).unwrap();
        assert_eq!(
            lockers,
            vec![
                Locker {
                    cookie: "host.1.2.0".into(),
                    description: "blockback on host pid 1".into(),
                    expires: Some(SystemTime::UNIX_EPOCH + Duration::new(1_000, 7)),
                },
                Locker {
                    cookie: "c2".into(),
                    description: "d2".into(),
                    expires: Some(SystemTime::UNIX_EPOCH + Duration::new(0, 7)),
                },
            ]
        );
    }

    #[test]
    fn truncated_or_odd_replies_are_refused_not_misread() {
        let mut body = 1u32.to_le_bytes().to_vec();
        body.extend(locker("c", 5, &[1, 1, 1, 0, 0, 0, 0], "d"));
        let whole = versioned(&body);
        assert!(decode_reply(&whole).is_some());
        for cut in 0..whole.len() {
            assert_eq!(decode_reply(&whole[..cut]), None, "cut at {cut}");
        }
        let mut odd_marker = 1u32.to_le_bytes().to_vec();
        odd_marker.extend(locker("c", 5, &[7], "d"));
        assert_eq!(decode_reply(&versioned(&odd_marker)), None);
        assert_eq!(
            get_info_op(b"ab"),
            [1, 1, 6, 0, 0, 0, 2, 0, 0, 0, b'a', b'b']
        );
    }
}
