//! Clients that misbehave get clear errors, and the server keeps serving
//! the others: a raw protocol client against the library server.

use blockback_core::image::file::FileImage;
use blockback_core::image::Image;
use blockback_nbd::proto::*;
use blockback_nbd::{Export, Limits, Listen, Server};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

const SIZE: u64 = 1 << 20;

fn server(dir: &tempfile::TempDir) -> Server {
    let path = dir.path().join("disk.img");
    let image = FileImage::create(&path, SIZE).unwrap();
    image.write_at(4096, &[7u8; 4096]).unwrap();
    let image: Arc<dyn Image> = Arc::new(FileImage::open(&path, false).unwrap());
    let listen = Listen::Unix(dir.path().join("sock"));
    let server = Server::bind(&listen, Limits::default()).unwrap();
    server
        .add_export(Export::new("disk", "a test disk", image, false).unwrap())
        .unwrap();
    server
}

struct Client(UnixStream);

impl Client {
    fn connect(server: &Server) -> Client {
        let Listen::Unix(path) = server.listen() else {
            unreachable!()
        };
        let mut s = UnixStream::connect(path).unwrap();
        let mut greeting = [0u8; 18];
        s.read_exact(&mut greeting).unwrap();
        assert_eq!(&greeting[..16], b"NBDMAGICIHAVEOPT");
        s.write_all(&(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).to_be_bytes())
            .unwrap();
        Client(s)
    }

    fn option(&mut self, option: u32, data: &[u8]) {
        let header = OptionHeader {
            option,
            length: data.len() as u32,
        };
        self.0.write_all(&header.encode()).unwrap();
        self.0.write_all(data).unwrap();
    }

    /// One option reply: its type and payload.
    fn reply(&mut self) -> (u32, Vec<u8>) {
        let mut h = [0u8; 20];
        self.0.read_exact(&mut h).unwrap();
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        let mut data = vec![0u8; len as usize];
        self.0.read_exact(&mut data).unwrap();
        (kind, data)
    }

    /// Structured replies, then GO on `name`; the replies until the ack.
    fn go(&mut self, name: &str) -> Vec<(u32, Vec<u8>)> {
        self.option(OPT_STRUCTURED_REPLY, &[]);
        assert_eq!(self.reply().0, REP_ACK);
        let go = GoRequest {
            name: name.into(),
            infos: vec![],
        };
        self.option(OPT_GO, &go.encode());
        let mut replies = Vec::new();
        loop {
            let r = self.reply();
            let done = r.0 == REP_ACK || r.0 & (1 << 31) != 0;
            replies.push(r);
            if done {
                return replies;
            }
        }
    }

    fn request(&mut self, kind: u16, offset: u64, length: u32) {
        let r = Request {
            flags: 0,
            kind,
            cookie: 42,
            offset,
            length,
        };
        self.0.write_all(&r.encode()).unwrap();
    }

    /// One structured chunk: type, payload.
    fn chunk(&mut self) -> (u16, Vec<u8>) {
        let mut h = [0u8; 20];
        self.0.read_exact(&mut h).unwrap();
        assert_eq!(
            u32::from_be_bytes(h[0..4].try_into().unwrap()),
            STRUCTURED_REPLY_MAGIC
        );
        let kind = u16::from_be_bytes(h[6..8].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        let mut data = vec![0u8; len as usize];
        self.0.read_exact(&mut data).unwrap();
        (kind, data)
    }

    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.0.read(&mut b), Ok(0) | Err(_))
    }
}

fn error_message(chunk: &(u16, Vec<u8>)) -> (u32, String) {
    assert_eq!(chunk.0, REPLY_TYPE_ERROR, "an error chunk");
    let errno = u32::from_be_bytes(chunk.1[0..4].try_into().unwrap());
    (errno, String::from_utf8(chunk.1[6..].to_vec()).unwrap())
}

/// A well-behaved read of the export's data block.
fn reads_fine(server: &Server) {
    let mut c = Client::connect(server);
    let replies = c.go("disk");
    assert_eq!(replies.last().unwrap().0, REP_ACK);
    c.request(CMD_READ, 4096, 4096);
    let (kind, data) = c.chunk();
    assert_eq!(kind, REPLY_TYPE_OFFSET_DATA);
    assert_eq!(&data[8..], &[7u8; 4096][..]);
}

