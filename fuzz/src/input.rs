//! The framing every sequence target reads: a fixed header, then records `op: u8, len: u16 LE, body: [u8; len]`.
//! Reads past the end give zeros (fixed fields) or fewer bytes (bodies), so every byte string is a valid input;
//! a record cut short by the end of the input takes what is left.

/// A cursor over the fuzzer's bytes.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// What has not been read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// A fixed-size field, zero-filled past the end.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let got = self.bytes(N);
        out[..got.len()].copy_from_slice(got);
        out
    }

    /// One byte, 0 past the end.
    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    /// The next record, `None` once the input is used up.
    pub fn record(&mut self) -> Option<(u8, &'a [u8])> {
        if self.is_empty() {
            return None;
        }
        let op = self.u8();
        let len = usize::from(self.u16());
        Some((op, self.bytes(len)))
    }
}

/// Builds inputs in the same framing (for the corpus generator and the regression tests).
#[derive(Debug, Default, Clone)]
pub struct Builder(Vec<u8>);

impl Builder {
    /// Starts an input with `header` verbatim.
    pub fn new(header: &[u8]) -> Self {
        Self(header.to_vec())
    }

    /// Appends one record. Bodies longer than `u16::MAX` are cut (no target reads more).
    pub fn record(mut self, op: u8, body: &[u8]) -> Self {
        let body = &body[..body.len().min(usize::from(u16::MAX))];
        self.0.push(op);
        self.0.extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.0.extend_from_slice(body);
        self
    }

    /// The bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0
    }
}
