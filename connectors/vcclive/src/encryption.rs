//! VCC Live's optional HTTP body encryption.
//!
//! When a customer enables it, VCC Live sends the body as base64 ciphertext under the cipher
//! they chose, with an optional random IV in the hex `iv` query parameter. VCC Live's own
//! receiving example is PHP:
//!
//! ```php
//! $body = openssl_decrypt($body, 'aes-256-ctr', $secretKey, 0, hex2bin($_GET['iv']));
//! ```
//!
//! This module decrypts exactly like that call does for `aes-256-ctr` and `aes-256-cbc`:
//! * the body is standard base64 (whitespace ignored, padding optional);
//! * the key is the configured string's bytes, zero-padded or truncated to 32 bytes, as PHP
//!   does for a key of the wrong length;
//! * the IV is the hex-decoded `iv` parameter, zero-padded or truncated to 16 bytes as PHP
//!   does; without the parameter (VCC Live's "empty initialization vector") it is 16 zero
//!   bytes;
//! * CTR is OpenSSL's 128-bit big-endian counter over the whole IV; CBC removes PKCS#7
//!   padding.
//!
//! For test requests (`rollcall sign`), [`BodyDecryption::encrypt`] is the other direction,
//! `openssl_encrypt($body, $cipher, $secretKey, 0, $iv)`, with a deterministic IV
//! ([`BodyDecryption::iv_for`]) so that signing the same body twice gives the same request.

use std::fmt;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, StreamCipher};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rollcall_core::verify::hmac_sha256;
use rollcall_core::{NormalizeError, Secret, Secrets};
use serde::Deserialize;

/// The query parameter that carries the hex IV.
pub const IV_QUERY_PARAMETER: &str = "iv";

const KEY_BYTES: usize = 32;
const IV_BYTES: usize = 16;

/// Standard base64 that, like PHP, does not insist on `=` padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The ciphers rollcall decrypts, named as PHP/OpenSSL name them (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub enum Cipher {
    #[serde(rename = "aes-256-ctr", alias = "AES-256-CTR")]
    Aes256Ctr,
    #[serde(rename = "aes-256-cbc", alias = "AES-256-CBC")]
    Aes256Cbc,
}

impl Cipher {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Aes256Ctr => "aes-256-ctr",
            Self::Aes256Cbc => "aes-256-cbc",
        }
    }
}

/// A cipher and its key, ready to decrypt bodies (and to encrypt test requests). While the
/// key is rotated it also holds the keys listed after the first: a body any of them decrypts
/// is accepted; the first encrypts. `Debug` never shows a key.
#[derive(Clone)]
pub struct BodyDecryption {
    cipher: Cipher,
    key: [u8; KEY_BYTES],
    other_keys: Vec<[u8; KEY_BYTES]>,
}

impl fmt::Debug for BodyDecryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyDecryption")
            .field("cipher", &self.cipher)
            .field("keys", &format_args!("{} x ***", 1 + self.other_keys.len()))
            .finish()
    }
}

impl BodyDecryption {
    /// The key is the secret's bytes, zero-padded or truncated to 32 bytes (PHP's openssl).
    pub fn new(cipher: Cipher, key: &Secret) -> Self {
        Self::with_keys(cipher, &Secrets::new(key.clone()))
    }

    /// As [`BodyDecryption::new`], with every key of `keys`: the first encrypts, any
    /// decrypts.
    pub fn with_keys(cipher: Cipher, keys: &Secrets) -> Self {
        let mut keys = keys.iter().map(|key| fit(key.expose().as_bytes()));
        Self {
            cipher,
            key: keys.next().unwrap_or([0; KEY_BYTES]),
            other_keys: keys.collect(),
        }
    }

    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Decrypts a base64 body with the hex IV from the `iv` query parameter (`None`: no IV).
    ///
    /// Any failure is `payload_invalid` at `.`: the body is not base64, the IV is not hex,
    /// CBC padding is wrong, or the plaintext is not JSON (the usual sign of a wrong key,
    /// cipher or IV, since CTR decrypts anything). With several keys, the first key's error
    /// when none gives JSON.
    pub fn decrypt(&self, body: &[u8], iv_hex: Option<&str>) -> Result<Vec<u8>, NormalizeError> {
        let first = self.decrypt_with(&self.key, body, iv_hex);
        if first.is_ok() {
            return first;
        }
        self.other_keys
            .iter()
            .find_map(|key| self.decrypt_with(key, body, iv_hex).ok())
            .map_or(first, Ok)
    }

