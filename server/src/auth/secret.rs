//! Random secrets and how they are kept: session ids and device tokens are 256 random bits,
//! so a plain SHA-256 of each is enough to store (nothing to brute-force, unlike a password).

use sha2::{Digest, Sha256};

/// Prefix of device tokens, so a leaked one is recognisable in logs and secret scanners.
pub const DEVICE_TOKEN_PREFIX: &str = "iot_";

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(getrandom::Error);

/// 32 random bytes, hex-encoded (64 characters: safe in URLs, headers and C strings).
pub fn random_hex() -> Result<String, RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    Ok(hex::encode(bytes))
}

/// Prefix of API tokens (a person's programs calling the REST API).
pub const API_TOKEN_PREFIX: &str = "iothub_api_";

pub fn new_api_token() -> Result<String, RandomError> {
    Ok(format!("{API_TOKEN_PREFIX}{}", random_hex()?))
}

pub fn new_device_token() -> Result<String, RandomError> {
    Ok(format!("{DEVICE_TOKEN_PREFIX}{}", random_hex()?))
}

/// What the database keeps of a session id or device token.
pub fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A password for the first admin when none was configured: 20 characters from an alphabet
/// without look-alikes (about 115 bits).
pub fn new_password() -> Result<String, RandomError> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    // 256 is not a multiple of 55: the bias is under 1% per character, irrelevant at 115 bits.
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_only_their_fingerprint_is_kept() {
        let a = new_device_token().unwrap();
        let b = new_device_token().unwrap();
        assert_ne!(a, b);
        assert!(
            a.starts_with(DEVICE_TOKEN_PREFIX) && a.len() == 4 + 64,
            "{a}"
        );
        assert_eq!(fingerprint(&a), fingerprint(&a));
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert!(!fingerprint(&a).contains(&a[4..]));
        // SHA-256 of "abc", a published test vector.
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let p = new_password().unwrap();
        assert_eq!(p.chars().count(), 20);
        assert_ne!(p, new_password().unwrap());
    }
}
