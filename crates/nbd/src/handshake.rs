//! Fixed newstyle negotiation: the options a client sends before
//! transmission, and what the server answers. Refusals carry a message.

use crate::export::Export;
use crate::proto::*;
use std::io::{self, Read, Write};
use std::sync::Arc;

/// Options one client may send before it must pick an export.
const MAX_OPTIONS: usize = 64;

/// The exports a client may pick from.
pub(crate) trait Registry {
    /// The export `name` names; `""` is the only one when there is one.
    fn find(&self, name: &str) -> Option<Arc<Export>>;
    fn all(&self) -> Vec<Arc<Export>>;
}

/// What a client negotiated for transmission.
pub(crate) struct Negotiated {
    pub export: Arc<Export>,
    pub structured: bool,
    pub base_allocation: bool,
}

struct State {
    no_zeroes: bool,
    structured: bool,
    /// The export name the `base:allocation` context was set for.
    meta_export: Option<String>,
}

fn protocol_error(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// Runs the negotiation; `Ok(None)` when the client aborted politely.
pub(crate) fn negotiate<S: Read + Write>(
    s: &mut S,
    registry: &dyn Registry,
    max_request: u32,
) -> io::Result<Option<Negotiated>> {
    s.write_all(&greeting())?;
    s.flush()?;
    let mut flags = [0u8; 4];
    s.read_exact(&mut flags)?;
    let flags = u32::from_be_bytes(flags);
    if flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(protocol_error(format!("unknown client flags {flags:#x}")));
    }
    let mut state = State {
        no_zeroes: flags & FLAG_C_NO_ZEROES != 0,
        structured: false,
        meta_export: None,
    };
    for _ in 0..MAX_OPTIONS {
        let mut header = [0u8; OPTION_HEADER_LEN];
        s.read_exact(&mut header)?;
        let header = OptionHeader::decode(&header)
            .ok_or_else(|| protocol_error("an option without the IHAVEOPT magic"))?;
        if header.length > MAX_OPTION_LEN {
            io::copy(
                &mut Read::by_ref(s).take(u64::from(header.length)),
                &mut io::sink(),
            )?;
            reply(
                s,
                header.option,
                REP_ERR_TOO_BIG,
                b"option payload too long",
            )?;
            continue;
        }
        let mut data = vec![0u8; header.length as usize];
        s.read_exact(&mut data)?;
        match answer(s, registry, &mut state, header.option, &data, max_request)? {
            Step::Next => {}
            Step::Abort => return Ok(None),
            Step::Transmit(n) => return Ok(Some(n)),
        }
    }
    Err(protocol_error(format!(
        "more than {MAX_OPTIONS} options without choosing an export"
    )))
}

enum Step {
    Next,
    Abort,
    Transmit(Negotiated),
}

fn answer<S: Read + Write>(
    s: &mut S,
    registry: &dyn Registry,
    state: &mut State,
    option: u32,
    data: &[u8],
    max_request: u32,
) -> io::Result<Step> {
    match option {
        OPT_EXPORT_NAME => export_name(s, registry, state, data),
        OPT_ABORT => {
            // The client may already have closed; the ack is a courtesy.
            let _ = reply(s, option, REP_ACK, &[]);
            Ok(Step::Abort)
        }
        OPT_LIST if !data.is_empty() => invalid(s, option, "NBD_OPT_LIST takes no data"),
        OPT_LIST => {
            for e in registry.all() {
                reply(
                    s,
                    option,
                    REP_SERVER,
                    &list_entry(e.name(), e.description()),
                )?;
            }
            ack(s, option)
        }
        OPT_INFO | OPT_GO => info_or_go(s, registry, state, option, data, max_request),
        OPT_STRUCTURED_REPLY if !data.is_empty() => {
            invalid(s, option, "NBD_OPT_STRUCTURED_REPLY takes no data")
        }
        OPT_STRUCTURED_REPLY => {
            state.structured = true;
            ack(s, option)
        }
        OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => meta(s, registry, state, option, data),
        OPT_STARTTLS => {
            reply(
                s,
                option,
                REP_ERR_POLICY,
                b"TLS is not offered: connect over a unix socket or loopback",
            )?;
            Ok(Step::Next)
        }
        _ => {
            reply(
                s,
                option,
                REP_ERR_UNSUP,
                format!("option {option} is not supported").as_bytes(),
            )?;
            Ok(Step::Next)
        }
    }
}

