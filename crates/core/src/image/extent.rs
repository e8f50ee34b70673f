//! Extents reported by [`super::Image::changed_extents`].

/// Whether an extent carries data or reads as zeros at the end point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtentKind {
    Data,
    Zero,
}

/// A byte range of an image and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
    pub kind: ExtentKind,
}

impl Extent {
    pub fn data(offset: u64, len: u64) -> Self {
        Extent {
            offset,
            len,
            kind: ExtentKind::Data,
        }
    }

    pub fn zero(offset: u64, len: u64) -> Self {
        Extent {
            offset,
            len,
            kind: ExtentKind::Zero,
        }
    }

    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}
