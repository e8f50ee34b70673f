//! The service's listening socket, with an accept queue deep enough for
//! bursts: std's `TcpListener::bind` asks for 128, so a burst of more
//! connections than that (200 clients at once) loses SYNs and those
//! clients wait a second for the retransmit.

use std::net::{SocketAddr, TcpListener};

/// Connections the kernel queues before `accept` (capped by
/// `net.core.somaxconn`, 4096 by default).
const BACKLOG: i32 = 1024;

/// Binds `addr` (address reuse on, as std does) and listens with [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Duration;

    #[test]
    fn a_burst_of_300_connections_is_queued_without_accepting() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients: Vec<TcpStream> = (0..300)
            .map(|i| {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                    .unwrap_or_else(|e| panic!("connection {i} was not queued: {e}"))
            })
            .collect();
        assert_eq!(clients.len(), 300);
    }
}
