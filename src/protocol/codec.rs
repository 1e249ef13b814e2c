//! Framing of client bytes into lines: at most `max_len` bytes each, `\r\n` or `\n`,
//! an overlong line reported once and skipped to its end.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// One framed unit of client input. Recoverable problems are items, not decoder
/// errors, because a `FramedRead` ends the stream after its decoder's first error.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A complete line, without `\n` and without a `\r` before it.
    Line(BytesMut),
    /// A line longer than the limit; its bytes are discarded up to the next `\n`.
    TooLong,
}

/// Splits client bytes into lines of at most `max_len` bytes.
#[derive(Debug)]
pub struct LineCodec {
    max_len: usize,
    /// Where to resume the search for `\n`, so a slow line is not rescanned.
    scanned: usize,
    /// Inside a too-long line: drop bytes until its end.
    discarding: bool,
}

impl LineCodec {
    /// A codec for lines of at most `max_len` bytes (line ending not counted).
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            max_len,
            scanned: 0,
            discarding: false,
        }
    }
}

impl Decoder for LineCodec {
    type Item = Inbound;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        loop {
            let newline = buf[self.scanned..].iter().position(|&b| b == b'\n');
            match (newline, self.discarding) {
                (Some(offset), true) => {
                    buf.advance(self.scanned + offset + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (None, true) => {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                (Some(offset), false) => {
                    let mut line = buf.split_to(self.scanned + offset + 1);
                    self.scanned = 0;
                    line.truncate(line.len() - 1);
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    if line.len() > self.max_len {
                        return Ok(Some(Inbound::TooLong));
                    }
                    return Ok(Some(Inbound::Line(line)));
                }
                (None, false) => {
                    // One byte of slack: a line of exactly max_len may still end in "\r\n".
                    if buf.len() > self.max_len + 1 {
                        buf.clear();
                        self.scanned = 0;
                        self.discarding = true;
                        return Ok(Some(Inbound::TooLong));
                    }
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        // A last line without its `\n` (an `nc` user pressing Ctrl-D mid-line) still counts.
        self.scanned = 0;
        if self.discarding || buf.is_empty() {
            buf.clear();
            return Ok(None);
        }
        let line = buf.split();
        Ok(Some(if line.len() > self.max_len {
            Inbound::TooLong
        } else {
            Inbound::Line(line)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Inbound> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    fn line(s: &str) -> Inbound {
        Inbound::Line(BytesMut::from(s.as_bytes()))
    }

    #[test]
    fn frames_lines_and_drops_cr() {
        let mut codec = LineCodec::new(8);
        let items = decode_all(&mut codec, b"a\r\nbb\n\n");
        assert_eq!(items, vec![line("a"), line("bb"), line("")]);
    }

    #[test]
    fn too_long_line_is_reported_once_and_skipped() {
        let mut codec = LineCodec::new(4);
        assert_eq!(decode_all(&mut codec, b"abcdefgh"), vec![Inbound::TooLong]);
        assert_eq!(decode_all(&mut codec, b"ijkl"), vec![]);
        assert_eq!(decode_all(&mut codec, b"mn\nok\n"), vec![line("ok")]);
        assert_eq!(decode_all(&mut codec, b"12345\n"), vec![Inbound::TooLong]);
        assert_eq!(decode_all(&mut codec, b"1234\r\n"), vec![line("1234")]);
    }

    use proptest::prelude::*;

    use crate::protocol::{parse, read_line, Input};

    proptest! {
        /// Whatever a client sends, in whatever pieces: no panic, every line is
        /// either acted on or answered with one error, and the next good line works.
        #[test]
        fn any_bytes_in_any_pieces(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut input = bytes.clone();
            input.extend_from_slice(b"\nhello\n");
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(input.len())).collect();
            cuts.sort_unstable();
            cuts.push(input.len());
            let mut codec = LineCodec::new(64);
            let mut buf = BytesMut::new();
            let mut outcomes = Vec::new();
            let mut start = 0;
            for cut in cuts {
                buf.extend_from_slice(&input[start..cut]);
                start = cut;
                while let Some(item) = codec.decode(&mut buf).unwrap() {
                    outcomes.push(read_line(item, 64).and_then(|text| parse(&text)));
                }
            }
            for outcome in &outcomes {
                if let Err(err) = outcome {
                    // One line of error text, never a line break inside it.
                    let text = err.to_string();
                    prop_assert!(!text.is_empty() && !text.contains('\n'));
                }
            }
            prop_assert_eq!(
                outcomes.last(),
                Some(&Ok(Input::Chat("hello".into())))
            );
            // Every line ending ends exactly one line: acted on, or refused once.
            let lines = input.iter().filter(|&&b| b == b'\n').count();
            prop_assert_eq!(outcomes.len(), lines);
        }
    }
}
