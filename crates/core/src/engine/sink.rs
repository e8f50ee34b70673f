//! An image that discards writes: the target of verification reads.

use crate::image::{ExtentVisitor, Image, ImageError, Result, Snapshots};
use std::ops::Range;

/// Accepts and forgets writes; reads as zeros.
#[derive(Debug)]
pub struct NullImage {
    pub size: u64,
}

impl Image for NullImage {
    fn describe(&self) -> String {
        "null".into()
    }
    fn size(&self) -> Result<u64> {
        Ok(self.size)
    }
    fn read_at(&self, _offset: u64, buf: &mut [u8]) -> Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn changed_extents(
        &self,
        _: Option<&str>,
        _: Range<u64>,
        _: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        Ok(())
    }
    fn write_at(&self, _offset: u64, _data: &[u8]) -> Result<()> {
        Ok(())
    }
    fn write_zeroes(&self, _offset: u64, _len: u64) -> Result<()> {
        Ok(())
    }
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    fn resize(&self, _size: u64) -> Result<()> {
        Err(ImageError::Unsupported {
            what: self.describe(),
            op: "resize",
        })
    }
    fn snapshots(&self) -> Option<&dyn Snapshots> {
        None
    }
}
