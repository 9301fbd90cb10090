//! The byte layout of the event log on disk: segment file names, the segment
//! header, the batch record, and the hash that chains batches together. The
//! layout is specified in the parent module's documentation; this module is
//! the only code that encodes or decodes it, so the writer, the reader, the
//! recovery scan and `bourse verify` agree by construction.

use ring::digest;

use super::Hash;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"BOURSLOG";
/// Version of the segment and record layout described in the module docs.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header, including its own CRC32C.
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Length prefix (u32) plus CRC32C (u32) in front of every record payload.
pub const RECORD_HEADER_BYTES: usize = 8;
/// prev_hash (32) + index (u64) + event count (u32): the payload without events.
pub const PAYLOAD_FIXED_BYTES: usize = 32 + 8 + 4;
/// Length prefix in front of each event inside a payload.
pub const EVENT_HEADER_BYTES: usize = 4;
/// Largest payload one batch may have. It bounds the memory a reader must
/// allocate for one record and lets a reader tell a plausible length prefix
/// from garbage; the journal bounds its batches far below this.
pub const PAYLOAD_BYTES_MAX: usize = 64 << 20;
/// Smallest whole record (a batch with no events).
pub const RECORD_BYTES_MIN: usize = RECORD_HEADER_BYTES + PAYLOAD_FIXED_BYTES;

const _: () = assert!(PAYLOAD_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(SEGMENT_HEADER_BYTES == 8 + 4 + 4 + 8 + 32 + 4 + 4);

/// File name suffix of a segment.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// File name suffix of a segment being created (renamed into place once its
/// header is durable).
pub const SEGMENT_TMP_SUFFIX: &str = ".seg.tmp";

/// `00000000000000000001.seg`: the index of the segment's first batch, 20
/// decimal digits, so that names sort in index order.
pub fn segment_file_name(first_index: u64) -> String {
    format!("{first_index:020}{SEGMENT_SUFFIX}")
}

/// The first index encoded in a segment file name, if the name is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a segment header records: where the segment's batches start and the
/// hash of the batch just before them (the chain anchor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub first_index: u64,
    pub prev_hash: Hash,
}

pub fn encode_segment_header(header: &SegmentHeader) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out[0..8].copy_from_slice(&SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // 12..16 reserved, zero
    out[16..24].copy_from_slice(&header.first_index.to_le_bytes());
    out[24..56].copy_from_slice(&header.prev_hash);
    // 56..60 reserved, zero
    let crc = crc32c::crc32c(&out[0..60]);
    out[60..64].copy_from_slice(&crc.to_le_bytes());
    out
}

pub fn decode_segment_header(bytes: &[u8]) -> Result<SegmentHeader, String> {
    if bytes.len() < SEGMENT_HEADER_BYTES {
        return Err(format!(
            "segment header incomplete: {} of {SEGMENT_HEADER_BYTES} bytes",
            bytes.len()
        ));
    }
    let bytes = &bytes[..SEGMENT_HEADER_BYTES];
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err("not an event log segment (bad magic)".to_string());
    }
    let stored_crc = read_u32(bytes, 60);
    let crc = crc32c::crc32c(&bytes[0..60]);
    if stored_crc != crc {
        return Err(format!(
            "segment header CRC32C mismatch (stored {stored_crc:08x}, computed {crc:08x})"
        ));
    }
    let version = read_u32(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(format!(
            "segment format version {version} is not supported (this build reads {FORMAT_VERSION})"
        ));
    }
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&bytes[24..56]);
    Ok(SegmentHeader {
        first_index: read_u64(bytes, 16),
        prev_hash,
    })
}

/// Payload size of a batch, or `None` if it does not fit in `usize`.
pub fn payload_len(events: &[Vec<u8>]) -> Option<usize> {
    events.iter().try_fold(PAYLOAD_FIXED_BYTES, |acc, e| {
        acc.checked_add(EVENT_HEADER_BYTES)?.checked_add(e.len())
    })
}

