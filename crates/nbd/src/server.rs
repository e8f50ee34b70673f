//! The listener, the exports it serves and the connections it has.

use crate::error::{NbdError, NbdResult};
use crate::export::{Export, ExportInfo};
use crate::handshake::{negotiate, Registry};
use crate::stream::Stream;
use crate::transmission::Connection;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where a server listens: `unix:PATH` or `tcp:ADDRESS:PORT` (loopback
/// only: NBD carries no authentication here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Listen {
    type Err = NbdError;

    fn from_str(text: &str) -> NbdResult<Listen> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(NbdError::Invalid(format!("{text}: give unix:PATH")));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        if let Some(addr) = text.strip_prefix("tcp:") {
            let addr: SocketAddr = addr.parse().map_err(|_| {
                NbdError::Invalid(format!(
                    "{text}: give tcp:127.0.0.1:PORT (an IP address and a port)"
                ))
            })?;
            if !addr.ip().is_loopback() {
                return Err(NbdError::Invalid(format!(
                    "{text}: NBD has no authentication here, so only loopback addresses are served; use tcp:127.0.0.1:PORT or unix:PATH (and an SSH tunnel or a proxy for remote clients)"
                )));
            }
            return Ok(Listen::Tcp(addr));
        }
        Err(NbdError::Invalid(format!(
            "{text}: give unix:PATH or tcp:127.0.0.1:PORT"
        )))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

impl Listen {
    /// The address as an NBD URI for an export (what nbdinfo, nbdcopy and
    /// qemu take).
    pub fn uri(&self, export: &str) -> String {
        match self {
            Listen::Unix(p) => format!("nbd+unix:///{export}?socket={}", p.display()),
            Listen::Tcp(a) => format!("nbd://{a}/{export}"),
        }
    }
}

/// What one server may hold at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub max_exports: usize,
    /// The largest read or write one request may ask for (each connection
    /// holds a buffer of up to this size).
    pub max_request: u32,
    /// How long a client may take to negotiate.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            max_exports: 64,
            max_request: 32 << 20,
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

struct Shared {
    exports: RwLock<BTreeMap<String, Arc<Export>>>,
    connections: Mutex<BTreeMap<u64, Tracked>>,
    /// Signalled whenever a connection ends.
    ended: Condvar,
    next_id: AtomicU64,
    stopping: AtomicBool,
    limits: Limits,
}

struct Tracked {
    stream: Stream,
    export: Option<String>,
}

impl Registry for Shared {
    fn find(&self, name: &str) -> Option<Arc<Export>> {
        let exports = self.exports.read().unwrap_or_else(|p| p.into_inner());
        if name.is_empty() && exports.len() == 1 {
            return exports.values().next().cloned();
        }
        exports.get(name).cloned()
    }

    fn all(&self) -> Vec<Arc<Export>> {
        let exports = self.exports.read().unwrap_or_else(|p| p.into_inner());
        exports.values().cloned().collect()
    }
}

/// A running NBD server.
pub struct Server {
    shared: Arc<Shared>,
    listen: Listen,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `listen` and accepts clients in a thread of its own. A
    /// TCP port 0 picks a free port ([`Self::listen`] tells which).
    pub fn bind(listen: &Listen, limits: Limits) -> NbdResult<Server> {
        let bind_error = |source| NbdError::Bind {
            address: listen.to_string(),
            source,
        };
        let (listener, actual) = match listen {
            Listen::Unix(path) => {
                remove_stale_socket(path)?;
                let l = UnixListener::bind(path).map_err(bind_error)?;
                (Listener::Unix(l), listen.clone())
            }
            Listen::Tcp(addr) => {
                let l = TcpListener::bind(addr).map_err(bind_error)?;
                let actual = Listen::Tcp(l.local_addr().map_err(bind_error)?);
                (Listener::Tcp(l), actual)
            }
        };
        let shared = Arc::new(Shared {
            exports: RwLock::new(BTreeMap::new()),
            connections: Mutex::new(BTreeMap::new()),
            ended: Condvar::new(),
            next_id: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
            limits,
        });
        let accept = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("nbd-accept".into())
                .spawn(move || accept_loop(listener, shared))?
        };
        Ok(Server {
            shared,
            listen: actual,
            accept: Some(accept),
        })
    }

    /// Where the server listens (with the port a TCP port 0 got).
    pub fn listen(&self) -> &Listen {
        &self.listen
    }

    /// Serves `export` under its name from now on.
    pub fn add_export(&self, export: Export) -> NbdResult<Arc<Export>> {
        let mut exports = self
            .shared
            .exports
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if exports.contains_key(export.name()) {
            return Err(NbdError::ExportExists(export.name().to_string()));
        }
        if exports.len() >= self.shared.limits.max_exports {
            return Err(NbdError::TooManyExports(self.shared.limits.max_exports));
        }
        let export = Arc::new(export);
        exports.insert(export.name().to_string(), export.clone());
        tracing::info!(
            "nbd: serving export {} ({} bytes)",
            export.name(),
            export.size()
        );
        Ok(export)
    }

    /// Stops serving export `name`: new clients cannot pick it, connected
    /// ones are disconnected, and it returns once none of them touches the
    /// image any more (so the caller may discard or switch it).
    pub fn remove_export(&self, name: &str) -> NbdResult<Arc<Export>> {
        let export = {
            let mut exports = self
                .shared
                .exports
                .write()
                .unwrap_or_else(|p| p.into_inner());
            exports
                .remove(name)
                .ok_or_else(|| NbdError::NoSuchExport(name.to_string()))?
        };
        export.close();
        self.disconnect(|t| t.export.as_deref() == Some(name));
        Ok(export)
    }

    /// The exports served now, by name.
    pub fn exports(&self) -> Vec<ExportInfo> {
        self.shared.all().iter().map(|e| e.info()).collect()
    }

    /// Connections open now (negotiating or transmitting).
    pub fn connections(&self) -> usize {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Stops accepting, closes every export and connection, and waits for
    /// their threads to finish with the images.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // The accept thread blocks in accept(): wake it with a connection.
        let _ = match &self.listen {
            Listen::Unix(p) => UnixStream::connect(p).map(drop),
            Listen::Tcp(a) => TcpStream::connect(a).map(drop),
        };
        let _ = accept.join();
        for export in self.shared.all() {
            export.close();
        }
        self.disconnect(|_| true);
        self.shared
            .exports
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        if let Listen::Unix(p) = &self.listen {
            let _ = std::fs::remove_file(p);
        }
    }

    /// Shuts the matching connections down and waits until they ended.
    fn disconnect(&self, matches: impl Fn(&Tracked) -> bool) {
        let mut conns = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for t in conns.values().filter(|t| matches(t)) {
            t.stream.shutdown();
        }
        while conns.values().any(&matches) {
            conns = self
                .shared
                .ended
                .wait_timeout(conns, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            // A connection still negotiating when asked may have picked
            // the export since: shut it too.
            for t in conns.values().filter(|t| matches(t)) {
                t.stream.shutdown();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A socket file left by a server that died is removed; a live one (or
/// anything else at the path) is refused.
fn remove_stale_socket(path: &std::path::Path) -> NbdResult<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let refuse = |why: &str| {
        Err(NbdError::Invalid(format!(
            "cannot listen on unix:{}: {why}; give another path",
            path.display()
        )))
    };
    if !meta.file_type().is_socket() {
        return refuse("something that is not a socket exists there");
    }
    if UnixStream::connect(path).is_ok() {
        return refuse("another server listens there");
    }
    std::fs::remove_file(path)?;
    Ok(())
}

fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    loop {
        let accepted = match &listener {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok(stream) => admit(stream, &shared),
            Err(e) => {
                tracing::warn!("nbd: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn admit(stream: Stream, shared: &Arc<Shared>) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut conns = shared.connections.lock().unwrap_or_else(|p| p.into_inner());
        if conns.len() >= shared.limits.max_connections {
            tracing::warn!(
                "nbd: refusing {}: {} connections is the limit",
                stream.peer(),
                shared.limits.max_connections
            );
            return;
        }
        let Ok(clone) = stream.try_clone() else {
            return;
        };
        conns.insert(
            id,
            Tracked {
                stream: clone,
                export: None,
            },
        );
    }
    let shared2 = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("nbd-conn-{id}"))
        .spawn(move || {
            run_connection(stream, &shared2, id);
            let mut conns = shared2
                .connections
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            conns.remove(&id);
            shared2.ended.notify_all();
        });
    if let Err(e) = spawned {
        tracing::warn!("nbd: no thread for a new connection: {e}");
        shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

fn run_connection(stream: Stream, shared: &Shared, id: u64) {
    let peer = stream.peer();
    stream.set_nodelay();
    let limits = shared.limits;
    let _ = stream.set_read_timeout(Some(limits.handshake_timeout));
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut io = Duplex {
        reader: BufReader::with_capacity(256 << 10, stream),
        writer: BufWriter::with_capacity(256 << 10, write_half),
    };
    let session = match negotiate(&mut io, shared, limits.max_request) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::info!("nbd: {peer}: negotiation ended: {e}");
            return;
        }
    };
    let export = session.export.clone();
    {
        let mut conns = shared.connections.lock().unwrap_or_else(|p| p.into_inner());
        match conns.get_mut(&id) {
            Some(t) => t.export = Some(export.name().to_string()),
            None => return,
        }
    }
    if export.is_closed() || shared.stopping.load(Ordering::SeqCst) {
        return;
    }
    let _ = io.reader.get_ref().set_read_timeout(None);
    export.stats.connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!("nbd: {peer} connected to export {}", export.name());
    let ended = Connection::new(&mut io, session, limits.max_request, &peer).serve();
    export.stats.connections.fetch_sub(1, Ordering::Relaxed);
    match ended {
        Ok(end) => tracing::debug!("nbd: {peer} left export {}: {end:?}", export.name()),
        Err(e) => tracing::info!(
            "nbd: {peer} on export {}: connection ended: {e}",
            export.name()
        ),
    }
}

/// A buffered reader and writer over the two halves of one socket.
struct Duplex {
    reader: BufReader<Stream>,
    writer: BufWriter<Stream>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}
