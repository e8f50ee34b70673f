//! The [`Image`](crate::image::Image) methods a test wrapper passes on
//! unchanged to the image it wraps.

/// Inside an `impl Image for Wrapper`: the required methods but
/// `snapshots` (which wrappers answer themselves), each calling the same
/// method of the field `$inner`.
macro_rules! delegate_image_io {
    ($inner:ident) => {
        fn describe(&self) -> String {
            self.$inner.describe()
        }
        fn size(&self) -> $crate::image::Result<u64> {
            self.$inner.size()
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> $crate::image::Result<()> {
            self.$inner.read_at(offset, buf)
        }
        fn changed_extents(
            &self,
            from: Option<&str>,
            range: std::ops::Range<u64>,
            visit: &mut $crate::image::ExtentVisitor<'_>,
        ) -> $crate::image::Result<()> {
            self.$inner.changed_extents(from, range, visit)
        }
        fn write_at(&self, offset: u64, data: &[u8]) -> $crate::image::Result<()> {
            self.$inner.write_at(offset, data)
        }
        fn write_zeroes(&self, offset: u64, len: u64) -> $crate::image::Result<()> {
            self.$inner.write_zeroes(offset, len)
        }
        fn flush(&self) -> $crate::image::Result<()> {
            self.$inner.flush()
        }
        fn resize(&self, size: u64) -> $crate::image::Result<()> {
            self.$inner.resize(size)
        }
    };
}

pub(super) use delegate_image_io;
