//! VCC Live's HTTP body encryption, checked against ciphertext made by the real `openssl enc`
//! (the library PHP's `openssl_decrypt` wraps, which VCC Live's receiving example uses).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use rollcall_connector_vcclive::encryption::{BodyDecryption, Cipher};
use rollcall_connector_vcclive::VccLiveConnector;
use rollcall_core::{Connector, ErrorCode, NormalizeError, Secret, SourceOptions, UserEvent};
use serde_json::{json, Value};

/// 32 bytes: used as is.
const FULL_KEY: &str = "0123456789abcdef0123456789abcdef";
/// VCC Live's example key, 15 bytes: PHP zero-pads it to 32.
const SHORT_KEY: &str = "very secret key";
/// 40 bytes: PHP uses the first 32.
const LONG_KEY: &str = "0123456789abcdef0123456789abcdefEXTRA!!!";
const IV_HEX: &str = "8f1e6b2a4c3d5e7f90a1b2c3d4e5f601";

const USER_FIXTURES: &[&str] = &[
    "user_created.json",
    "user_changed.json",
    "user_created_with_lowercase_userid.json",
    "user_created_supervisor_with_string_ids.json",
    "user_changed_name_email_and_phones.json",
    "user_changed_deactivated.json",
    "user_changed_with_new_password.json",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

/// The key bytes PHP's openssl uses: zero-padded or truncated to 32 bytes, in hex.
fn php_key_hex(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    bytes.resize(32, 0);
    hex::encode(bytes)
}

/// `openssl enc -<cipher> -K <key> -iv <iv> -base64` over `plaintext`; `one_line` adds `-A`.
fn openssl_encrypt(
    cipher: &str,
    key: &str,
    iv_hex: &str,
    plaintext: &[u8],
    one_line: bool,
) -> Vec<u8> {
    let key_hex = php_key_hex(key);
    let cipher_flag = format!("-{cipher}");
    let mut args = vec![
        "enc",
        &cipher_flag,
        "-K",
        &key_hex,
        "-iv",
        iv_hex,
        "-base64",
    ];
    if one_line {
        args.push("-A");
    }
    rollcall_testkit::openssl(&args, plaintext)
}

fn connector(cipher: &str, key: &str) -> VccLiveConnector {
    let options = SourceOptions::new(
        "vcclive",
        json!({"secret_key": "k", "cipher": cipher, "encryption_key": key}),
    );
    VccLiveConnector::from_options(&options).unwrap()
}

fn normalize(
    connector: &dyn Connector,
    body: Vec<u8>,
    iv: Option<&str>,
) -> Result<Vec<UserEvent>, NormalizeError> {
    let mut delivery = rollcall_testkit::delivery("vcclive", body);
    if let Some(iv) = iv {
        delivery = delivery.with_query(format!("secret-key=k&iv={iv}"));
    }
    connector.normalize(&delivery)
}

/// The events without their ids (which derive from the body bytes, cipher- or plaintext).
fn without_ids(events: Vec<UserEvent>) -> Vec<Value> {
    events
        .into_iter()
        .map(|event| {
            let mut value = serde_json::to_value(event).unwrap();
            value.as_object_mut().unwrap().remove("id");
            value
        })
        .collect()
}

fn plaintext_events(name: &str) -> Vec<Value> {
    let connector = rollcall_testkit::offline_connector("vcclive");
    without_ids(normalize(&*connector, fixture(name), None).unwrap())
}

/// Encrypts every user fixture with openssl and checks the decrypted events equal the
/// plaintext ones. `iv_param` is what the URL carries; `openssl_iv` what openssl used.
fn assert_round_trips(cipher: &str, key: &str, iv_param: Option<&str>, openssl_iv: &str) {
    let connector = connector(cipher, key);
    for name in USER_FIXTURES {
        for one_line in [true, false] {
            let body = openssl_encrypt(cipher, key, openssl_iv, &fixture(name), one_line);
            let events = normalize(&connector, body, iv_param)
                .unwrap_or_else(|error| panic!("{cipher} {name}: {error}"));
            assert_eq!(
                without_ids(events),
                plaintext_events(name),
                "{cipher} {name}"
            );
        }
    }
}

const ZERO_IV: &str = "00000000000000000000000000000000";

#[test]
fn decrypts_aes_256_ctr_bodies_with_the_iv_query_parameter() {
    assert_round_trips("aes-256-ctr", FULL_KEY, Some(IV_HEX), IV_HEX);
}

#[test]
fn decrypts_aes_256_cbc_bodies_with_the_iv_query_parameter() {
    assert_round_trips("aes-256-cbc", FULL_KEY, Some(IV_HEX), IV_HEX);
}

#[test]
fn without_the_iv_parameter_the_iv_is_sixteen_zero_bytes() {
    assert_round_trips("aes-256-ctr", FULL_KEY, None, ZERO_IV);
    assert_round_trips("aes-256-cbc", FULL_KEY, None, ZERO_IV);
    // An empty parameter (`iv=`) is the same as none.
    assert_round_trips("aes-256-ctr", FULL_KEY, Some(""), ZERO_IV);
}

#[test]
fn a_short_iv_is_zero_padded_like_php() {
    assert_round_trips(
        "aes-256-cbc",
        FULL_KEY,
        Some("8f1e6b2a"),
        "8f1e6b2a000000000000000000000000",
    );
}

#[test]
fn a_short_key_is_zero_padded_and_a_long_one_truncated_like_php() {
    assert_round_trips("aes-256-ctr", SHORT_KEY, Some(IV_HEX), IV_HEX);
    assert_round_trips("aes-256-cbc", SHORT_KEY, Some(IV_HEX), IV_HEX);
    assert_round_trips("aes-256-cbc", LONG_KEY, None, ZERO_IV);
}

fn error_of(result: Result<Vec<UserEvent>, NormalizeError>) -> (ErrorCode, Option<String>) {
    let error = result.expect_err("expected an error");
    (error.code(), error.path().map(str::to_owned))
}

fn invalid_at(path: &str) -> (ErrorCode, Option<String>) {
    (ErrorCode::PayloadInvalid, Some(path.to_owned()))
}

#[test]
fn a_body_encrypted_with_another_key_is_payload_invalid() {
    for cipher in ["aes-256-ctr", "aes-256-cbc"] {
        let body = openssl_encrypt(
            cipher,
            SHORT_KEY,
            IV_HEX,
            &fixture("user_created.json"),
            true,
        );
        let connector = connector(cipher, "another secret key");
        assert_eq!(
            error_of(normalize(&connector, body, Some(IV_HEX))),
            invalid_at("."),
            "{cipher}"
        );
    }
}

#[test]
fn a_body_decrypted_with_another_iv_or_cipher_is_payload_invalid() {
    let body = openssl_encrypt(
        "aes-256-cbc",
        SHORT_KEY,
        IV_HEX,
        &fixture("user_created.json"),
        true,
    );
    let other_iv = "00112233445566778899aabbccddeeff";
    assert_eq!(
        error_of(normalize(
            &connector("aes-256-cbc", SHORT_KEY),
            body.clone(),
            Some(other_iv)
        )),
        invalid_at(".")
    );
    assert_eq!(
        error_of(normalize(
            &connector("aes-256-ctr", SHORT_KEY),
            body,
            Some(IV_HEX)
        )),
        invalid_at(".")
    );
}

#[test]
fn a_changed_ciphertext_byte_is_payload_invalid_with_cbc() {
    let body = openssl_encrypt(
        "aes-256-cbc",
        SHORT_KEY,
        IV_HEX,
        &fixture("user_created.json"),
        true,
    );
    let mut ciphertext =
        rollcall_core::verify::decode_base64(std::str::from_utf8(&body).unwrap()).unwrap();
    ciphertext[20] ^= 0x55;
    let changed = rollcall_core::verify::encode_base64(&ciphertext).into_bytes();
    assert_eq!(
        error_of(normalize(
            &connector("aes-256-cbc", SHORT_KEY),
            changed,
            Some(IV_HEX)
        )),
        invalid_at(".")
    );
}

#[test]
fn a_plaintext_body_on_an_encrypted_source_is_payload_invalid() {
    let connector = connector("aes-256-ctr", SHORT_KEY);
    let error = normalize(&connector, fixture("user_created.json"), Some(IV_HEX)).unwrap_err();
    assert_eq!(
        (error.code(), error.path()),
        (ErrorCode::PayloadInvalid, Some("."))
    );
    assert!(error.to_string().contains("not base64"), "{error}");
}

#[test]
fn an_iv_that_is_not_hex_is_payload_invalid() {
    let body = openssl_encrypt(
        "aes-256-ctr",
        SHORT_KEY,
        IV_HEX,
        &fixture("user_created.json"),
        true,
    );
    let connector = connector("aes-256-ctr", SHORT_KEY);
    let error = normalize(&connector, body, Some("not-hex")).unwrap_err();
    assert_eq!(
        (error.code(), error.path()),
        (ErrorCode::PayloadInvalid, Some("."))
    );
    assert!(error.to_string().contains("iv"), "{error}");
}

#[test]
fn errors_inside_a_decrypted_body_keep_their_path() {
    let body = openssl_encrypt(
        "aes-256-ctr",
        SHORT_KEY,
        IV_HEX,
        &fixture("error_missing_user_id.json"),
        true,
    );
    assert_eq!(
        error_of(normalize(
            &connector("aes-256-ctr", SHORT_KEY),
            body,
            Some(IV_HEX)
        )),
        invalid_at("new.userId")
    );
}

#[test]
fn a_password_in_an_encrypted_body_appears_nowhere() {
    let password = "Hunter2-Correct-Horse";
    let plaintext = fixture("user_changed_with_new_password.json");
    assert!(String::from_utf8_lossy(&plaintext).contains(password));
    let body = openssl_encrypt("aes-256-ctr", SHORT_KEY, IV_HEX, &plaintext, true);
    let events = normalize(&connector("aes-256-ctr", SHORT_KEY), body, Some(IV_HEX)).unwrap();
    assert!(!serde_json::to_string(&events).unwrap().contains(password));
    assert!(!format!("{events:?}").contains(password));
}

// ---- Encrypting test requests -------------------------------------------------------------

const CIPHERS: [(&str, Cipher); 2] = [
    ("aes-256-ctr", Cipher::Aes256Ctr),
    ("aes-256-cbc", Cipher::Aes256Cbc),
];

fn iv_bytes(iv_hex: &str) -> [u8; 16] {
    hex::decode(iv_hex).unwrap().try_into().unwrap()
}

/// `openssl enc -d -<cipher> -K <key> -iv <iv> -base64 -A` over `body`.
fn openssl_decrypt(cipher: &str, key: &str, iv_hex: &str, body: &[u8]) -> Vec<u8> {
    let key_hex = php_key_hex(key);
    let cipher_flag = format!("-{cipher}");
    let args = [
        "enc",
        "-d",
        &cipher_flag,
        "-K",
        &key_hex,
        "-iv",
        iv_hex,
        "-base64",
        "-A",
    ];
    rollcall_testkit::openssl(&args, body)
}

#[test]
fn encrypts_exactly_like_openssl_enc() {
    for (name, cipher) in CIPHERS {
        for key in [FULL_KEY, SHORT_KEY, LONG_KEY] {
            let plaintext = fixture("user_created.json");
            let ours = BodyDecryption::new(cipher, &Secret::new(key))
                .encrypt(&plaintext, &iv_bytes(IV_HEX));
            let theirs = openssl_encrypt(name, key, IV_HEX, &plaintext, true);
            assert_eq!(
                ours,
                String::from_utf8(theirs).unwrap().trim_end(),
                "{name} {key}"
            );
        }
    }
}

#[test]
fn openssl_enc_decrypts_what_rollcall_encrypts() {
    for (name, cipher) in CIPHERS {
        for key in [FULL_KEY, SHORT_KEY, LONG_KEY] {
            for body in USER_FIXTURES.iter().map(|name| fixture(name)) {
                let encrypted = BodyDecryption::new(cipher, &Secret::new(key))
                    .encrypt(&body, &iv_bytes(IV_HEX));
                let decrypted = openssl_decrypt(name, key, IV_HEX, encrypted.as_bytes());
                assert_eq!(decrypted, body, "{name} {key}");
            }
        }
    }
}

#[test]
fn encrypting_then_decrypting_round_trips() {
    for (_, cipher) in CIPHERS {
        let encryption = BodyDecryption::new(cipher, &Secret::new(SHORT_KEY));
        for name in USER_FIXTURES {
            let body = fixture(name);
            let iv = encryption.iv_for(&[1; 32]);
            let encrypted = encryption.encrypt(&body, &iv);
            let decrypted = encryption
                .decrypt(encrypted.as_bytes(), Some(&hex::encode(iv)))
                .unwrap();
            assert_eq!(decrypted, body, "{cipher:?} {name}");
        }
    }
}

#[test]
fn while_the_encryption_key_rotates_a_body_encrypted_with_the_old_or_the_new_key_is_read() {
    for (name, cipher) in CIPHERS {
        let rotating = VccLiveConnector::from_options(&SourceOptions::new(
            "vcclive",
            json!({"secret_key": "k", "cipher": name, "encryption_key": [FULL_KEY, SHORT_KEY]}),
        ))
        .unwrap();
        let only_new = connector(name, FULL_KEY);
        let body = fixture("user_created.json");
        let expected = without_ids(
            normalize(&only_new, encrypted(cipher, FULL_KEY, &body), Some(IV_HEX)).unwrap(),
        );
        for key in [FULL_KEY, SHORT_KEY] {
            let events = normalize(&rotating, encrypted(cipher, key, &body), Some(IV_HEX));
            assert_eq!(without_ids(events.unwrap()), expected, "{name} {key}");
        }
        // Once the old key is gone from the list, its bodies are refused.
        let old = normalize(&only_new, encrypted(cipher, SHORT_KEY, &body), Some(IV_HEX));
        assert_eq!(old.unwrap_err().code(), ErrorCode::PayloadInvalid, "{name}");
    }
}

fn encrypted(cipher: Cipher, key: &str, body: &[u8]) -> Vec<u8> {
    BodyDecryption::new(cipher, &Secret::new(key))
        .encrypt(body, &iv_bytes(IV_HEX))
        .into_bytes()
}

#[test]
fn the_signing_iv_depends_on_the_body_and_the_key_only() {
    let encryption = BodyDecryption::new(Cipher::Aes256Ctr, &Secret::new(SHORT_KEY));
    let same_key_other_cipher = BodyDecryption::new(Cipher::Aes256Cbc, &Secret::new(SHORT_KEY));
    let other_key = BodyDecryption::new(Cipher::Aes256Ctr, &Secret::new(FULL_KEY));
    let body_hash = [1; 32];
    assert_eq!(encryption.iv_for(&body_hash), encryption.iv_for(&body_hash));
    assert_eq!(
        encryption.iv_for(&body_hash),
        same_key_other_cipher.iv_for(&body_hash)
    );
    assert_ne!(encryption.iv_for(&body_hash), encryption.iv_for(&[2; 32]));
    assert_ne!(encryption.iv_for(&body_hash), other_key.iv_for(&body_hash));
    // The IV travels in the URL: it is not the body hash itself.
    assert_ne!(encryption.iv_for(&body_hash)[..], body_hash[..16]);
}

// ---- Deduplication of encrypted bodies ----------------------------------------------------

fn dedup_key(connector: &dyn Connector, body: Vec<u8>, iv: &str) -> String {
    let delivery =
        rollcall_testkit::delivery("vcclive", body).with_query(format!("secret-key=k&iv={iv}"));
    connector.dedup_key(&delivery)
}

#[test]
fn an_encrypted_body_is_deduplicated_on_its_plaintext() {
    let other_iv = "00112233445566778899aabbccddeeff";
    for cipher in ["aes-256-ctr", "aes-256-cbc"] {
        let connector = connector(cipher, SHORT_KEY);
        let plaintext = fixture("user_created.json");
        // VCC Live may encrypt a retry again, under a fresh IV: other bytes, same event.
        let first = openssl_encrypt(cipher, SHORT_KEY, IV_HEX, &plaintext, true);
        let retry = openssl_encrypt(cipher, SHORT_KEY, other_iv, &plaintext, true);
        assert_ne!(first, retry);
        let key = dedup_key(&connector, first, IV_HEX);
        assert_eq!(key, dedup_key(&connector, retry, other_iv), "{cipher}");
        // The key is the one the plaintext gets on a source without encryption.
        let plain_delivery = rollcall_testkit::delivery("vcclive", plaintext);
        assert_eq!(key, plain_delivery.body_dedup_key(), "{cipher}");
        // Another user's event is another key.
        let other = openssl_encrypt(
            cipher,
            SHORT_KEY,
            IV_HEX,
            &fixture("user_changed.json"),
            true,
        );
        assert_ne!(key, dedup_key(&connector, other, IV_HEX), "{cipher}");
    }
}

#[test]
fn a_body_that_does_not_decrypt_is_deduplicated_on_its_bytes() {
    let connector = connector("aes-256-cbc", SHORT_KEY);
    let wrong_key = openssl_encrypt(
        "aes-256-cbc",
        "another secret key",
        IV_HEX,
        &fixture("user_created.json"),
        true,
    );
    for body in [
        wrong_key,
        fixture("user_created.json"),
        b"not base64!".to_vec(),
    ] {
        let expected = rollcall_testkit::delivery("vcclive", body.clone()).body_dedup_key();
        assert_eq!(dedup_key(&connector, body, IV_HEX), expected);
    }
}
