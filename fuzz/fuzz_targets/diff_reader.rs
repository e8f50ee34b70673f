//! Feeds arbitrary bytes to the diff reader (v1 and v2) and to merge_diff:
//! they must return errors, never panic, and memory must stay bounded
//! whatever the record lengths claim.
#![no_main]

use std::io::{self, Write};

use blockback_core::stream::{merge_diff, DiffReader, Record};
use libfuzzer_sys::fuzz_target;

/// Fails after a few MiB: a merged diff of a huge (claimed) image is
/// legitimately huge, so the harness bounds the output, not the library.
struct LimitedSink(usize);

impl Write for LimitedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0 < buf.len() {
            return Err(io::Error::other("fuzz output limit"));
        }
        self.0 -= buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads every record, pulling payloads in small pieces.
fn drain(bytes: &[u8]) {
    let Ok(mut r) = DiffReader::new(bytes) else {
        return;
    };
    let mut piece = [0u8; 512];
    for _ in 0..100_000 {
        match r.next_record() {
            Ok(Record::End) | Err(_) => return,
            Ok(Record::Data { .. }) => {
                while let Ok(n) = r.read_data(&mut piece) {
                    if n == 0 {
                        break;
                    }
                }
            }
            Ok(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    drain(data);
    // The same bytes behind each banner, so the fuzzer need not find them.
    let v1 = [&b"rbd diff v1\n"[..], data].concat();
    let v2 = [&b"rbd diff v2\n"[..], data].concat();
    drain(&v1);
    drain(&v2);
    let half = data.len() / 2;
    let a = [&b"rbd diff v1\n"[..], &data[..half]].concat();
    let b = [&b"rbd diff v1\n"[..], &data[half..]].concat();
    let _ = merge_diff(&a[..], &b[..], LimitedSink(8 << 20));
});
