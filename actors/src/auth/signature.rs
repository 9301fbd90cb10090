//! API-key signatures (PROTOCOL.md section 3): the string a client signs, the
//! two verifiers, and generation of new keys.
//!
//! The signed message is the UTF-8 string `ts "\n" nonce "\n" "auth" "\n" key`.
//! `hmac-sha256` signatures are hex; the HMAC key is the 64-hex-character
//! secret's UTF-8 bytes exactly as given (not hex-decoded), so any client can
//! sign with the secret string it was shown. `ed25519` keys are registered by
//! their 32-byte public key in standard base64 and sign with a standard-base64
//! 64-byte signature. Verification is constant time (`ring::hmac::verify`,
//! ring's Ed25519), and every malformed input is simply "does not verify".

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{UnparsedPublicKey, ED25519};

pub use bourse_protocol::msg::SigAlg;

/// Length of an HMAC secret in hex characters (32 random bytes).
pub const HMAC_SECRET_HEX_LEN: usize = 64;
/// Random bytes in a key id (96 bits: collisions are not a practical concern).
pub const KEY_ID_BYTES: usize = 12;
/// Length of a raw Ed25519 public key.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// Length of a raw Ed25519 signature.
pub const ED25519_SIGNATURE_LEN: usize = 64;
/// The longest base64 text worth decoding for a key or signature; anything
/// longer cannot be a 32- or 64-byte value.
const BASE64_LEN_MAX: usize = 100;

/// The wire names of [`SigAlg`] (the protocol's type, which `auth` decodes).
pub trait SigAlgExt: Sized {
    /// The wire name (`"hmac-sha256"`, `"ed25519"`).
    fn as_str(&self) -> &'static str;
    /// The algorithm with this wire name, if any.
    fn parse(name: &str) -> Option<Self>;
}

impl SigAlgExt for SigAlg {
    fn as_str(&self) -> &'static str {
        match self {
            SigAlg::HmacSha256 => "hmac-sha256",
            SigAlg::Ed25519 => "ed25519",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "hmac-sha256" => Some(SigAlg::HmacSha256),
            "ed25519" => Some(SigAlg::Ed25519),
            _ => None,
        }
    }
}

/// The message an API-key `auth` signs: `ts + "\n" + nonce + "\n" + "auth" + "\n" + key`.
pub fn signing_string(ts: u64, nonce: &str, key: &str) -> String {
    format!("{ts}\n{nonce}\nauth\n{key}")
}

/// Whether `sig_hex` is the HMAC-SHA256 of `msg` under the key `secret.as_bytes()`.
/// Upper- and lower-case hex are both accepted; the tag comparison is constant time.
pub fn verify_hmac(secret: &str, msg: &str, sig_hex: &str) -> bool {
    let Ok(tag) = hex::decode(sig_hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, msg.as_bytes(), &tag).is_ok()
}

/// The lower-case hex HMAC-SHA256 of `msg` under `secret.as_bytes()`: what a
/// client sends as `sig` (used by the exchange's own clients and tests).
pub fn sign_hmac(secret: &str, msg: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(hmac::sign(&key, msg.as_bytes()).as_ref())
}

/// Whether `sig_b64` (standard base64 of 64 bytes) is a valid Ed25519
/// signature of `msg` by the key `public_key_b64` (standard base64 of 32 bytes).
pub fn verify_ed25519(public_key_b64: &str, msg: &str, sig_b64: &str) -> bool {
    let Some(public_key) = decode_b64_exact(public_key_b64, ED25519_PUBLIC_KEY_LEN) else {
        return false;
    };
    let Some(sig) = decode_b64_exact(sig_b64, ED25519_SIGNATURE_LEN) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, &public_key)
        .verify(msg.as_bytes(), &sig)
        .is_ok()
}

/// Whether `b64` is standard base64 of exactly 32 bytes, the form an Ed25519
/// public key is registered in.
pub fn validate_ed25519_public_key(b64: &str) -> bool {
    decode_b64_exact(b64, ED25519_PUBLIC_KEY_LEN).is_some()
}