/// Appends the whole record (length, CRC32C, payload) for one batch to `out`
/// and returns the batch's hash. The caller has checked the payload size
/// against [`PAYLOAD_BYTES_MAX`].
pub fn encode_record(index: u64, prev_hash: &Hash, events: &[Vec<u8>], out: &mut Vec<u8>) -> Hash {
    let len = payload_len(events).expect("payload size checked by the caller");
    assert!(
        len <= PAYLOAD_BYTES_MAX,
        "payload size checked by the caller"
    );
    let start = out.len();
    out.reserve(RECORD_HEADER_BYTES + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // CRC, filled in below
    let payload_start = out.len();
    encode_payload_into(index, prev_hash, events, out);
    let payload = &out[payload_start..];
    debug_assert_eq!(payload.len(), len);
    let crc = crc32c::crc32c(payload);
    let hash = hash_payload(payload);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    hash
}

/// The payload of a batch: `prev_hash || index || count || (len || event)*`.
pub fn encode_payload_into(index: u64, prev_hash: &Hash, events: &[Vec<u8>], out: &mut Vec<u8>) {
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for event in events {
        out.extend_from_slice(&(event.len() as u32).to_le_bytes());
        out.extend_from_slice(event);
    }
}

/// SHA-256 of the payload, i.e. of `prev_hash || index || events`.
pub fn hash_payload(payload: &[u8]) -> Hash {
    let digest = digest::digest(&digest::SHA256, payload);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// The outcome of reading one record at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordRead<'a> {
    /// A whole record whose CRC32C matches; `record_bytes` includes the header.
    Whole {
        payload: &'a [u8],
        record_bytes: usize,
    },
    /// The buffer ends before the record does.
    Incomplete { have: usize, need: usize },
    /// The length prefix cannot belong to a record.
    BadLength(u32),
    /// The payload does not match its CRC32C.
    BadCrc { stored: u32, computed: u32 },
}

pub fn read_record(buf: &[u8]) -> RecordRead<'_> {
    if buf.len() < RECORD_HEADER_BYTES {
        return RecordRead::Incomplete {
            have: buf.len(),
            need: RECORD_HEADER_BYTES,
        };
    }
    let len = read_u32(buf, 0);
    if (len as usize) < PAYLOAD_FIXED_BYTES || len as usize > PAYLOAD_BYTES_MAX {
        return RecordRead::BadLength(len);
    }
    let need = RECORD_HEADER_BYTES + len as usize;
    if buf.len() < need {
        return RecordRead::Incomplete {
            have: buf.len(),
            need,
        };
    }
    let payload = &buf[RECORD_HEADER_BYTES..need];
    let stored = read_u32(buf, 4);
    let computed = crc32c::crc32c(payload);
    if stored != computed {
        return RecordRead::BadCrc { stored, computed };
    }
    RecordRead::Whole {
        payload,
        record_bytes: need,
    }
}

impl RecordRead<'_> {
    pub fn describe(&self) -> String {
        match self {
            RecordRead::Whole { .. } => "whole record".to_string(),
            RecordRead::Incomplete { have, need } => {
                format!("record incomplete: {have} of {need} bytes present")
            }
            RecordRead::BadLength(len) => format!(
                "record length prefix {len} is outside {PAYLOAD_FIXED_BYTES}..={PAYLOAD_BYTES_MAX}"
            ),
            RecordRead::BadCrc { stored, computed } => {
                format!("record CRC32C mismatch (stored {stored:08x}, computed {computed:08x})")
            }
        }
    }
}

/// The fixed part of a payload plus the number of events, after checking
/// that the event lengths exactly fill the payload.
#[derive(Debug, PartialEq, Eq)]
pub struct PayloadSummary {
    pub prev_hash: Hash,
    pub index: u64,
    pub event_count: u32,
}

pub fn summarize_payload(payload: &[u8]) -> Result<PayloadSummary, String> {
    if payload.len() < PAYLOAD_FIXED_BYTES {
        return Err(format!("payload of {} bytes is too short", payload.len()));
    }
    let mut prev_hash = [0u8; 32];
    prev_hash.copy_from_slice(&payload[0..32]);
    let index = read_u64(payload, 32);
    let event_count = read_u32(payload, 40);
    let mut at = PAYLOAD_FIXED_BYTES;
    for n in 0..event_count {
        if payload.len() - at < EVENT_HEADER_BYTES {
            return Err(format!(
                "event {n} of {event_count} runs past the payload end"
            ));
        }
        let len = read_u32(payload, at) as usize;
        at += EVENT_HEADER_BYTES;
        if payload.len() - at < len {
            return Err(format!(
                "event {n} of {event_count} runs past the payload end"
            ));
        }
        at += len;
    }
    if at != payload.len() {
        return Err(format!(
            "{} bytes after the last of {event_count} events",
            payload.len() - at
        ));
    }
    Ok(PayloadSummary {
        prev_hash,
        index,
        event_count,
    })
}

