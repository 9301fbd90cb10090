//! The `book.l2` checksum (PROTOCOL.md section 4): CRC-32 (IEEE, as zlib's
//! `crc32`) of the top levels of both sides after applying a message, each
//! level written `px + ":" + qty + "\n"` with the exact wire strings, bids
//! best first, then asks best first. A client that keeps the same book
//! computes the same number, or knows its copy went wrong.

/// The most levels per side a checksum covers.
pub const CKSUM_LEVELS_MAX: usize = 25;

/// The checksum of a book: `bids` and `asks` best first, at most
/// `levels_max` (capped at [`CKSUM_LEVELS_MAX`]) levels of each side.
pub fn book_checksum(
    bids: &[(String, String)],
    asks: &[(String, String)],
    levels_max: usize,
) -> u32 {
    book_checksum_iter(
        bids.iter().map(|(p, q)| (p.as_str(), q.as_str())),
        asks.iter().map(|(p, q)| (p.as_str(), q.as_str())),
        levels_max,
    )
}

/// [`book_checksum`] over borrowed levels, so a book can be checked without
/// building strings twice.
pub fn book_checksum_iter<'a>(
    bids: impl IntoIterator<Item = (&'a str, &'a str)>,
    asks: impl IntoIterator<Item = (&'a str, &'a str)>,
    levels_max: usize,
) -> u32 {
    let n = levels_max.min(CKSUM_LEVELS_MAX);
    let mut h = crc32fast::Hasher::new();
    for (px, qty) in bids.into_iter().take(n).chain(asks.into_iter().take(n)) {
        h.update(px.as_bytes());
        h.update(b":");
        h.update(qty.as_bytes());
        h.update(b"\n");
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(px: &str, qty: &str) -> (String, String) {
        (px.to_owned(), qty.to_owned())
    }

    #[test]
    fn protocol_vectors() {
        let bids = [lv("30001.50", "0.2500"), lv("30001.00", "1.1000")];
        let asks = [lv("30002.00", "0.4000")];
        assert_eq!(book_checksum(&bids, &asks, 25), 283_928_291);
        // After the delta: bid 30001.50 removed, ask 30001.80 added.
        let bids = [lv("30001.00", "1.1000")];
        let asks = [lv("30001.80", "0.0500"), lv("30002.00", "0.4000")];
        assert_eq!(book_checksum(&bids, &asks, 25), 2_606_946_132);
    }

    #[test]
    fn only_top_levels_count() {
        let bids: Vec<_> = (0..40)
            .map(|i| lv(&format!("{}.00", 100 - i), "1.0"))
            .collect();
        let asks: Vec<_> = (0..40)
            .map(|i| lv(&format!("{}.00", 200 + i), "1.0"))
            .collect();
        let full = book_checksum(&bids, &asks, 25);
        assert_eq!(full, book_checksum(&bids[..25], &asks[..25], 100));
        assert_ne!(full, book_checksum(&bids[..24], &asks[..25], 25));
        assert_eq!(
            book_checksum(&bids, &asks, 10),
            book_checksum(&bids[..10], &asks[..10], 10)
        );
        assert_eq!(book_checksum(&[], &[], 25), 0);
    }
}
