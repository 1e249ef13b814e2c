//! SASL `PLAIN` (IRCv3 `sasl`): a client that keeps an account and password logs
//! in with them before `CAP END`, instead of `PASS`. The account is the roster
//! name (or an instructor's name), the password the personal code (or the
//! instructor password), checked by the same login as every other way in, so
//! the limits on wrong codes hold.

/// How long a piece of a payload is when more pieces follow.
pub const PIECE: usize = 400;

/// What a `PLAIN` payload carries.
#[derive(Debug, PartialEq, Eq)]
pub struct Plain {
    /// The account to log in as.
    pub account: String,
    /// Its code or password.
    pub password: String,
}

/// Reads a `PLAIN` payload, base64 of `authzid NUL authcid NUL password`. The
/// account is the authentication identity; an authorization identity, if one
/// is given, must be the same (nobody logs in on another's behalf).
pub fn plain(payload: &str) -> Option<Plain> {
    let bytes = base64(payload)?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || authcid.is_empty() || password.is_empty() {
        return None;
    }
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
        return None;
    }
    Some(Plain {
        account: authcid.to_owned(),
        password: password.to_owned(),
    })
}

/// Standard base64, padded; `None` for anything else.
fn base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut word = 0u32;
        for &c in &chunk[..4 - pad] {
            word = word << 6 | value(c)?;
        }
        word <<= 6 * pad as u32;
        let decoded = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_payloads() {
        // "\0sam\0tiger-lily-42" and "sam\0sam\0pw"
        assert_eq!(
            plain("AHNhbQB0aWdlci1saWx5LTQy"),
            Some(Plain {
                account: "sam".into(),
                password: "tiger-lily-42".into()
            })
        );
        assert_eq!(plain("c2FtAHNhbQBwdw==").unwrap().password, "pw");
        // "bob\0sam\0pw": on another's behalf.
        assert_eq!(plain("Ym9iAHNhbQBwdw=="), None);
        assert_eq!(plain("not base64!"), None);
        assert_eq!(plain("c2Ft"), None, "no NULs");
    }

    #[test]
    fn decodes_base64_with_and_without_padding() {
        assert_eq!(base64("aGk=").unwrap(), b"hi");
        assert_eq!(base64("aGk/").unwrap(), [0x68, 0x69, 0x3f]);
        assert_eq!(base64("YQ==").unwrap(), b"a");
        assert_eq!(base64(""), Some(Vec::new()));
        assert_eq!(base64("YQ=="[..3].as_ref()), None);
        assert_eq!(base64("YQ==YQ=="), None);
    }
}
