//! The NBD wire format (the protocol document of the NetworkBlockDevice
//! project, "fixed newstyle" negotiation, structured replies): constants
//! and pure encoders/decoders of every message this server exchanges. No
//! I/O here, so the framing is tested by properties alone.

/// `NBDMAGIC`, the first eight bytes the server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: the newstyle magic, also the prefix of every option request.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Prefix of every option reply.
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

/// Handshake flags (server).
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flags.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

/// Transmission flags.
pub const TFLAG_HAS_FLAGS: u16 = 1 << 0;
pub const TFLAG_READ_ONLY: u16 = 1 << 1;
pub const TFLAG_SEND_FLUSH: u16 = 1 << 2;
pub const TFLAG_SEND_FUA: u16 = 1 << 3;
pub const TFLAG_SEND_TRIM: u16 = 1 << 5;
pub const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
pub const TFLAG_SEND_DF: u16 = 1 << 7;
pub const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;

/// Options.
pub const OPT_EXPORT_NAME: u32 = 1;
pub const OPT_ABORT: u32 = 2;
pub const OPT_LIST: u32 = 3;
pub const OPT_STARTTLS: u32 = 5;
pub const OPT_INFO: u32 = 6;
pub const OPT_GO: u32 = 7;
pub const OPT_STRUCTURED_REPLY: u32 = 8;
pub const OPT_LIST_META_CONTEXT: u32 = 9;
pub const OPT_SET_META_CONTEXT: u32 = 10;

/// Option reply types.
pub const REP_ACK: u32 = 1;
pub const REP_SERVER: u32 = 2;
pub const REP_INFO: u32 = 3;
pub const REP_META_CONTEXT: u32 = 4;
const REP_ERR: u32 = 1 << 31;
pub const REP_ERR_UNSUP: u32 = REP_ERR | 1;
pub const REP_ERR_POLICY: u32 = REP_ERR | 2;
pub const REP_ERR_INVALID: u32 = REP_ERR | 3;
pub const REP_ERR_UNKNOWN: u32 = REP_ERR | 6;
pub const REP_ERR_SHUTDOWN: u32 = REP_ERR | 7;
pub const REP_ERR_TOO_BIG: u32 = REP_ERR | 9;

/// Info types of `NBD_OPT_INFO`/`NBD_OPT_GO`.
pub const INFO_EXPORT: u16 = 0;
pub const INFO_NAME: u16 = 1;
pub const INFO_DESCRIPTION: u16 = 2;
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Commands.
pub const CMD_READ: u16 = 0;
pub const CMD_WRITE: u16 = 1;
pub const CMD_DISC: u16 = 2;
pub const CMD_FLUSH: u16 = 3;
pub const CMD_TRIM: u16 = 4;
pub const CMD_WRITE_ZEROES: u16 = 6;
pub const CMD_BLOCK_STATUS: u16 = 7;

/// Command flags.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
pub const CMD_FLAG_DF: u16 = 1 << 2;
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;

/// Structured reply chunk types and flags.
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
pub const REPLY_TYPE_NONE: u16 = 0;
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
pub const REPLY_TYPE_ERROR: u16 = (1 << 15) | 1;

/// `base:allocation` states.
pub const STATE_HOLE: u32 = 1 << 0;
pub const STATE_ZERO: u32 = 1 << 1;

/// The one metadata context this server offers.
pub const BASE_ALLOCATION: &str = "base:allocation";
/// Its context id on every connection.
pub const BASE_ALLOCATION_ID: u32 = 1;

/// Error values on the wire (Linux errno numbers, as the protocol fixes them).
pub const EPERM: u32 = 1;
pub const EIO: u32 = 5;
pub const ENOMEM: u32 = 12;
pub const EINVAL: u32 = 22;
pub const ENOSPC: u32 = 28;
pub const EOVERFLOW: u32 = 75;
pub const ENOTSUP: u32 = 95;
pub const ESHUTDOWN: u32 = 108;