#[test]
fn wrong_export_name_is_refused_with_the_names_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir);
    let mut c = Client::connect(&server);
    let replies = c.go("nope");
    let (kind, message) = replies.last().unwrap();
    assert_eq!(*kind, REP_ERR_UNKNOWN);
    let message = String::from_utf8_lossy(message);
    assert!(
        message.contains("no export named \"nope\"") && message.contains("disk"),
        "{message}"
    );
    // The same connection may go on and pick the right one.
    let replies = c.go("disk");
    assert_eq!(replies.last().unwrap().0, REP_ACK);
    reads_fine(&server);
}

#[test]
fn reads_past_the_end_and_writes_get_errors_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir);
    let mut c = Client::connect(&server);
    c.go("disk");
    c.request(CMD_READ, SIZE - 100, 4096);
    let (errno, message) = error_message(&c.chunk());
    assert_eq!(errno, EINVAL);
    assert!(
        message.contains("beyond the end of the export"),
        "{message}"
    );
    c.request(CMD_READ, 0, 64 << 20);
    let (errno, message) = error_message(&c.chunk());
    assert_eq!(errno, EOVERFLOW, "{message}");
    // A write to the read-only export: its payload is consumed, EPERM.
    c.request(CMD_WRITE, 0, 512);
    c.0.write_all(&[1u8; 512]).unwrap();
    let (errno, message) = error_message(&c.chunk());
    assert_eq!(errno, EPERM);
    assert!(message.contains("read-only"), "{message}");
    c.request(77, 0, 1);
    let (errno, message) = error_message(&c.chunk());
    assert_eq!(errno, EINVAL);
    assert!(message.contains("unknown command 77"), "{message}");
    // Block status without the context negotiated.
    c.request(CMD_BLOCK_STATUS, 0, 4096);
    assert_eq!(error_message(&c.chunk()).0, EINVAL);
    c.request(CMD_READ, 4096, 4096);
    assert_eq!(c.chunk().1[8..], [7u8; 4096]);
    assert_eq!(server.exports()[0].errors, 5);
}

#[test]
fn malformed_requests_end_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir);
    let mut c = Client::connect(&server);
    c.go("disk");
    c.0.write_all(&[0xffu8; REQUEST_LEN]).unwrap();
    assert!(c.closed(), "a bad magic closes the connection");
    // Garbage instead of options.
    let mut c = Client::connect(&server);
    c.0.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(c.closed());
    // A malformed GO payload gets an error reply, not a hang.
    let mut c = Client::connect(&server);
    c.option(OPT_GO, &[0, 0, 0, 50, b'x']);
    assert_eq!(c.reply().0, REP_ERR_INVALID);
    reads_fine(&server);
}

#[test]
fn clients_vanishing_mid_transfer_leave_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir);
    for _ in 0..8 {
        let mut c = Client::connect(&server);
        c.go("disk");
        // Half a request header, then gone.
        c.0.write_all(&[0x25, 0x60]).unwrap();
        drop(c);
        let mut c = Client::connect(&server);
        c.go("disk");
        // Many reads asked, no replies read, then gone.
        for _ in 0..64 {
            c.request(CMD_READ, 0, 256 << 10);
        }
        drop(c);
    }
    // Gone in the middle of the handshake too.
    drop(Client::connect(&server));
    reads_fine(&server);
    for _ in 0..100 {
        if server.connections() == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        server.connections(),
        0,
        "every dead client's connection ended"
    );
}

#[test]
fn removing_an_export_disconnects_its_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir);
    let other: Arc<dyn Image> =
        Arc::new(FileImage::create(dir.path().join("other.img"), SIZE).unwrap());
    server
        .add_export(Export::new("other", "", other, false).unwrap())
        .unwrap();
    let mut a = Client::connect(&server);
    a.go("disk");
    let mut b = Client::connect(&server);
    b.go("other");
    assert_eq!(server.exports().len(), 2);
    server.remove_export("other").unwrap();
    assert!(b.closed());
    a.request(CMD_READ, 4096, 4096);
    assert_eq!(a.chunk().1[8..], [7u8; 4096]);
    assert!(server.remove_export("other").is_err());
    server.shutdown();
    assert!(a.closed());
}

#[test]
fn listen_addresses_are_loopback_or_unix() {
    assert!("tcp:127.0.0.1:10809".parse::<Listen>().is_ok());
    assert!("unix:/tmp/x.sock".parse::<Listen>().is_ok());
    let e = "tcp:0.0.0.0:10809"
        .parse::<Listen>()
        .unwrap_err()
        .to_string();
    assert!(e.contains("loopback"), "{e}");
    assert!("10809".parse::<Listen>().is_err());
    assert!("unix:".parse::<Listen>().is_err());
}