/// Whether `secret` has the form of an HMAC secret: exactly 64 hex characters.
pub fn validate_hmac_secret(secret: &str) -> bool {
    secret.len() == HMAC_SECRET_HEX_LEN && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A new random key id (24 lower-case hex characters).
pub fn generate_key_id() -> String {
    hex::encode(random_bytes::<KEY_ID_BYTES>())
}

/// A new random HMAC secret (64 lower-case hex characters, 256 bits).
pub fn generate_hmac_secret() -> String {
    hex::encode(random_bytes::<{ HMAC_SECRET_HEX_LEN / 2 }>())
}

/// A new HMAC API key: `(key_id, secret)`. The secret is shown to the client
/// once (PROTOCOL.md section 7) and kept by the exchange to verify signatures.
pub fn generate_api_key() -> (String, String) {
    (generate_key_id(), generate_hmac_secret())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random generator must work");
    bytes
}

fn decode_b64_exact(b64: &str, len: usize) -> Option<Vec<u8>> {
    if b64.len() > BASE64_LEN_MAX {
        return None;
    }
    let bytes = BASE64.decode(b64).ok()?;
    (bytes.len() == len).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    fn keypair() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn hmac_hex(key: &[u8], data: &[u8]) -> String {
        hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref())
    }

    #[test]
    fn signing_string_layout() {
        assert_eq!(
            signing_string(1732051200123456, "n-1", "k1"),
            "1732051200123456\nn-1\nauth\nk1"
        );
    }

    #[test]
    fn rfc4231_hmac_sha256_vectors() {
        // Test case 1.
        assert_eq!(
            hmac_hex(&[0x0b; 20], b"Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 3.
        assert_eq!(
            hmac_hex(&[0xaa; 20], &[0xdd; 50]),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
        );
        // Test case 6: a key longer than the block size.
        assert_eq!(
            hmac_hex(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Test case 2 through verify_hmac, whose key is the secret's UTF-8 bytes.
        assert!(verify_hmac(
            "Jefe",
            "what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        ));
        assert!(verify_hmac(
            "Jefe",
            "what do ya want for nothing?",
            "5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
        ));
    }

    #[test]
    fn hmac_key_is_the_secret_text_not_its_hex_decoding() {
        let (_, secret) = generate_api_key();
        let msg = signing_string(1, "n", "k");
        let sig = sign_hmac(&secret, &msg);
        assert_eq!(sig, hmac_hex(secret.as_bytes(), msg.as_bytes()));
        assert_ne!(
            sig,
            hmac_hex(&hex::decode(&secret).unwrap(), msg.as_bytes())
        );
        assert!(verify_hmac(&secret, &msg, &sig));
    }

    #[test]
    fn hmac_refuses_wrong_secret_message_or_signature() {
        let (key, secret) = generate_api_key();
        let msg = signing_string(1_000, "abc", &key);
        let sig = sign_hmac(&secret, &msg);
        assert!(verify_hmac(&secret, &msg, &sig));
        let (_, other_secret) = generate_api_key();
        assert!(!verify_hmac(&other_secret, &msg, &sig));
        assert!(!verify_hmac(
            &secret,
            &signing_string(1_001, "abc", &key),
            &sig
        ));
        assert!(!verify_hmac(&secret, &msg, &sig[..62]));
        assert!(!verify_hmac(&secret, &msg, "zz"));
        assert!(!verify_hmac(&secret, &msg, ""));
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert!(!verify_hmac(
            &secret,
            &msg,
            std::str::from_utf8(&flipped).unwrap()
        ));
    }

    #[test]
    fn ed25519_verifies_a_real_signature_and_nothing_else() {
        let kp = keypair();
        let public = BASE64.encode(kp.public_key().as_ref());
        assert!(validate_ed25519_public_key(&public));
        let msg = signing_string(1_732_051_200_123_456, "nonce-7", "key-ed");
        let sig = BASE64.encode(kp.sign(msg.as_bytes()).as_ref());
        assert!(verify_ed25519(&public, &msg, &sig));

        // Another message, another key, a damaged or malformed signature.
        assert!(!verify_ed25519(
            &public,
            &signing_string(1, "nonce-7", "key-ed"),
            &sig
        ));
        let other = BASE64.encode(keypair().public_key().as_ref());
        assert!(!verify_ed25519(&other, &msg, &sig));
        let mut raw = BASE64.decode(&sig).unwrap();
        raw[10] ^= 1;
        assert!(!verify_ed25519(&public, &msg, &BASE64.encode(&raw)));
        assert!(!verify_ed25519(&public, &msg, &BASE64.encode(&raw[..63])));
        assert!(!verify_ed25519(&public, &msg, "not base64!"));
        assert!(!verify_ed25519("", &msg, &sig));
    }

    #[test]
    fn public_key_validation() {
        assert!(validate_ed25519_public_key(&BASE64.encode([7u8; 32])));
        assert!(!validate_ed25519_public_key(&BASE64.encode([7u8; 31])));
        assert!(!validate_ed25519_public_key(&BASE64.encode([7u8; 33])));
        assert!(!validate_ed25519_public_key("%%%"));
        assert!(!validate_ed25519_public_key(""));
        // URL-safe alphabet is not the protocol's standard base64.
        let with_url_chars = BASE64
            .encode([0xfbu8; 32])
            .replace('+', "-")
            .replace('/', "_");
        assert!(!validate_ed25519_public_key(&with_url_chars));
    }

    #[test]
    fn generated_keys_have_the_protocol_shape_and_differ() {
        let (id1, secret1) = generate_api_key();
        let (id2, secret2) = generate_api_key();
        assert_eq!(secret1.len(), 64);
        assert!(validate_hmac_secret(&secret1));
        assert_eq!(id1.len(), KEY_ID_BYTES * 2);
        assert_ne!(id1, id2);
        assert_ne!(secret1, secret2);
        assert!(!validate_hmac_secret(&secret1[..63]));
        assert!(!validate_hmac_secret(&format!("{}g", &secret1[..63])));
    }

    #[test]
    fn alg_names_match_the_wire() {
        for alg in [SigAlg::HmacSha256, SigAlg::Ed25519] {
            assert_eq!(<SigAlg as SigAlgExt>::parse(alg.as_str()), Some(alg));
            assert_eq!(
                serde_json::to_string(&alg).unwrap(),
                format!("\"{}\"", alg.as_str())
            );
        }
        assert_eq!(<SigAlg as SigAlgExt>::parse("hmac-sha512"), None);
    }

    #[test]
    fn signing_string_is_the_protocols_payload() {
        for (ts, nonce, key) in [(0, "n", "k"), (1_732_051_200_123_456, "a b\nc", "0123abcd")] {
            assert_eq!(
                signing_string(ts, nonce, key),
                bourse_protocol::msg::auth_payload(ts, nonce, key)
            );
        }
    }
}
