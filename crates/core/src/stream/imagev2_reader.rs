//! A pull reader for "rbd image v2": the header, then one [`DiffReader`]
//! per diff.

use std::io::Read;

use super::bytes::ByteReader;
use super::error::Result;
use super::format::DiffFormat;
use super::imagev2::ImageV2Header;
use super::reader::DiffReader;
use super::v2header;

/// Reads an "rbd image v2" stream; see [`ImageV2Reader::next_diff`].
pub struct ImageV2Reader<R: Read> {
    src: ByteReader<R>,
    header: ImageV2Header,
    diffs_left: u64,
}

impl<R: Read> ImageV2Reader<R> {
    /// Reads everything up to the first diff. Reads exactly the stream's
    /// bytes, in small pieces: wrap plain files and pipes in a `BufReader`.
    pub fn new(inner: R) -> Result<Self> {
        let mut src = ByteReader::new(inner, 0);
        let (header, diffs_left) = v2header::read(&mut src)?;
        Ok(ImageV2Reader {
            src,
            header,
            diffs_left,
        })
    }

    pub fn header(&self) -> &ImageV2Header {
        &self.header
    }

    /// Diffs not yet started (the stream's count; not trusted for sizing).
    pub fn diffs_left(&self) -> u64 {
        self.diffs_left
    }

    /// The stream offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.src.position()
    }

    /// The next diff (v2), or `None` after the last. Read each one through
    /// [`super::Record::End`] before asking for the next.
    pub fn next_diff(&mut self) -> Result<Option<DiffReader<impl Read + '_>>> {
        if self.diffs_left == 0 {
            return Ok(None);
        }
        self.diffs_left -= 1;
        let pos = self.src.position();
        DiffReader::at_offset(&mut self.src, pos, Some(DiffFormat::V2)).map(Some)
    }
}
