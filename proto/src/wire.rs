//! The framing of one RPC on one QUIC bidirectional stream, as bytes in and
//! bytes out: no I/O here, so the server, the client and the fuzzer share it.
//! `docs/PROTOCOL.md` describes it byte by byte.
//!
//! ```text
//! client → server: 0x01 | method length (u16 BE) | method (UTF-8) | message*
//! server → client: message* | trailer
//! message: 0x00 | length (u32 BE) | protobuf bytes
//! trailer: 0x80 | length (u32 BE) | protobuf ccr.v1.Status
//! ```
//!
//! Decoding is in two steps in the manner of mini-redis: each `decode_*`
//! returns `Ok(None)` when the buffer does not yet hold a whole item (an
//! ordinary case, not an error), and checks every length against a limit
//! before anything is allocated.

use prost::Message;

use crate::v1::Status;

/// ALPN protocol id of ccrd.
pub const ALPN: &[u8] = b"ccr/1";
/// First byte of every request stream.
pub const VERSION: u8 = 1;
/// Flag byte of a protobuf message frame (uncompressed).
pub const MESSAGE_FLAG: u8 = 0x00;
/// Flag byte of the status trailer that ends a response.
pub const TRAILER_FLAG: u8 = 0x80;
/// Longest accepted method path.
pub const MAX_METHOD_LEN: usize = 256;
/// Default limit on one message (configurable on the server).
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;

/// The TLS alerts a refused client certificate is told by (RFC 8446).
pub mod alert {
    pub const BAD_CERTIFICATE: u8 = 42;
    pub const CERTIFICATE_EXPIRED: u8 = 45;
    pub const UNKNOWN_CA: u8 = 48;
    pub const CERTIFICATE_REQUIRED: u8 = 116;
}

/// The TLS alert a QUIC transport error code carries, if it carries one:
/// QUIC closes a connection on a TLS alert with code 0x100 + alert (RFC 9001).
pub fn tls_alert(code: u64) -> Option<u8> {
    code.checked_sub(0x100).and_then(|alert| u8::try_from(alert).ok())
}

/// gRPC status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    pub fn from_i32(code: i32) -> Code {
        use Code::*;
        match code {
            0 => Ok,
            1 => Cancelled,
            3 => InvalidArgument,
            4 => DeadlineExceeded,
            5 => NotFound,
            6 => AlreadyExists,
            7 => PermissionDenied,
            8 => ResourceExhausted,
            9 => FailedPrecondition,
            10 => Aborted,
            11 => OutOfRange,
            12 => Unimplemented,
            13 => Internal,
            14 => Unavailable,
            15 => DataLoss,
            16 => Unauthenticated,
            _ => Unknown,
        }
    }
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status { code: code as i32, message: message.into() }
    }

    pub fn ok() -> Status {
        Status::new(Code::Ok, "")
    }

    pub fn code(&self) -> Code {
        Code::from_i32(self.code)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code(), self.message)
    }
}

impl std::error::Error for Status {}

/// Why bytes are not a valid stream. Every variant is a protocol error: the
/// stream is answered with a trailer and closed; the connection stays up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unsupported protocol version {0} (expected {VERSION})")]
    UnsupportedVersion(u8),
    #[error("method name of {0} bytes is longer than {MAX_METHOD_LEN}")]
    MethodTooLong(usize),
    #[error("method name is empty or not UTF-8")]
    BadMethod,
    #[error("unknown frame flag {0:#04x}")]
    UnknownFlag(u8),
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed status trailer: {0}")]
    BadTrailer(String),
}

/// One frame of a stream after the request header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Protobuf bytes of one message.
    Message(Vec<u8>),
    Trailer(Status),
}

pub fn encode_header(method: &str, out: &mut Vec<u8>) {
    debug_assert!(method.len() <= MAX_METHOD_LEN);
    out.push(VERSION);
    out.extend_from_slice(&(method.len() as u16).to_be_bytes());
    out.extend_from_slice(method.as_bytes());
}

/// The method named at the start of a request stream, and the bytes it took.
pub fn decode_header(buf: &[u8]) -> Result<Option<(String, usize)>, WireError> {
    let Some(&version) = buf.first() else { return Ok(None) };
    if version != VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    let Some(len) = buf.get(1..3) else { return Ok(None) };
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if len > MAX_METHOD_LEN {
        return Err(WireError::MethodTooLong(len));
    }
    let Some(name) = buf.get(3..3 + len) else { return Ok(None) };
    match std::str::from_utf8(name) {
        Ok(name) if !name.is_empty() => Ok(Some((name.to_owned(), 3 + len))),
        _ => Err(WireError::BadMethod),
    }
}

pub fn encode_message(message: &impl Message, out: &mut Vec<u8>) {
    out.push(MESSAGE_FLAG);
    out.extend_from_slice(&(message.encoded_len() as u32).to_be_bytes());
    message.encode(out).expect("a Vec grows as needed");
}

pub fn encode_trailer(status: &Status, out: &mut Vec<u8>) {
    out.push(TRAILER_FLAG);
    out.extend_from_slice(&(status.encoded_len() as u32).to_be_bytes());
    status.encode(out).expect("a Vec grows as needed");
}

