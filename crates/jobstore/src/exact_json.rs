//! Numbers that come back as they were sent.
//!
//! JSON text is decoded by `serde_json` without `arbitrary_precision`: an integer is kept
//! exactly when it fits `i64` or `u64`, every other number becomes an `f64`, and what is stored
//! is that value rendered back (shortest round-trip form). A number that does not survive this
//! (an integer beyond 64 bits, a fraction with more precision than an `f64` holds, a value
//! beyond the `f64` range or too small for it) would come back changed; [`check_numbers`]
//! refuses it instead, naming it, before anything is decoded.
//!
//! Numbers are compared as exact decimal values (sign, significant digits, exponent), so `1e5`
//! (stored as `100000.0`), `0.10` (stored as `0.1`) and `-0.0` are kept; `1.00000000000000000001`
//! (stored as `1.0`) and `1e400` (beyond the range) are refused.

/// The longest number an error message quotes whole; a longer one is shortened.
const QUOTED: usize = 40;

/// Refuses the first number in the JSON `text` that would not come back as the same value once
/// stored (see the [module](self) documentation).
///
/// This is a scan of the text, not a parse: strings (with their escapes) are skipped, every
/// number token is checked, and anything malformed is left for the JSON decoder to report.
///
/// # Errors
/// A message that names the number (shortened when long), says that it cannot be stored
/// exactly, and asks for it as a string.
pub fn check_numbers(text: &[u8]) -> Result<(), String> {
    let mut at = 0;
    while let Some(&byte) = text.get(at) {
        match byte {
            b'"' => at = string_end(text, at + 1),
            b'-' | b'0'..=b'9' => {
                let start = at;
                at += 1;
                while text
                    .get(at)
                    .is_some_and(|b| matches!(b, b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'))
                {
                    at += 1;
                }
                check_number(&text[start..at])?;
            }
            _ => at += 1,
        }
    }
    Ok(())
}

/// The index just past the string whose contents start at `at` (the end of the text when the
/// string is not closed).
fn string_end(text: &[u8], mut at: usize) -> usize {
    while let Some(&byte) = text.get(at) {
        match byte {
            b'\\' => at += 2,
            b'"' => return at + 1,
            _ => at += 1,
        }
    }
    text.len()
}

/// Checks one number token; a token that is not a JSON number is left to the decoder.
fn check_number(token: &[u8]) -> Result<(), String> {
    let Some(number) = Number::parse(token) else {
        return Ok(());
    };
    if number.integer {
        // Kept as `i64` or `u64` when it fits; otherwise the decoder makes it an `f64`.
        let fits = std::str::from_utf8(token).is_ok_and(|text| {
            if number.negative {
                text.parse::<i64>().is_ok()
            } else {
                text.parse::<u64>().is_ok()
            }
        });
        return if fits {
            Ok(())
        } else {
            Err(refusal(
                token,
                "integers are kept exactly from -9223372036854775808 to 18446744073709551615",
            ))
        };
    }
    // What the decoder makes of it, and what is stored: that value rendered back.
    let Ok(value) = serde_json::from_slice::<f64>(token) else {
        return Err(refusal(
            token,
            "it is beyond the range of a 64-bit floating-point number",
        ));
    };
    let Ok(stored) = serde_json::to_string(&value) else {
        return Err(refusal(token, "it has no JSON rendering"));
    };
    let read_back = serde_json::from_str::<f64>(&stored).ok();
    let same = Number::parse(stored.as_bytes()).is_some_and(|s| s.same_value(&number))
        && read_back.is_some_and(|back| back.to_bits() == value.to_bits());
    if same {
        Ok(())
    } else {
        Err(refusal(
            token,
            &format!("as a 64-bit floating-point number it would come back as {stored}"),
        ))
    }
}

/// The error message for `token`.
fn refusal(token: &[u8], why: &str) -> String {
    let text = String::from_utf8_lossy(token);
    let quoted = if text.chars().count() > QUOTED {
        let head: String = text.chars().take(QUOTED - 8).collect();
        format!("{head}… ({} characters)", text.chars().count())
    } else {
        text.into_owned()
    };
    format!("the number {quoted} cannot be stored exactly ({why}); send it as a string instead")
}

/// A JSON number token as an exact decimal value: `±digits × 10^exponent`, the digits without
/// leading or trailing zeros (none at all for zero).
#[derive(Debug)]
struct Number<'a> {
    negative: bool,
    /// Neither a fraction nor an exponent.
    integer: bool,
    /// The integer part and the fraction, as written (with their leading and trailing zeros).
    integer_part: &'a [u8],
    fraction: &'a [u8],
    /// The written exponent, saturated.
    exponent: i64,
}

impl<'a> Number<'a> {
    /// A token of the JSON number grammar, or `None`.
    fn parse(token: &'a [u8]) -> Option<Number<'a>> {
        let (negative, rest) = match token.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, token),
        };
        let digits = |text: &'a [u8]| {
            let n = text.iter().take_while(|b| b.is_ascii_digit()).count();
            text.split_at(n)
        };
        let (integer_part, rest) = digits(rest);
        let leading_zero = integer_part.len() > 1 && integer_part[0] == b'0';
        if integer_part.is_empty() || leading_zero {
            return None;
        }
        let (fraction, rest) = match rest.split_first() {
            Some((b'.', rest)) => {
                let (fraction, rest) = digits(rest);
                if fraction.is_empty() {
                    return None;
                }
                (Some(fraction), rest)
            }
            _ => (None, rest),
        };
        let (exponent, rest) = match rest.split_first() {
            Some((b'e' | b'E', rest)) => {
                let (exponent_negative, rest) = match rest.split_first() {
                    Some((b'-', rest)) => (true, rest),
                    Some((b'+', rest)) => (false, rest),
                    _ => (false, rest),
                };
                let (written, rest) = digits(rest);
                if written.is_empty() {
                    return None;
                }
                let magnitude = written.iter().fold(0_i64, |sum, digit| {
                    sum.saturating_mul(10)
                        .saturating_add(i64::from(digit - b'0'))
                });
                let exponent = if exponent_negative {
                    -magnitude
                } else {
                    magnitude
                };
                (Some(exponent), rest)
            }
            _ => (None, rest),
        };
        if !rest.is_empty() {
            return None;
        }
        Some(Number {
            negative,
            integer: fraction.is_none() && exponent.is_none(),
            integer_part,
            fraction: fraction.unwrap_or_default(),
            exponent: exponent.unwrap_or(0),
        })
    }

    /// The significant digits and the exponent of the last one: `(digits, exponent)` with
    /// `value = ±digits × 10^exponent`; empty digits for zero.
    fn normalised(&self) -> (Vec<u8>, i64) {
        let all: Vec<u8> = self
            .integer_part
            .iter()
            .chain(self.fraction)
            .copied()
            .skip_while(|&d| d == b'0')
            .collect();
        let trailing = all.iter().rev().take_while(|&&d| d == b'0').count();
        let significant = all[..all.len() - trailing].to_vec();
        let fraction_len = i64::try_from(self.fraction.len()).unwrap_or(i64::MAX);
        let trailing = i64::try_from(trailing).unwrap_or(i64::MAX);
        let exponent = self
            .exponent
            .saturating_sub(fraction_len)
            .saturating_add(trailing);
        (significant, exponent)
    }

    /// Whether both are the same decimal value (zero is zero whatever its sign).
    fn same_value(&self, other: &Number<'_>) -> bool {
        let (digits, exponent) = self.normalised();
        let (other_digits, other_exponent) = other.normalised();
        if digits.is_empty() || other_digits.is_empty() {
            return digits.is_empty() && other_digits.is_empty();
        }
        self.negative == other.negative && digits == other_digits && exponent == other_exponent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(text: &str) -> String {
        match check_numbers(text.as_bytes()) {
            Err(message) => message,
            Ok(()) => panic!("{text} was accepted"),
        }
    }

    fn accepted(text: &str) {
        if let Err(message) = check_numbers(text.as_bytes()) {
            panic!("{text} was refused: {message}");
        }
    }

    #[test]
    fn numbers_that_are_kept_pass() {
        for text in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "0.1",
            "0.10",
            "-0.1",
            "1e5",
            "1E5",
            "1e+5",
            "2.5E-3",
            "1e-7",
            "100000.0",
            "1.5",
            "3.141592653589793",
            "-3299.5810196630678",
            "1010851.4132338453",
            "12345678901234567",
            "9007199254740993",
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "1.7976931348623157e308",
            "-1.7976931348623157e308",
            "2.2250738585072014e-308",
            "5e-324",
            "0e999999999999999999999",
            "0.000e-5",
            "1.00000000000000000000",
        ] {
            accepted(text);
        }
    }

    #[test]
    fn integers_beyond_64_bits_are_refused() {
        for text in [
            "123456789012345678901234567890",
            "18446744073709551616",
            "-9223372036854775809",
            "100000000000000000000",
            "-18446744073709551615",
        ] {
            let message = refused(text);
            assert!(message.contains(text), "{message}");
            assert!(message.contains("cannot be stored exactly"), "{message}");
            assert!(message.contains("as a string"), "{message}");
        }
    }

    #[test]
    fn fractions_and_exponents_that_change_are_refused() {
        for (text, becomes) in [
            ("1.00000000000000000001", "1.0"),
            ("0.1000000000000000000000000001", "0.1"),
            ("9007199254740993.0", "9007199254740992.0"),
            ("1e-400", "0.0"),
            ("-1e-400", "-0.0"),
            ("3.14159265358979323846264338327950288", "3.141592653589793"),
            ("1.23456789012345678e300", "1.2345678901234568e+300"),
        ] {
            let message = refused(text);
            assert!(
                message.contains(&format!("come back as {becomes}")),
                "{message}"
            );
            assert!(message.contains("as a string"), "{message}");
        }
        for text in ["1e400", "-1e400", "1.8e308", "1e99999999999999999999"] {
            let message = refused(text);
            assert!(message.contains("beyond the range"), "{message}");
            assert!(message.contains(text), "{message}");
        }
    }

    #[test]
    fn numbers_are_found_anywhere_in_a_document() {
        accepted(r#"{"kind":"x","payload":{"n":[1,2.5,{"m":-3e2}],"t":true,"f":null}}"#);
        refused(r#"{"kind":"x","payload":{"n":123456789012345678901234567890}}"#);
        refused(r#"[1, 2, [3, {"a": [1e400]}]]"#);
        refused("123456789012345678901234567890");
        refused(" \n\t{\"a\":1.00000000000000000001}");
        refused(r#"{"a":1,"b":18446744073709551616}"#);
    }

    #[test]
    fn strings_are_skipped_with_their_escapes() {
        accepted(r#"{"123456789012345678901234567890": "1e400"}"#);
        accepted(r#"{"a": "quote \" 1e400 \\", "b": "\\\"123456789012345678901234567890"}"#);
        accepted(r#"{"a": "\u0031e400"}"#);
        refused(r#"{"a": "x\\", "b": 1e400}"#);
        refused(r#"{"a": "\"", "b": 1e400}"#);
        accepted("\"unterminated 1e400");
        accepted("\"1e400\\");
    }

    #[test]
    fn malformed_numbers_are_left_to_the_decoder() {
        for text in [
            "01", "1.", ".5", "1e", "1e+", "-", "--1", "1.2.3", "+1", "1-2", "-e5", "0x10", "1ee5",
            "[1,]", "{", "",
        ] {
            accepted(text);
        }
    }

    #[test]
    fn a_long_number_is_shortened_in_the_message() {
        let long = "9".repeat(5000);
        let message = refused(&format!("{{\"n\": {long}}}"));
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("(5000 characters)"), "{message}");
        assert!(message.contains("as a string"), "{message}");
    }

    #[test]
    fn bytes_that_are_not_utf8_do_not_matter() {
        accepted("{\"a\": \"\u{ff}\"}");
        assert!(check_numbers(b"{\"\xff\xfe\": 1, \"b\": \"\xc3\"}").is_ok());
        assert!(check_numbers(b"\xff 123456789012345678901234567890").is_err());
    }

    #[test]
    fn values_compare_exactly() {
        let same = |a: &str, b: &str| {
            let a = Number::parse(a.as_bytes()).expect("a number");
            let b = Number::parse(b.as_bytes()).expect("a number");
            a.same_value(&b)
        };
        assert!(same("1e5", "100000.0"));
        assert!(same("100000", "1e5"));
        assert!(same("0.0025", "2.5E-3"));
        assert!(same("-0.0", "0"));
        assert!(same("0e7", "0.000"));
        assert!(same("120e-1", "12"));
        assert!(same("1.20", "0.0012e3"));
        assert!(!same("1e5", "-1e5"));
        assert!(!same("1.0000000000000000001", "1"));
        assert!(!same("12", "21"));
        assert!(!same("1e5", "1e6"));
        assert!(!same("1e9223372036854775807", "1e9223372036854775806"));
    }

    proptest! {
        #[test]
        fn every_float_serde_json_renders_is_kept(bits in any::<u64>()) {
            let value = f64::from_bits(bits);
            prop_assume!(value.is_finite());
            let text = serde_json::to_string(&value).expect("a finite float renders");
            prop_assert!(check_numbers(text.as_bytes()).is_ok(), "{} refused", text);
        }

        #[test]
        fn every_ordinary_float_is_kept(value in -1e12_f64..1e12) {
            let text = serde_json::to_string(&value).expect("a finite float renders");
            prop_assert!(check_numbers(text.as_bytes()).is_ok(), "{} refused", text);
        }

        #[test]
        fn every_64_bit_integer_is_kept(signed in any::<i64>(), unsigned in any::<u64>()) {
            let text = serde_json::json!({"i": signed, "u": [unsigned]}).to_string();
            prop_assert!(check_numbers(text.as_bytes()).is_ok(), "{} refused", text);
        }

        #[test]
        fn an_accepted_number_comes_back_as_written(
            integer in "-?(0|[1-9][0-9]{0,25})",
            fraction in proptest::option::of("[0-9]{1,25}"),
            exponent in proptest::option::of(-330_i32..330),
        ) {
            let mut text = integer;
            if let Some(fraction) = fraction {
                text = format!("{text}.{fraction}");
            }
            if let Some(exponent) = exponent {
                text = format!("{text}e{exponent}");
            }
            // Accepted means: decoded and rendered back, it is the same decimal value.
            if check_numbers(text.as_bytes()).is_ok() {
                let value: serde_json::Value =
                    serde_json::from_str(&text).expect("an accepted number decodes");
                let rendered = value.to_string();
                let written = Number::parse(text.as_bytes()).expect("a number");
                let stored = Number::parse(rendered.as_bytes()).expect("a rendered number");
                prop_assert!(written.same_value(&stored), "{} came back as {}", text, rendered);
                let again: serde_json::Value =
                    serde_json::from_str(&rendered).expect("the rendering decodes");
                prop_assert_eq!(again.to_string(), rendered);
            }
        }
    }
}
