//! What a subscriber reads, read where it lies: the server's WebSocket
//! frames parsed in the connection's own buffer (a server never masks its
//! frames, RFC 6455 section 5.1), and the envelope of a MessagePack stream
//! message (`ch`, `type`, `epoch`, `prev`, `seq`, `ts`, a gap's `lost`, a
//! heartbeat's `last`) read without building anything, every other value
//! stepped over by its MessagePack length.
//!
//! The fan-out readers use it: the measuring client shares the machine's
//! cores with the server, so every microsecond it spends per message is
//! taken from the server it measures. Responses and JSON frames still go
//! through the serde reader ([`crate::wire::decode_incoming`]).

use rmp::Marker;

/// Opcodes of RFC 6455 section 5.2.
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Heartbeat `last` entries read from one heartbeat (a subscriber reads two
/// streams; the rest are stepped over).
pub const LAST_KEYS_MAX: usize = 8;

/// One frame at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// The front of a buffer, as frames go.
#[derive(Debug, PartialEq, Eq)]
pub enum Front<'a> {
    /// A whole frame and the bytes it took.
    Frame(Frame<'a>, usize),
    /// Not a whole frame yet: at least this many bytes are needed in all.
    Partial(usize),
    /// Not a frame a server may send.
    Bad(&'static str),
}

/// Parses the frame at the front of `buf`.
pub fn front(buf: &[u8]) -> Front<'_> {
    if buf.len() < 2 {
        return Front::Partial(2);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b1 & 0x80 != 0 {
        return Front::Bad("masked frame from the server");
    }
    if b0 & 0x70 != 0 {
        return Front::Bad("reserved bits set");
    }
    let (len, head) = match b1 & 0x7F {
        126 => {
            if buf.len() < 4 {
                return Front::Partial(4);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Front::Partial(10);
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n), 10)
        }
        n => (u64::from(n), 2),
    };
    let Some(total) = usize::try_from(len).ok().and_then(|l| l.checked_add(head)) else {
        return Front::Bad("frame length overflows");
    };
    if buf.len() < total {
        return Front::Partial(total);
    }
    Front::Frame(Frame { fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, payload: &buf[head..total] }, total)
}

/// The envelope of a stream message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// It carries `ok`: a response, for the serde reader.
    pub response: bool,
    pub ch: &'a [u8],
    pub kind: &'a [u8],
    pub epoch: Option<u64>,
    pub prev: Option<u64>,
    pub seq: Option<u64>,
    pub ts: Option<u64>,
    pub lost: Option<[u64; 2]>,
    /// A heartbeat's `last`: stream key and seq, at most [`LAST_KEYS_MAX`].
    pub last: Vec<(&'a [u8], u64)>,
}

/// Reads the envelope of one MessagePack message (a map with string keys).
pub fn envelope(msg: &[u8]) -> Result<Envelope<'_>, &'static str> {
    let mut r = Reader { b: msg, at: 0 };
    let mut env = Envelope::default();
    let n = r.map_len()?;
    for _ in 0..n {
        match r.str()? {
            b"ok" => {
                env.response = true;
                r.skip()?;
            }
            b"ch" => env.ch = r.str()?,
            b"type" => env.kind = r.str()?,
            b"epoch" => env.epoch = r.opt_uint()?,
            b"prev" => env.prev = r.opt_uint()?,
            b"seq" => env.seq = r.opt_uint()?,
            b"ts" => env.ts = r.opt_uint()?,
            b"lost" => {
                if r.array_len()? != 2 {
                    return Err("lost is not a pair");
                }
                env.lost = Some([r.uint()?, r.uint()?]);
            }
            b"last" => {
                for _ in 0..r.map_len()? {
                    let key = r.str()?;
                    let seq = r.uint()?;
                    if env.last.len() < LAST_KEYS_MAX {
                        env.last.push((key, seq));
                    }
                }
            }
            _ => r.skip()?,
        }
    }
    Ok(env)
}

/// A cursor over MessagePack bytes.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

const SHORT: &str = "MessagePack message cut short";

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(SHORT)?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn marker(&mut self) -> Result<Marker, &'static str> {
        Ok(Marker::from_u8(self.take(1)?[0]))
    }

    /// A big-endian unsigned number of `n` bytes.
    fn be(&mut self, n: usize) -> Result<u64, &'static str> {
        Ok(self.take(n)?.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, &'static str> {
        usize::try_from(self.be(n)?).map_err(|_| SHORT)
    }

    fn map_len(&mut self) -> Result<usize, &'static str> {
        match self.marker()? {
            Marker::FixMap(n) => Ok(usize::from(n)),
            Marker::Map16 => self.len(2),
            Marker::Map32 => self.len(4),
            _ => Err("expected a map"),
        }
    }

    fn array_len(&mut self) -> Result<usize, &'static str> {
        match self.marker()? {
            Marker::FixArray(n) => Ok(usize::from(n)),
            Marker::Array16 => self.len(2),
            Marker::Array32 => self.len(4),
            _ => Err("expected an array"),
        }
    }

    fn str(&mut self) -> Result<&'a [u8], &'static str> {
        let n = match self.marker()? {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.len(1)?,
            Marker::Str16 => self.len(2)?,
            Marker::Str32 => self.len(4)?,
            _ => return Err("expected a string"),
        };
        self.take(n)
    }

    fn uint(&mut self) -> Result<u64, &'static str> {
        self.opt_uint()?.ok_or("expected a number")
    }

    /// An unsigned integer, or `nil`.
    fn opt_uint(&mut self) -> Result<Option<u64>, &'static str> {
        let signed = |v: i64| u64::try_from(v).map(Some).map_err(|_| "negative number");
        match self.marker()? {
            Marker::Null => Ok(None),
            Marker::FixPos(v) => Ok(Some(u64::from(v))),
            Marker::U8 => self.be(1).map(Some),
            Marker::U16 => self.be(2).map(Some),
            Marker::U32 => self.be(4).map(Some),
            Marker::U64 => self.be(8).map(Some),
            Marker::I8 => signed(i64::from(self.take(1)?[0] as i8)),
            Marker::I16 => signed(i64::from(self.be(2)? as u16 as i16)),
            Marker::I32 => signed(i64::from(self.be(4)? as u32 as i32)),
            Marker::I64 => signed(self.be(8)? as i64),
            _ => Err("expected a number"),
        }
    }

    /// Steps over one value, whatever it holds.
    fn skip(&mut self) -> Result<(), &'static str> {
        let mut left: usize = 1;
        while left > 0 {
            left -= 1;
            let bytes = match self.marker()? {
                Marker::Null | Marker::True | Marker::False | Marker::FixPos(_) | Marker::FixNeg(_) => 0,
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                Marker::FixStr(n) => usize::from(n),
                Marker::Str8 | Marker::Bin8 => self.len(1)?,
                Marker::Str16 | Marker::Bin16 => self.len(2)?,
                Marker::Str32 | Marker::Bin32 => self.len(4)?,
                Marker::FixExt1 => 2,
                Marker::FixExt2 => 3,
                Marker::FixExt4 => 5,
                Marker::FixExt8 => 9,
                Marker::FixExt16 => 17,
                Marker::Ext8 => self.len(1)? + 1,
                Marker::Ext16 => self.len(2)? + 1,
                Marker::Ext32 => self.len(4)? + 1,
                Marker::FixArray(n) => {
                    left = left.checked_add(usize::from(n)).ok_or(SHORT)?;
                    0
                }
                Marker::Array16 => {
                    let n = self.len(2)?;
                    left = left.checked_add(n).ok_or(SHORT)?;
                    0
                }
                Marker::Array32 => {
                    let n = self.len(4)?;
                    left = left.checked_add(n).ok_or(SHORT)?;
                    0
                }
                Marker::FixMap(n) => {
                    left = left.checked_add(2 * usize::from(n)).ok_or(SHORT)?;
                    0
                }
                Marker::Map16 => {
                    let n = self.len(2)?;
                    left = left.checked_add(n.checked_mul(2).ok_or(SHORT)?).ok_or(SHORT)?;
                    0
                }
                Marker::Map32 => {
                    let n = self.len(4)?;
                    left = left.checked_add(n.checked_mul(2).ok_or(SHORT)?).ok_or(SHORT)?;
                    0
                }
                Marker::Reserved => return Err("reserved MessagePack marker"),
            };
            self.take(bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::decode_incoming;
    use bourse_protocol::codec::{self, Encoding};
    use bourse_protocol::msg::{BookL2, ReqId, Response};
    use serde_json::json;

    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_of_every_length_form_are_read_whole_and_only_whole() {
        for n in [0usize, 1, 125, 126, 127, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut buf = frame(OP_BINARY, &payload);
            let whole = buf.len();
            buf.extend_from_slice(&frame(OP_TEXT, b"next"));
            match front(&buf) {
                Front::Frame(f, used) => {
                    assert_eq!((f.fin, f.opcode, f.payload), (true, OP_BINARY, &payload[..]));
                    assert_eq!(used, whole);
                    assert_eq!(front(&buf[used..]), Front::Frame(Frame { fin: true, opcode: OP_TEXT, payload: b"next" }, 6));
                }
                other => panic!("{n}: {other:?}"),
            }
            for cut in [0, 1, whole / 2, whole - 1] {
                match front(&buf[..cut]) {
                    Front::Partial(need) => assert!(need > cut && need <= whole, "{n} cut {cut}: need {need}"),
                    other => panic!("{n} cut {cut}: {other:?}"),
                }
            }
        }
        assert_eq!(front(&[0x82, 0x81, 0, 0, 0, 0, 0]), Front::Bad("masked frame from the server"));
        assert_eq!(front(&[0xC2, 0x00]), Front::Bad("reserved bits set"));
        assert!(matches!(front(&[0x02, 0x01, 7]), Front::Frame(Frame { fin: false, opcode: OP_BINARY, .. }, 3)));
    }

    #[test]
    fn envelopes_match_the_serde_reader_on_server_messages() {
        let mut levels = Vec::new();
        for i in 0..50 {
            levels.push((format!("{}", 100_000 + i), format!("0.{i:02}")));
        }
        let delta = BookL2::delta("BTC-USD", 3, 70_000, 70_001, 1_764_561_000_000_000, 50, levels.clone(), levels);
        let delta = codec::encode(Encoding::MsgPack, &bourse_protocol::StreamEvent::BookL2(delta));
        let others = [
            json!({"ch": "trades", "sym": "BTC-USD", "type": "update", "epoch": 3, "prev": 99, "seq": 101, "ts": 5,
                   "data": [{"id": 100, "px": "100000", "qty": "0.5", "taker": "buy", "ts": 4},
                            {"id": 101, "px": "100001", "qty": "0.25", "taker": "sell", "ts": 5}]}),
            json!({"ch": "book.l2", "sym": "BTC-USD", "type": "snapshot", "epoch": 1, "seq": 4_294_967_296u64, "ts": 1,
                   "depth": 50, "bids": [["1", "2"]], "asks": []}),
            json!({"ch": "book.l2", "sym": "BTC-USD", "type": "gap", "epoch": 1, "lost": [10, 65_536],
                   "reason": "slow_consumer", "extra": {"nested": [1.5, -3, null, true, {"k": "v"}]}}),
            json!({"ch": "hb", "ts": 7, "last": {"book.l2:BTC-USD:50": 300, "trades:BTC-USD": 12}}),
            json!({"ch": "book.l2", "type": "delta", "epoch": 2, "prev": null, "seq": 255, "ts": 65_535}),
        ];
        let mut msgs = vec![delta.as_bytes().to_vec()];
        msgs.extend(others.iter().map(|v| rmp_serde::to_vec_named(v).unwrap()));
        for m in &msgs {
            let serde = decode_incoming(m, true).unwrap();
            let env = envelope(m).unwrap();
            assert!(!env.response);
            assert_eq!(env.ch, serde.ch.as_deref().unwrap_or("").as_bytes());
            assert_eq!(env.kind, serde.kind.as_deref().unwrap_or("").as_bytes());
            assert_eq!((env.epoch, env.prev, env.seq, env.ts), (serde.epoch, serde.prev, serde.seq, serde.ts));
            assert_eq!(env.lost, serde.lost);
            let last: Vec<(String, u64)> =
                env.last.iter().map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), *v)).collect();
            let want: Vec<(String, u64)> = serde.last.clone().unwrap_or_default().into_iter().collect();
            assert_eq!(last, want);
        }
        assert_eq!(envelope(&msgs[1]).unwrap().seq, Some(101));
        assert_eq!(envelope(&msgs[3]).unwrap().lost, Some([10, 65_536]));

        let ok = codec::encode(Encoding::MsgPack, &Response::ok(ReqId::Num(1), json!({"ch": "trades"}), 1, 2));
        assert!(envelope(ok.as_bytes()).unwrap().response);
        for cut in 0..msgs[1].len() {
            assert!(envelope(&msgs[1][..cut]).is_err(), "cut at {cut} read as whole");
        }
    }
}