/// The next frame and the bytes it took; `max` bounds a message's length.
pub fn decode_frame(buf: &[u8], max: usize) -> Result<Option<(Frame, usize)>, WireError> {
    let Some(&flag) = buf.first() else { return Ok(None) };
    if flag != MESSAGE_FLAG && flag != TRAILER_FLAG {
        return Err(WireError::UnknownFlag(flag));
    }
    let Some(len) = buf.get(1..5) else { return Ok(None) };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    let Some(body) = buf.get(5..5 + len) else { return Ok(None) };
    let frame = if flag == MESSAGE_FLAG {
        Frame::Message(body.to_vec())
    } else {
        Frame::Trailer(Status::decode(body).map_err(|e| WireError::BadTrailer(e.to_string()))?)
    };
    Ok(Some((frame, 5 + len)))
}

/// Bytes read from a stream and not yet decoded. Items are cut from the
/// front by moving a cursor, not the bytes behind them: a chunk that carries
/// many small frames is decoded in linear time. The consumed prefix is
/// dropped when more bytes arrive.
#[derive(Default, Debug)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
}

impl ReadBuf {
    /// What has been read and not consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Marks the first `n` pending bytes as decoded.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Appends bytes read from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::EnqueueRequest;
    use proptest::prelude::*;

    #[test]
    fn a_whole_exchange_round_trips() {
        let request = EnqueueRequest { contact_id: 7, queue: "billing".into(), ..Default::default() };
        let mut bytes = Vec::new();
        encode_header("/ccr.v1.Gateway/Enqueue", &mut bytes);
        encode_message(&request, &mut bytes);
        let (method, used) = decode_header(&bytes).unwrap().unwrap();
        assert_eq!(method, "/ccr.v1.Gateway/Enqueue");
        let (frame, rest) = decode_frame(&bytes[used..], DEFAULT_MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(used + rest, bytes.len());
        assert_eq!(frame, Frame::Message(request.encode_to_vec()));
        let mut reply = Vec::new();
        encode_trailer(&Status::new(Code::NotFound, "unknown queue"), &mut reply);
        let (frame, _) = decode_frame(&reply, DEFAULT_MAX_MESSAGE).unwrap().unwrap();
        assert_eq!(frame, Frame::Trailer(Status::new(Code::NotFound, "unknown queue")));
    }

    #[test]
    fn every_prefix_is_incomplete_not_an_error() {
        let mut bytes = Vec::new();
        encode_header("/ccr.v1.Admin/Health", &mut bytes);
        for n in 0..bytes.len() {
            assert_eq!(decode_header(&bytes[..n]), Ok(None));
        }
        let mut frame = Vec::new();
        encode_trailer(&Status::ok(), &mut frame);
        encode_message(&EnqueueRequest { contact_id: 1, ..Default::default() }, &mut frame);
        for n in 0..5 {
            assert_eq!(decode_frame(&frame[..n], 64), Ok(None));
        }
    }

    #[test]
    fn oversized_and_unknown_frames_are_refused_before_allocating() {
        let mut huge = vec![MESSAGE_FLAG];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_frame(&huge, 1024), Err(WireError::TooLarge { len: u32::MAX as usize, max: 1024 }));
        assert_eq!(decode_frame(&[0x01, 0, 0, 0, 0], 1024), Err(WireError::UnknownFlag(1)));
        assert_eq!(decode_header(&[2, 0, 1, b'x']), Err(WireError::UnsupportedVersion(2)));
        assert_eq!(decode_header(&[1, 0xff, 0xff]), Err(WireError::MethodTooLong(0xffff)));
        assert_eq!(decode_header(&[1, 0, 1, 0xff]), Err(WireError::BadMethod));
    }

    proptest! {
        /// Arbitrary bytes never panic the decoders, and what they accept
        /// re-encodes to the same bytes.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((method, used))) = decode_header(&bytes) {
                let mut again = Vec::new();
                encode_header(&method, &mut again);
                prop_assert_eq!(&again[..], &bytes[..used]);
            }
            let mut at = 0;
            while let Ok(Some((frame, used))) = decode_frame(&bytes[at..], 256) {
                if let Frame::Message(body) = frame {
                    prop_assert_eq!(&body[..], &bytes[at + 5..at + used]);
                }
                at += used;
            }
        }
    }

    proptest! {
        /// However the bytes are cut into chunks, the same frames come out.
        #[test]
        fn a_read_buffer_yields_the_frames_whatever_the_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..30),
            cuts in proptest::collection::vec(1usize..50, 1..200),
        ) {
            let mut bytes = Vec::new();
            for body in &bodies {
                bytes.push(MESSAGE_FLAG);
                bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
                bytes.extend_from_slice(body);
            }
            let mut read = ReadBuf::default();
            let mut out = Vec::new();
            let (mut at, mut cut) = (0, cuts.iter().cycle());
            while out.len() < bodies.len() {
                while let Some((Frame::Message(body), used)) = decode_frame(read.pending(), 64).unwrap() {
                    read.consume(used);
                    out.push(body);
                }
                let n = (*cut.next().unwrap()).min(bytes.len() - at);
                if n == 0 {
                    break;
                }
                read.extend(&bytes[at..at + n]);
                at += n;
            }
            prop_assert_eq!(out, bodies);
            prop_assert!(read.is_empty());
        }
    }
}
