//! Reading Ceph's encoding (little endian; strings and blobs as a u32
//! length and the bytes; versioned structs as u8 version, u8 compat, u32
//! length and the body), for the few replies and objects the crate reads
//! itself. Every read is checked: `None` once the bytes run out.

/// A reader over Ceph-encoded bytes.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// A u32 length and that many bytes.
    pub(crate) fn blob(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn string(&mut self) -> Option<String> {
        self.blob().map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// A versioned struct's body (after its version and compat bytes).
    pub(crate) fn versioned(&mut self) -> Option<Reader<'a>> {
        self.take(2)?;
        self.blob().map(Reader)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