/// Length of a request header.
pub const REQUEST_LEN: usize = 28;
/// Length of an option request header (magic, option, length).
pub const OPTION_HEADER_LEN: usize = 16;
/// Longest option payload accepted (names and queries are short).
pub const MAX_OPTION_LEN: u32 = 64 * 1024;
/// Longest export name the protocol allows.
pub const MAX_NAME_LEN: usize = 4096;

/// One transmission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub flags: u16,
    pub kind: u16,
    pub cookie: u64,
    pub offset: u64,
    pub length: u32,
}

/// Why a request header could not be decoded: the stream cannot be
/// trusted any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bad request magic {0:#010x} (expected {REQUEST_MAGIC:#010x})")]
pub struct BadMagic(pub u32);

impl Request {
    pub fn decode(bytes: &[u8; REQUEST_LEN]) -> Result<Request, BadMagic> {
        let magic = be32(&bytes[0..4]);
        if magic != REQUEST_MAGIC {
            return Err(BadMagic(magic));
        }
        Ok(Request {
            flags: be16(&bytes[4..6]),
            kind: be16(&bytes[6..8]),
            cookie: be64(&bytes[8..16]),
            offset: be64(&bytes[16..24]),
            length: be32(&bytes[24..28]),
        })
    }

    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut out = [0u8; REQUEST_LEN];
        out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.kind.to_be_bytes());
        out[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// An option request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    pub option: u32,
    pub length: u32,
}

impl OptionHeader {
    /// `None` when the magic is not `IHAVEOPT`.
    pub fn decode(bytes: &[u8; OPTION_HEADER_LEN]) -> Option<OptionHeader> {
        (be64(&bytes[0..8]) == IHAVEOPT).then(|| OptionHeader {
            option: be32(&bytes[8..12]),
            length: be32(&bytes[12..16]),
        })
    }

    pub fn encode(&self) -> [u8; OPTION_HEADER_LEN] {
        let mut out = [0u8; OPTION_HEADER_LEN];
        out[0..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        out[8..12].copy_from_slice(&self.option.to_be_bytes());
        out[12..16].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// The server's greeting.
pub fn greeting() -> [u8; 18] {
    let mut out = [0u8; 18];
    out[0..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
    out[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    out[16..18].copy_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    out
}

/// An option reply: header and payload.
pub fn option_reply(option: u32, reply: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + data.len());
    out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
    out.extend_from_slice(&option.to_be_bytes());
    out.extend_from_slice(&reply.to_be_bytes());
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// `NBD_INFO_EXPORT`: size and transmission flags.
pub fn info_export(size: u64, flags: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out
}

/// `NBD_INFO_BLOCK_SIZE`: minimum, preferred and maximum block sizes.
pub fn info_block_size(min: u32, preferred: u32, max: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    out.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    for v in [min, preferred, max] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// `NBD_INFO_NAME` or `NBD_INFO_DESCRIPTION`: a string.
pub fn info_text(kind: u16, text: &str) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// A simple reply header (the data of a read follows it).
pub fn simple_reply(cookie: u64, error: u32) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    out[4..8].copy_from_slice(&error.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
    out
}

/// A structured reply chunk header for a payload of `length` bytes.
pub fn chunk_header(cookie: u64, flags: u16, kind: u16, length: u32) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[0..4].copy_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
    out[4..6].copy_from_slice(&flags.to_be_bytes());
    out[6..8].copy_from_slice(&kind.to_be_bytes());
    out[8..16].copy_from_slice(&cookie.to_be_bytes());
    out[16..20].copy_from_slice(&length.to_be_bytes());
    out
}

/// A final `NBD_REPLY_TYPE_ERROR` chunk with a message for people.
pub fn error_chunk(cookie: u64, error: u32, message: &str) -> Vec<u8> {
    let message = truncate(message, 4096);
    let mut out = chunk_header(
        cookie,
        REPLY_FLAG_DONE,
        REPLY_TYPE_ERROR,
        6 + message.len() as u32,
    )
    .to_vec();
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message.as_bytes());
    out
}

/// A `NBD_REPLY_TYPE_BLOCK_STATUS` chunk: `(length, state)` descriptors.
pub fn block_status_chunk(
    cookie: u64,
    flags: u16,
    context: u32,
    extents: &[(u32, u32)],
) -> Vec<u8> {
    let length = 4 + 8 * extents.len() as u32;
    let mut out = chunk_header(cookie, flags, REPLY_TYPE_BLOCK_STATUS, length).to_vec();
    out.extend_from_slice(&context.to_be_bytes());
    for (len, state) in extents {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&state.to_be_bytes());
    }
    out
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A reader of an option's payload that never reads past its end.
pub struct Fields<'a> {
    data: &'a [u8],
}

/// A payload shorter than its fields say, or with trailing bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed option payload")]
pub struct Malformed;

impl<'a> Fields<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Fields { data }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.data.len() < n {
            return Err(Malformed);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub fn u16(&mut self) -> Result<u16, Malformed> {
        self.bytes(2).map(be16)
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        self.bytes(4).map(be32)
    }

    /// A string prefixed by its u32 length, at most `max` bytes.
    pub fn string(&mut self, max: usize) -> Result<String, Malformed> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Malformed);
        }
        let raw = self.bytes(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| Malformed)
    }

    pub fn end(&self) -> Result<(), Malformed> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }
}

