//! Buffered reading of message heads and bodies from a byte stream. Timeouts are the caller's: every method is
//! cancel-safe in the sense that bytes already read stay in the buffer.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::wire;

/// Read granularity.
const CHUNK: usize = 4096;

/// Why a read stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed the stream. `received` is how many bytes of the unfinished item had arrived.
    Eof { received: usize },
    /// The item is larger than the caller allows.
    TooLarge,
    /// The stream failed.
    Io(io::Error),
}

/// A stream with a read buffer. Writes go to [`Buffered::get_mut`] directly.
#[derive(Debug)]
pub(crate) struct Buffered<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Buffered<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self { stream, buf: Vec::new() }
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Bytes read but not consumed yet.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops blank lines (`\r\n`) at the start of the buffer; clients may send them between requests.
    pub(crate) fn skip_blank_lines(&mut self) {
        let blank = wire::leading_blank_lines(&self.buf);
        self.buf.drain(..blank);
    }

    /// Reads more bytes into the buffer; returns how many (0 at end of stream).
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(CHUNK);
        self.stream.read_buf(&mut self.buf).await
    }

    /// Removes and returns the first `n` buffered bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buf.split_off(n.min(self.buf.len()));
        std::mem::replace(&mut self.buf, rest)
    }

    /// Reads a complete head (up to and including the blank line), at most `max` bytes long.
    pub(crate) async fn read_head(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(len) = wire::head_len(&self.buf) {
                return if len > max { Err(ReadError::TooLarge) } else { Ok(self.take(len)) };
            }
            if self.buf.len() >= max {
                return Err(ReadError::TooLarge);
            }
            self.fill_or_eof().await?;
        }
    }

    /// Reads one line ending in CRLF, at most `max` bytes long, and returns it without the CRLF.
    pub(crate) async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let mut line = self.take(p + 2);
                line.truncate(p);
                return Ok(line);
            }
            if self.buf.len() >= max {
                return Err(ReadError::TooLarge);
            }
            self.fill_or_eof().await?;
        }
    }

    /// Reads exactly `n` bytes.
    pub(crate) async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buf.len() < n {
            self.fill_or_eof().await?;
        }
        Ok(self.take(n))
    }

    /// Reads until the peer closes the stream, at most `max` bytes.
    pub(crate) async fn read_to_end(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        loop {
            if self.buf.len() > max {
                return Err(ReadError::TooLarge);
            }
            match self.fill().await {
                Ok(0) => return Ok(self.take(self.buf.len())),
                Ok(_) => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    async fn fill_or_eof(&mut self) -> Result<(), ReadError> {
        match self.fill().await {
            Ok(0) => Err(ReadError::Eof { received: self.buf.len() }),
            Ok(_) => Ok(()),
            Err(e) => Err(ReadError::Io(e)),
        }
    }
}
