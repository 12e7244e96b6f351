//! The WebSocket protocol (RFC 6455), as much as the web terminal needs: the handshake's accept key,
//! and a frame codec for whole messages (text, binary, ping, pong, close; fragmented messages are
//! joined). Pure: no I/O, no clock. The server side requires masked frames and sends unmasked ones;
//! the client side (used by tests) does the reverse.
//!
//! It deliberately does not do extensions (`permessage-deflate` is never accepted, so browsers send
//! plain frames) or subprotocols. A hand-written codec instead of `tungstenite`: the terminal needs
//! a few hundred lines, and `tungstenite` would bring its own HTTP types and random source.

use base64::Engine as _;

/// The GUID every server appends to the client's key (RFC 6455, section 1.3).
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` answer to a `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &str) -> String {
    let mut sha1 = sha1_smol::Sha1::new();
    sha1.update(client_key.trim().as_bytes());
    sha1.update(ACCEPT_GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.digest().bytes())
}

/// One whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The peer's status code, if it sent one.
    Close(Option<u16>),
}

/// Why a byte stream is not acceptable WebSocket traffic; the connection is closed with `code()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("websocket frame is not masked as a client's must be")]
    Unmasked,
    #[error("websocket frame is masked as a server's must not be")]
    Masked,
    #[error("websocket frame uses reserved bits {0:#x}")]
    ReservedBits(u8),
    #[error("websocket opcode {0:#x} is unknown")]
    UnknownOpcode(u8),
    #[error("websocket control frame is fragmented or longer than 125 bytes")]
    BadControlFrame,
    #[error("websocket continuation frame without a message to continue")]
    StrayContinuation,
    #[error("websocket message of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: u64, limit: usize },
    #[error("websocket text message is not valid UTF-8")]
    InvalidUtf8,
}

impl WsError {
    /// The close status code that names this error.
    pub fn code(&self) -> u16 {
        match self {
            WsError::TooLarge { .. } => 1009,
            WsError::InvalidUtf8 => 1007,
            _ => 1002,
        }
    }
}

/// Which end of the connection this codec is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Turns received bytes into messages. Feed it with `push`, then call `next` until it returns
/// `Ok(None)` (more bytes needed).
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    max_message: usize,
    buffer: Vec<u8>,
    /// The opcode and payload of a fragmented message being joined.
    partial: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    pub fn new(role: Role, max_message: usize) -> Self {
        Self { role, max_message, buffer: Vec::new(), partial: None }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole message, if the buffer holds one.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Message>, WsError> {
        loop {
            let Some((fin, opcode, payload)) = self.next_frame()? else { return Ok(None) };
            match opcode {
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !fin || payload.len() > 125 {
                        return Err(WsError::BadControlFrame);
                    }
                    return Ok(Some(match opcode {
                        OP_CLOSE => Message::Close((payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))),
                        OP_PING => Message::Ping(payload),
                        _ => Message::Pong(payload),
                    }));
                }
                OP_CONTINUATION => {
                    let Some((_, joined)) = self.partial.as_mut() else { return Err(WsError::StrayContinuation) };
                    joined.extend_from_slice(&payload);
                    if joined.len() > self.max_message {
                        return Err(WsError::TooLarge { size: joined.len() as u64, limit: self.max_message });
                    }
                    if fin {
                        let (opcode, joined) = self.partial.take().expect("checked above");
                        return message(opcode, joined).map(Some);
                    }
                }
                OP_TEXT | OP_BINARY => {
                    if self.partial.is_some() {
                        return Err(WsError::StrayContinuation);
                    }
                    if fin {
                        return message(opcode, payload).map(Some);
                    }
                    self.partial = Some((opcode, payload));
                }
                other => return Err(WsError::UnknownOpcode(other)),
            }
        }
    }

    /// One frame off the buffer: (fin, opcode, unmasked payload).
    fn next_frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, WsError> {
        let buffer = &self.buffer;
        if buffer.len() < 2 {
            return Ok(None);
        }
        let (first, second) = (buffer[0], buffer[1]);
        if first & 0x70 != 0 {
            return Err(WsError::ReservedBits(first & 0x70));
        }
        let masked = second & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(WsError::Unmasked),
            (Role::Client, true) => return Err(WsError::Masked),
            _ => {}
        }
        let (length, mut offset) = match second & 0x7F {
            126 => {
                if buffer.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buffer[2], buffer[3]])), 4)
            }
            127 => {
                if buffer.len() < 10 {
                    return Ok(None);
                }
                (u64::from_be_bytes(buffer[2..10].try_into().expect("eight bytes")), 10)
            }
            short => (u64::from(short), 2),
        };
        if length > self.max_message as u64 {
            return Err(WsError::TooLarge { size: length, limit: self.max_message });
        }
        let length = length as usize;
        let mask = if masked {
            if buffer.len() < offset + 4 {
                return Ok(None);
            }
            let mask: [u8; 4] = buffer[offset..offset + 4].try_into().expect("four bytes");
            offset += 4;
            Some(mask)
        } else {
            None
        };
        if buffer.len() < offset + length {
            return Ok(None);
        }
        let mut payload = buffer[offset..offset + length].to_vec();
        if let Some(mask) = mask {
            apply_mask(&mut payload, mask);
        }
        self.buffer.drain(..offset + length);
        Ok(Some((first & 0x80 != 0, first & 0x0F, payload)))
    }
}

fn message(opcode: u8, payload: Vec<u8>) -> Result<Message, WsError> {
    if opcode == OP_TEXT {
        String::from_utf8(payload).map(Message::Text).map_err(|_| WsError::InvalidUtf8)
    } else {
        Ok(Message::Binary(payload))
    }
}

fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (idx, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[idx % 4];
    }
}

/// One unfragmented frame carrying `message`. A client must pass a `mask` (random per frame); a
/// server passes `None`.
pub fn encode(message: &Message, mask: Option<[u8; 4]>) -> Vec<u8> {
    let close_payload;
    let (opcode, payload): (u8, &[u8]) = match message {
        Message::Text(text) => (OP_TEXT, text.as_bytes()),
        Message::Binary(bytes) => (OP_BINARY, bytes),
        Message::Ping(bytes) => (OP_PING, bytes),
        Message::Pong(bytes) => (OP_PONG, bytes),
        Message::Close(code) => {
            close_payload = code.map(u16::to_be_bytes).map(|b| b.to_vec()).unwrap_or_default();
            (OP_CLOSE, &close_payload)
        }
    };
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len if len < 126 => frame.push(mask_bit | len as u8),
        len if len <= usize::from(u16::MAX) => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    let start = frame.len() + if mask.is_some() { 4 } else { 0 };
    if let Some(mask) = mask {
        frame.extend_from_slice(&mask);
    }
    frame.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut frame[start..], mask);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    /// Encodes with `mask`, decodes as `role`, and compares.
    fn check(role: Role, message: Message, mask: Option<[u8; 4]>, expected: Result<Option<Message>, WsError>) {
        let mut decoder = Decoder::new(role, 1 << 20);
        decoder.push(&encode(&message, mask));
        assert_eq!(decoder.next(), expected, "{message:?}");
    }

    #[test]
    fn round_trips_each_kind_of_message() {
        let mask = Some([1, 2, 3, 4]);
        for message in [
            Message::Text("안녕하세요, world".to_owned()),
            Message::Binary(vec![0, 255, 7]),
            Message::Binary(vec![9; 300]),
            Message::Binary(vec![3; 70_000]),
            Message::Ping(b"p".to_vec()),
            Message::Pong(Vec::new()),
            Message::Close(Some(1000)),
            Message::Close(None),
        ] {
            check(Role::Server, message.clone(), mask, Ok(Some(message.clone())));
            check(Role::Client, message.clone(), None, Ok(Some(message)));
        }
    }

    #[test]
    fn refuses_frames_masked_the_wrong_way() {
        check(Role::Server, Message::Text("x".into()), None, Err(WsError::Unmasked));
        check(Role::Client, Message::Text("x".into()), Some([9, 9, 9, 9]), Err(WsError::Masked));
    }

    #[test]
    fn refuses_invalid_utf8_text_and_oversized_messages() {
        let mut frame = encode(&Message::Binary(vec![0xff, 0xfe]), Some([0; 4]));
        frame[0] = 0x80 | OP_TEXT;
        let mut decoder = Decoder::new(Role::Server, 1024);
        decoder.push(&frame);
        assert_eq!(decoder.next(), Err(WsError::InvalidUtf8));
        let mut decoder = Decoder::new(Role::Server, 10);
        decoder.push(&encode(&Message::Binary(vec![0; 11]), Some([0; 4])));
        assert_eq!(decoder.next(), Err(WsError::TooLarge { size: 11, limit: 10 }));
        assert_eq!(WsError::TooLarge { size: 11, limit: 10 }.code(), 1009);
    }

    #[test]
    fn waits_for_a_whole_frame_byte_by_byte() {
        let frame = encode(&Message::Text("한국어".into()), Some([5, 6, 7, 8]));
        let mut decoder = Decoder::new(Role::Server, 1024);
        for byte in &frame[..frame.len() - 1] {
            decoder.push(&[*byte]);
            assert_eq!(decoder.next(), Ok(None));
        }
        decoder.push(&frame[frame.len() - 1..]);
        assert_eq!(decoder.next(), Ok(Some(Message::Text("한국어".into()))));
    }

    #[test]
    fn joins_fragments_and_passes_control_frames_between_them() {
        // "안녕" is six bytes; the split falls inside the second character.
        let text = "안녕".as_bytes();
        let mut first = encode(&Message::Binary(text[..4].to_vec()), Some([1, 1, 1, 1]));
        first[0] = OP_TEXT; // not final
        let mut last = encode(&Message::Binary(text[4..].to_vec()), Some([2, 2, 2, 2]));
        last[0] = 0x80 | OP_CONTINUATION;
        let mut decoder = Decoder::new(Role::Server, 1024);
        decoder.push(&first);
        decoder.push(&encode(&Message::Ping(b"hi".to_vec()), Some([3, 3, 3, 3])));
        decoder.push(&last);
        assert_eq!(decoder.next(), Ok(Some(Message::Ping(b"hi".to_vec()))));
        assert_eq!(decoder.next(), Ok(Some(Message::Text("안녕".into()))));
        assert_eq!(decoder.next(), Ok(None));
    }

    #[test]
    fn refuses_a_stray_continuation_and_reserved_bits() {
        let mut frame = encode(&Message::Binary(vec![1]), Some([0; 4]));
        frame[0] = 0x80 | OP_CONTINUATION;
        let mut decoder = Decoder::new(Role::Server, 1024);
        decoder.push(&frame);
        assert_eq!(decoder.next(), Err(WsError::StrayContinuation));
        let mut frame = encode(&Message::Binary(vec![1]), Some([0; 4]));
        frame[0] |= 0x40;
        let mut decoder = Decoder::new(Role::Server, 1024);
        decoder.push(&frame);
        assert_eq!(decoder.next(), Err(WsError::ReservedBits(0x40)));
    }
}