/// The payload of `NBD_OPT_INFO`/`NBD_OPT_GO`: an export name and the
/// info types the client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoRequest {
    pub name: String,
    pub infos: Vec<u16>,
}

impl GoRequest {
    pub fn decode(data: &[u8]) -> Result<GoRequest, Malformed> {
        let mut f = Fields::new(data);
        let name = f.string(MAX_NAME_LEN)?;
        let count = f.u16()?;
        let infos = (0..count).map(|_| f.u16()).collect::<Result<_, _>>()?;
        f.end()?;
        Ok(GoRequest { name, infos })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = (self.name.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&(self.infos.len() as u16).to_be_bytes());
        for i in &self.infos {
            out.extend_from_slice(&i.to_be_bytes());
        }
        out
    }
}

/// The payload of `NBD_OPT_LIST_META_CONTEXT`/`NBD_OPT_SET_META_CONTEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRequest {
    pub export: String,
    pub queries: Vec<String>,
}

impl MetaRequest {
    pub fn decode(data: &[u8]) -> Result<MetaRequest, Malformed> {
        let mut f = Fields::new(data);
        let export = f.string(MAX_NAME_LEN)?;
        let count = f.u32()?;
        let mut queries = Vec::new();
        for _ in 0..count {
            queries.push(f.string(MAX_NAME_LEN)?);
        }
        f.end()?;
        Ok(MetaRequest { export, queries })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = (self.export.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(self.export.as_bytes());
        out.extend_from_slice(&(self.queries.len() as u32).to_be_bytes());
        for q in &self.queries {
            out.extend_from_slice(&(q.len() as u32).to_be_bytes());
            out.extend_from_slice(q.as_bytes());
        }
        out
    }

    /// Whether the queries select `base:allocation` (no query selects
    /// every context, for listing).
    pub fn selects_base_allocation(&self, listing: bool) -> bool {
        if self.queries.is_empty() {
            return listing;
        }
        self.queries
            .iter()
            .any(|q| q == BASE_ALLOCATION || (listing && q == "base:"))
    }
}

/// `NBD_REP_META_CONTEXT` payload.
pub fn meta_context(id: u32, name: &str) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}