    fn decrypt_with(
        &self,
        key: &[u8; KEY_BYTES],
        body: &[u8],
        iv_hex: Option<&str>,
    ) -> Result<Vec<u8>, NormalizeError> {
        let cipher = self.cipher.as_str();
        let text: Vec<u8> = body
            .iter()
            .copied()
            .filter(|byte| !byte.is_ascii_whitespace())
            .collect();
        let ciphertext = BASE64.decode(&text).map_err(|_| {
            NormalizeError::invalid(
                ".",
                format!("body encryption ({cipher}) is configured but the body is not base64"),
            )
        })?;
        let iv_bytes = match iv_hex.map(str::trim) {
            None | Some("") => Vec::new(),
            Some(hex_text) => hex::decode(hex_text).map_err(|_| {
                NormalizeError::invalid(".", "the `iv` query parameter is not hexadecimal")
            })?,
        };
        let iv: [u8; IV_BYTES] = fit(&iv_bytes);

        let plaintext = match self.cipher {
            Cipher::Aes256Ctr => {
                let mut buffer = ciphertext;
                ctr::Ctr128BE::<aes::Aes256>::new(&(*key).into(), &iv.into())
                    .apply_keystream(&mut buffer);
                buffer
            }
            Cipher::Aes256Cbc => cbc::Decryptor::<aes::Aes256>::new(&(*key).into(), &iv.into())
                .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
                .map_err(|_| {
                    NormalizeError::invalid(
                        ".",
                        "the body does not decrypt with aes-256-cbc (bad length or padding): \
                         check encryption_key, cipher and the `iv` query parameter",
                    )
                })?,
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(&plaintext).is_err() {
            return Err(NormalizeError::invalid(
                ".",
                format!(
                    "the body decrypted with {cipher} is not JSON: check encryption_key, \
                     cipher and the `iv` query parameter"
                ),
            ));
        }
        Ok(plaintext)
    }

    /// Encrypts `plaintext` as PHP's `openssl_encrypt($plaintext, $cipher, $key, 0, $iv)`
    /// does: the base64 (padded, one line) of the ciphertext, PKCS#7-padded for CBC, under
    /// the same zero-padded or truncated key that [`BodyDecryption::decrypt`] uses.
    pub fn encrypt(&self, plaintext: &[u8], iv: &[u8; IV_BYTES]) -> String {
        let ciphertext = match self.cipher {
            Cipher::Aes256Ctr => {
                let mut buffer = plaintext.to_vec();
                ctr::Ctr128BE::<aes::Aes256>::new(&self.key.into(), &(*iv).into())
                    .apply_keystream(&mut buffer);
                buffer
            }
            Cipher::Aes256Cbc => {
                cbc::Encryptor::<aes::Aes256>::new(&self.key.into(), &(*iv).into())
                    .encrypt_padded_vec_mut::<Pkcs7>(plaintext)
            }
        };
        BASE64.encode(ciphertext)
    }

    /// A deterministic IV for a body with SHA-256 `body_sha256`: the first 16 bytes of its
    /// HMAC-SHA256 under the encryption key. The same body always gets the same IV (so a
    /// signed test request is reproducible), different bodies get different ones, and the IV,
    /// which travels in the URL, tells nothing about the body to whoever lacks the key.
    pub fn iv_for(&self, body_sha256: &[u8; 32]) -> [u8; IV_BYTES] {
        fit(&hmac_sha256(
            &self.key,
            &[b"rollcall vcclive iv\0", body_sha256],
        ))
    }
}

/// `bytes` zero-padded or truncated to `N` bytes, as PHP's openssl does with keys and IVs.
fn fit<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut fitted = [0u8; N];
    for (slot, byte) in fitted.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    fitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ivs_are_zero_padded_or_truncated_like_php() {
        assert_eq!(fit::<4>(b"ab"), [b'a', b'b', 0, 0]);
        assert_eq!(fit::<2>(b"abcd"), [b'a', b'b']);
        assert_eq!(fit::<2>(b""), [0, 0]);
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let decryption = BodyDecryption::new(Cipher::Aes256Ctr, &Secret::new("very secret key"));
        let text = format!("{decryption:?}");
        assert!(!text.contains("very secret key"));
        // Nor the key's bytes: a derived Debug would print `[118, 101, ...]`.
        assert!(!text.contains("118, 101"));
    }
}
