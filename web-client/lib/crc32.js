// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib's crc32).
//
// The exchange checksums the top of every `book.l2` book with it
// (PROTOCOL.md section 4); the page recomputes it over its own copy of the
// book to prove that copy is the exchange's.

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

const encoder = new TextEncoder();

/** CRC-32 of bytes, as an unsigned 32-bit integer. */
export function crc32Bytes(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** CRC-32 of the UTF-8 encoding of a string. */
export function crc32(str) {
  return crc32Bytes(encoder.encode(str));
}
