//! Export keeps several reads in flight and import several writes, even
//! when the import reads from a pipe-like reader.

use std::io::Read;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use super::super::testimage::MemImage;
use super::super::{export_diff, import_diff, DiffFormat, DiffWriter, ImportOptions};
use crate::image::{ExtentVisitor, Image, Result, Snapshots};
use crate::progress::NoProgress;

/// Delegates to a [`MemImage`], holding every read and write for a while
/// and recording the most that were in progress at once.
struct Slow {
    inner: MemImage,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Slow {
    fn new(inner: MemImage) -> Self {
        Slow {
            inner,
            now: AtomicUsize::new(0),
            max: AtomicUsize::new(0),
        }
    }

    fn timed<T>(&self, f: impl FnOnce() -> T) -> T {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        sleep(Duration::from_millis(50));
        let r = f();
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

impl Image for Slow {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn size(&self) -> Result<u64> {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.timed(|| self.inner.read_at(offset, buf))
    }
    fn changed_extents(
        &self,
        from: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        self.inner.changed_extents(from, range, visit)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.timed(|| self.inner.write_at(offset, data))
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.timed(|| self.inner.write_zeroes(offset, len))
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn resize(&self, size: u64) -> Result<()> {
        self.inner.resize(size)
    }
    fn snapshots(&self) -> Option<&dyn Snapshots> {
        None
    }
}

/// Hands out at most 4 KiB per read, like a pipe.
struct Pipe<'a>(&'a [u8]);

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(4096).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn nonzero(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 | 1).collect()
}

#[test]
fn export_reads_ahead() {
    // No zero blocks; three 4 MiB pieces, each read held for 50 ms.
    let src = Slow::new(MemImage::with_data(nonzero(12 << 20)));
    let mut stream = Vec::new();
    export_diff(&src, None, None, &mut stream, &NoProgress).unwrap();
    assert!(src.max.load(Ordering::SeqCst) >= 2, "export read serially");
}

#[test]
fn import_writes_in_parallel_from_a_pipe() {
    // Sixteen 64 KiB records: reading one takes far less than a 50 ms write.
    let data = nonzero(1 << 20);
    let mut w = DiffWriter::new(Vec::new(), DiffFormat::V1).unwrap();
    w.size(data.len() as u64).unwrap();
    for (i, chunk) in data.chunks(64 << 10).enumerate() {
        w.data((i * chunk.len()) as u64, chunk).unwrap();
    }
    let stream = w.finish().unwrap();
    let target = Slow::new(MemImage::new(0));
    import_diff(
        Pipe(&stream),
        &target,
        ImportOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(
        target.max.load(Ordering::SeqCst) >= 2,
        "import wrote serially"
    );
    assert_eq!(target.inner.contents(), data);
}
