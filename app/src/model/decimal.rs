//! Numbers a person types into a form (`1.5`, `-3`, `.5`, `+2`, `2e3`).
//!
//! Why not `str::parse::<f64>`: Rust's float parser brings its own table of powers of five and
//! a slow path for long inputs into every browser bundle that calls it (17 KiB of wasm, 11 KiB
//! gzip, measured on the device page), while serde_json's number reader is in every bundle
//! already: each server function answer is JSON. So the text is checked against the decimal
//! grammar here, rewritten into JSON's (a digit on both sides of the point, no plus sign) and
//! read by serde_json. The value is the one serde_json reads from the same digits in a JSON
//! request, so the form and the REST API agree; it is exactly Rust's own for up to 15
//! significant digits times a power of ten within ±22 (what people type), and at most one unit
//! in the last place away beyond.

/// The finite number `text` (already trimmed) writes in decimal: an optional sign, digits with
/// an optional point (at least one digit), and an optional exponent. `None` for anything else,
/// including `inf`, `NaN`, hexadecimal and numbers too large for an `f64`.
pub fn parse_decimal(text: &str) -> Option<f64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'-' => ("-", &text[1..]),
        b'+' => ("", &text[1..]),
        _ => ("", text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole)
        || !fraction.is_none_or(digits)
        || whole.len() + fraction.map_or(0, str::len) == 0
    {
        return None;
    }
    let exponent = match exponent {
        Some(e) => {
            let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
            if unsigned.is_empty() || !digits(unsigned) {
                return None;
            }
            Some(e)
        }
        None => None,
    };
    // JSON wants no leading zeros either: `007` is read as `7`.
    let whole = whole.trim_start_matches('0');
    let mut json = String::with_capacity(text.len() + 4);
    json.push_str(sign);
    json.push_str(if whole.is_empty() { "0" } else { whole });
    if let Some(fraction) = fraction.filter(|f| !f.is_empty()) {
        json.push('.');
        json.push_str(fraction);
    }
    if let Some(exponent) = exponent {
        json.push('e');
        json.push_str(exponent);
    }
    serde_json::from_slice::<f64>(json.as_bytes())
        .ok()
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::parse_decimal;

    #[test]
    fn reads_what_people_type() {
        for (text, value) in [
            ("0", 0.0),
            ("1", 1.0),
            ("-3", -3.0),
            ("+2", 2.0),
            ("1.5", 1.5),
            (".5", 0.5),
            ("-.25", -0.25),
            ("5.", 5.0),
            ("007", 7.0),
            ("00.5", 0.5),
            ("2e3", 2000.0),
            ("2E+3", 2000.0),
            ("1.5e-2", 0.015),
            ("-0", -0.0),
            ("12345678901234567890", 12345678901234567890.0),
        ] {
            assert_eq!(parse_decimal(text), Some(value), "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_decimal_number() {
        for text in [
            "", "-", "+", ".", "-.", "e5", ".e5", "1e", "1e+", "1.2.3", "1,5", "0x10", "inf",
            "-inf", "NaN", "infinity", "1 000", " 1", "1 ", "--1", "+-1", "1e5.5", "½", "1e400",
            "-1e400",
        ] {
            assert_eq!(parse_decimal(text), None, "{text:?}");
        }
    }

    /// Numbers as people write them (up to 15 significant digits, a point anywhere, an
    /// exponent up to ±20): exactly Rust's own value while the digits and the power of ten fit
    /// an `f64` exactly (serde_json then rounds once, like Rust), else at most one unit in the
    /// last place away (serde_json's reading without its `float_roundtrip` feature, the same
    /// as for a number in a JSON request).
    #[test]
    fn agrees_with_rusts_parser() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..50_000 {
            let digits = (next() % 1_000_000_000_000_000).to_string();
            let point = ((next() % 16) as usize).min(digits.len());
            let exponent = (next() % 41) as i32 - 20;
            let sign = if next() % 2 == 0 { "-" } else { "" };
            let text = format!("{sign}{}.{}e{exponent}", &digits[..point], &digits[point..]);
            let ours = parse_decimal(&text).unwrap();
            let rusts = text.parse::<f64>().unwrap();
            let scale = exponent - (digits.len() - point) as i32;
            if (-22..=22).contains(&scale) {
                assert_eq!(ours, rusts, "{text}");
            } else {
                assert!(
                    ours.to_bits().abs_diff(rusts.to_bits()) <= 1,
                    "{text}: {ours} {rusts}"
                );
            }
        }
    }
}