/// The old way to pick an export: no error reply is possible, so an
/// unknown name closes the connection.
fn export_name<S: Read + Write>(
    s: &mut S,
    registry: &dyn Registry,
    state: &State,
    data: &[u8],
) -> io::Result<Step> {
    let name = String::from_utf8_lossy(data).to_string();
    let export = registry
        .find(&name)
        .ok_or_else(|| protocol_error(format!("no export named {name:?}")))?;
    let mut out = export.size().to_be_bytes().to_vec();
    out.extend_from_slice(&transmission_flags(&export, state.structured).to_be_bytes());
    if !state.no_zeroes {
        out.extend_from_slice(&[0u8; 124]);
    }
    s.write_all(&out)?;
    s.flush()?;
    let base_allocation = state.structured && state.meta_export.as_deref() == Some(&name);
    Ok(Step::Transmit(Negotiated {
        export,
        structured: state.structured,
        base_allocation,
    }))
}

fn info_or_go<S: Read + Write>(
    s: &mut S,
    registry: &dyn Registry,
    state: &State,
    option: u32,
    data: &[u8],
    max_request: u32,
) -> io::Result<Step> {
    let Ok(request) = GoRequest::decode(data) else {
        return invalid(s, option, "malformed NBD_OPT_INFO/GO payload");
    };
    let Some(export) = registry.find(&request.name) else {
        return unknown_export(s, registry, option, &request.name);
    };
    let flags = transmission_flags(&export, state.structured);
    reply(s, option, REP_INFO, &info_export(export.size(), flags))?;
    for info in &request.infos {
        match *info {
            INFO_NAME => reply(s, option, REP_INFO, &info_text(INFO_NAME, export.name()))?,
            INFO_DESCRIPTION => reply(
                s,
                option,
                REP_INFO,
                &info_text(INFO_DESCRIPTION, export.description()),
            )?,
            _ => {}
        }
    }
    reply(s, option, REP_INFO, &info_block_size(1, 4096, max_request))?;
    ack(s, option)?;
    if option == OPT_INFO {
        return Ok(Step::Next);
    }
    let base_allocation = state.structured && state.meta_export.as_deref() == Some(&request.name);
    Ok(Step::Transmit(Negotiated {
        export,
        structured: state.structured,
        base_allocation,
    }))
}

fn meta<S: Read + Write>(
    s: &mut S,
    registry: &dyn Registry,
    state: &mut State,
    option: u32,
    data: &[u8],
) -> io::Result<Step> {
    let setting = option == OPT_SET_META_CONTEXT;
    let Ok(request) = MetaRequest::decode(data) else {
        return invalid(s, option, "malformed meta context payload");
    };
    if setting && !state.structured {
        return invalid(
            s,
            option,
            "negotiate structured replies before meta contexts",
        );
    }
    if registry.find(&request.export).is_none() {
        return unknown_export(s, registry, option, &request.export);
    }
    let selected = request.selects_base_allocation(!setting);
    if selected {
        reply(
            s,
            option,
            REP_META_CONTEXT,
            &meta_context(BASE_ALLOCATION_ID, BASE_ALLOCATION),
        )?;
    }
    if setting {
        state.meta_export = selected.then_some(request.export);
    }
    ack(s, option)
}

fn transmission_flags(export: &Export, structured: bool) -> u16 {
    let mut flags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_CAN_MULTI_CONN;
    if structured {
        flags |= TFLAG_SEND_DF;
    }
    if export.writable() {
        flags |= TFLAG_SEND_WRITE_ZEROES;
    } else {
        flags |= TFLAG_READ_ONLY;
    }
    flags
}

fn unknown_export<S: Write>(
    s: &mut S,
    registry: &dyn Registry,
    option: u32,
    name: &str,
) -> io::Result<Step> {
    let names: Vec<String> = registry
        .all()
        .iter()
        .map(|e| e.name().to_string())
        .collect();
    let message = if names.is_empty() {
        format!("no export named {name:?}: this server has no exports")
    } else {
        format!(
            "no export named {name:?}: the export name is a backup id; served here: {}",
            names.join(", ")
        )
    };
    tracing::info!("nbd: client asked for an unknown export: {message}");
    reply(s, option, REP_ERR_UNKNOWN, message.as_bytes())?;
    Ok(Step::Next)
}

fn invalid<S: Write>(s: &mut S, option: u32, message: &str) -> io::Result<Step> {
    reply(s, option, REP_ERR_INVALID, message.as_bytes())?;
    Ok(Step::Next)
}

fn ack<S: Write>(s: &mut S, option: u32) -> io::Result<Step> {
    reply(s, option, REP_ACK, &[])?;
    Ok(Step::Next)
}

fn reply<S: Write>(s: &mut S, option: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    s.write_all(&option_reply(option, kind, data))?;
    s.flush()
}