/// `NBD_REP_SERVER` payload: an export name for `NBD_OPT_LIST`.
pub fn list_entry(name: &str, description: &str) -> Vec<u8> {
    let mut out = (name.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(description.as_bytes());
    out
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request() -> impl Strategy<Value = Request> {
        (
            any::<u16>(),
            any::<u16>(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
        )
            .prop_map(|(flags, kind, cookie, offset, length)| Request {
                flags,
                kind,
                cookie,
                offset,
                length,
            })
    }

    proptest! {
        #[test]
        fn requests_round_trip(r in request()) {
            prop_assert_eq!(Request::decode(&r.encode()), Ok(r));
        }

        #[test]
        fn any_other_magic_is_refused(r in request(), magic in any::<u32>()) {
            prop_assume!(magic != REQUEST_MAGIC);
            let mut bytes = r.encode();
            bytes[0..4].copy_from_slice(&magic.to_be_bytes());
            prop_assert_eq!(Request::decode(&bytes), Err(BadMagic(magic)));
        }

        #[test]
        fn option_headers_round_trip(option in any::<u32>(), length in any::<u32>()) {
            let h = OptionHeader { option, length };
            prop_assert_eq!(OptionHeader::decode(&h.encode()), Some(h));
        }

        #[test]
        fn go_requests_round_trip(name in "\\PC{0,40}", infos in proptest::collection::vec(any::<u16>(), 0..8)) {
            let g = GoRequest { name, infos };
            prop_assert_eq!(GoRequest::decode(&g.encode()), Ok(g));
        }

        #[test]
        fn meta_requests_round_trip(export in "\\PC{0,20}", queries in proptest::collection::vec("\\PC{0,20}", 0..5)) {
            let m = MetaRequest { export, queries };
            prop_assert_eq!(MetaRequest::decode(&m.encode()), Ok(m));
        }

        /// Arbitrary bytes never panic the option decoders, and whatever
        /// they accept encodes back to the same bytes.
        #[test]
        fn option_decoders_take_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(g) = GoRequest::decode(&data) {
                prop_assert_eq!(g.encode(), data.clone());
            }
            if let Ok(m) = MetaRequest::decode(&data) {
                prop_assert_eq!(m.encode(), data);
            }
        }

        /// Truncating a valid payload anywhere makes it malformed.
        #[test]
        fn truncated_payloads_are_malformed(name in "[a-z]{0,10}", infos in proptest::collection::vec(any::<u16>(), 0..4), cut in 1usize..8) {
            let bytes = GoRequest { name, infos }.encode();
            let cut = cut.min(bytes.len());
            prop_assert_eq!(GoRequest::decode(&bytes[..bytes.len() - cut]), Err(Malformed));
        }

        #[test]
        fn chunks_carry_their_payload_length(cookie in any::<u64>(), extents in proptest::collection::vec((any::<u32>(), 0u32..4), 0..16), msg in "\\PC{0,100}") {
            let c = block_status_chunk(cookie, REPLY_FLAG_DONE, BASE_ALLOCATION_ID, &extents);
            prop_assert_eq!(be32(&c[16..20]) as usize, c.len() - 20);
            prop_assert_eq!(be64(&c[8..16]), cookie);
            let e = error_chunk(cookie, EINVAL, &msg);
            prop_assert_eq!(be32(&e[16..20]) as usize, e.len() - 20);
            prop_assert_eq!(be16(&e[24..26]) as usize, e.len() - 26);
        }
    }

    #[test]
    fn greeting_is_fixed_newstyle() {
        let g = greeting();
        assert_eq!(&g[0..8], b"NBDMAGIC");
        assert_eq!(&g[8..16], b"IHAVEOPT");
        assert_eq!(be16(&g[16..18]) & FLAG_FIXED_NEWSTYLE, FLAG_FIXED_NEWSTYLE);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let msg = "é".repeat(3000);
        let e = error_chunk(1, EIO, &msg);
        let len = be16(&e[24..26]) as usize;
        assert!(len <= 4096);
        assert!(std::str::from_utf8(&e[26..]).is_ok());
    }
}
