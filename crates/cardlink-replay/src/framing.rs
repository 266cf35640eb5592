//! Record framing of event files: JSON Lines, or protobuf messages each
//! preceded by its varint length.

use std::io::{self, BufRead};

use cardlink_wire::{Format, MAX_RECORD_BYTES};

/// One record read from a stream.
pub enum Frame<'a> {
    /// A complete record and its position (line number, or record number
    /// for protobuf).
    Record {
        /// The record's bytes (without the newline or length prefix).
        bytes: &'a [u8],
        /// 1-based line or record number.
        position: u64,
    },
    /// A record that cannot be framed whole (too large, cut short): a dead
    /// letter with what could be kept of it.
    Broken {
        /// The start of the record.
        bytes: Vec<u8>,
        /// 1-based line or record number.
        position: u64,
        /// What is wrong.
        why: String,
    },
}

/// Reads records one at a time into a reused buffer: memory stays bounded
/// by the largest record, whatever the file's size.
pub struct RecordReader<R> {
    input: R,
    format: Format,
    buf: Vec<u8>,
    position: u64,
    done: bool,
}

impl<R: BufRead> RecordReader<R> {
    /// A reader of `format` records.
    pub fn new(input: R, format: Format) -> Self {
        RecordReader { input, format, buf: Vec::with_capacity(1024), position: 0, done: false }
    }

    /// The next record, or `None` at the end of the stream.
    pub fn next_record(&mut self) -> io::Result<Option<Frame<'_>>> {
        if self.done {
            return Ok(None);
        }
        match self.format {
            Format::Json => self.next_line(),
            Format::Protobuf => self.next_delimited(),
        }
    }

    fn next_line(&mut self) -> io::Result<Option<Frame<'_>>> {
        loop {
            self.buf.clear();
            // A line longer than the record limit is read in bounded chunks
            // and dropped, keeping only its start for the dead letter.
            let n = (&mut self.input).take(MAX_RECORD_BYTES as u64 + 1).read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                self.done = true;
                return Ok(None);
            }
            self.position += 1;
            if self.buf.len() > MAX_RECORD_BYTES && self.buf.last() != Some(&b'\n') {
                let start = self.buf[..1024].to_vec();
                let mut skipped = self.buf.len() as u64;
                loop {
                    self.buf.clear();
                    let m = (&mut self.input).take(MAX_RECORD_BYTES as u64).read_until(b'\n', &mut self.buf)?;
                    skipped += m as u64;
                    if m == 0 || self.buf.last() == Some(&b'\n') {
                        break;
                    }
                }
                return Ok(Some(Frame::Broken {
                    bytes: start,
                    position: self.position,
                    why: format!("line of {skipped} bytes exceeds the {MAX_RECORD_BYTES}-byte record limit"),
                }));
            }
            let mut end = self.buf.len();
            while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            // Blank lines separate nothing and carry nothing: skipped.
            if self.buf[..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(Frame::Record { bytes: &self.buf[..end], position: self.position }));
        }
    }

    fn next_delimited(&mut self) -> io::Result<Option<Frame<'_>>> {
        let mut len: u64 = 0;
        let mut shift = 0;
        let mut first = true;
        loop {
            let mut byte = [0u8; 1];
            if self.input.read(&mut byte)? == 0 {
                self.done = true;
                if first {
                    return Ok(None);
                }
                self.position += 1;
                return Ok(Some(Frame::Broken {
                    bytes: Vec::new(),
                    position: self.position,
                    why: "the file ends inside a length prefix".into(),
                }));
            }
            first = false;
            len |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                self.done = true;
                self.position += 1;
                return Ok(Some(Frame::Broken {
                    bytes: Vec::new(),
                    position: self.position,
                    why: "corrupt length prefix; the rest of the file cannot be framed".into(),
                }));
            }
        }
        self.position += 1;
        if len > MAX_RECORD_BYTES as u64 {
            let mut start = vec![0u8; 0];
            let kept = (&mut self.input).take(1024).read_to_end(&mut start)? as u64;
            let rest = io::copy(&mut (&mut self.input).take(len - kept), &mut io::sink())?;
            if kept + rest < len {
                self.done = true;
            }
            return Ok(Some(Frame::Broken {
                bytes: start,
                position: self.position,
                why: format!("record of {len} bytes exceeds the {MAX_RECORD_BYTES}-byte record limit"),
            }));
        }
        self.buf.clear();
        let got = (&mut self.input).take(len).read_to_end(&mut self.buf)?;
        if (got as u64) < len {
            self.done = true;
            return Ok(Some(Frame::Broken {
                bytes: std::mem::take(&mut self.buf),
                position: self.position,
                why: format!("the file ends inside a record ({got} of {len} bytes)"),
            }));
        }
        Ok(Some(Frame::Record { bytes: &self.buf, position: self.position }))
    }
}

use std::io::Read;

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(format: Format, input: &[u8]) -> Vec<Result<Vec<u8>, String>> {
        let mut r = RecordReader::new(input, format);
        let mut out = Vec::new();
        while let Some(f) = r.next_record().unwrap() {
            out.push(match f {
                Frame::Record { bytes, .. } => Ok(bytes.to_vec()),
                Frame::Broken { why, .. } => Err(why),
            });
        }
        out
    }

    #[test]
    fn json_lines_framing() {
        let got = frames(Format::Json, b"a\r\n\n  \nb\nc");
        assert_eq!(got, vec![Ok(b"a".to_vec()), Ok(b"b".to_vec()), Ok(b"c".to_vec())]);
        let mut big = vec![b'x'; MAX_RECORD_BYTES + 10];
        big.extend_from_slice(b"\nnext\n");
        let got = frames(Format::Json, &big);
        assert!(got[0].is_err());
        assert_eq!(got[1], Ok(b"next".to_vec()));
    }

    #[test]
    fn delimited_framing() {
        let mut input = vec![3, b'a', b'b', b'c', 0, 1, b'z'];
        let got = frames(Format::Protobuf, &input);
        assert_eq!(got, vec![Ok(b"abc".to_vec()), Ok(vec![]), Ok(b"z".to_vec())]);
        input.extend_from_slice(&[5, b'x']);
        let got = frames(Format::Protobuf, &input);
        assert!(got[3].as_ref().unwrap_err().contains("ends inside a record"));
    }
}