/// The events of a payload that [`summarize_payload`] accepted.
pub fn payload_events(payload: &[u8], event_count: u32) -> Vec<Vec<u8>> {
    let mut events = Vec::with_capacity(event_count as usize);
    let mut at = PAYLOAD_FIXED_BYTES;
    for _ in 0..event_count {
        let len = read_u32(payload, at) as usize;
        at += EVENT_HEADER_BYTES;
        events.push(payload[at..at + len].to_vec());
        at += len;
    }
    events
}

/// The index field of a payload that is at least [`PAYLOAD_FIXED_BYTES`] long.
pub fn payload_index(payload: &[u8]) -> u64 {
    read_u64(payload, 32)
}

pub fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

pub fn read_u64(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_index_and_round_trip() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg.tmp"),
            None
        );
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            first_index: 77,
            prev_hash: [7u8; 32],
        };
        let bytes = encode_segment_header(&header);
        assert_eq!(decode_segment_header(&bytes), Ok(header));
        for at in 0..SEGMENT_HEADER_BYTES {
            let mut bad = bytes;
            bad[at] ^= 0x10;
            assert!(
                decode_segment_header(&bad).is_err(),
                "flip at {at} accepted"
            );
        }
        assert!(decode_segment_header(&bytes[..63]).is_err());
    }

    #[test]
    fn record_layout_is_as_documented() {
        let prev = [1u8; 32];
        let events = vec![b"ab".to_vec(), Vec::new()];
        let mut out = Vec::new();
        let hash = encode_record(5, &prev, &events, &mut out);
        let payload_len = 32 + 8 + 4 + (4 + 2) + 4;
        assert_eq!(out.len(), 8 + payload_len);
        assert_eq!(read_u32(&out, 0) as usize, payload_len);
        assert_eq!(read_u32(&out, 4), crc32c::crc32c(&out[8..]));
        assert_eq!(&out[8..40], &prev);
        assert_eq!(read_u64(&out, 40), 5);
        assert_eq!(read_u32(&out, 48), 2);
        assert_eq!(read_u32(&out, 52), 2);
        assert_eq!(&out[56..58], b"ab");
        assert_eq!(read_u32(&out, 58), 0);
        assert_eq!(hash, hash_payload(&out[8..]));
        match read_record(&out) {
            RecordRead::Whole {
                payload,
                record_bytes,
            } => {
                assert_eq!(record_bytes, out.len());
                let summary = summarize_payload(payload).unwrap();
                assert_eq!(summary.index, 5);
                assert_eq!(summary.prev_hash, prev);
                assert_eq!(payload_events(payload, summary.event_count), events);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn damaged_records_are_recognised() {
        let mut out = Vec::new();
        encode_record(1, &[0u8; 32], &[b"event".to_vec()], &mut out);
        for cut in 0..out.len() {
            assert!(
                matches!(read_record(&out[..cut]), RecordRead::Incomplete { .. }),
                "cut at {cut}"
            );
        }
        let mut bad = out.clone();
        bad[20] ^= 1;
        assert!(matches!(read_record(&bad), RecordRead::BadCrc { .. }));
        let mut bad = out.clone();
        bad[0..4].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(read_record(&bad), RecordRead::BadLength(3));
    }

    #[test]
    fn malformed_payloads_are_rejected() {
        let mut payload = Vec::new();
        encode_payload_into(1, &[0u8; 32], &[b"xyz".to_vec()], &mut payload);
        assert!(summarize_payload(&payload).is_ok());
        assert!(summarize_payload(&payload[..payload.len() - 1]).is_err());
        let mut longer = payload.clone();
        longer.push(0);
        assert!(summarize_payload(&longer).is_err());
        let mut many = payload.clone();
        many[40..44].copy_from_slice(&9u32.to_le_bytes());
        assert!(summarize_payload(&many).is_err());
    }
}
