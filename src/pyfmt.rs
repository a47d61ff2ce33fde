//! Python's float formatting (`repr`, `%f`, `%g`), so `hekate whisper` prints exactly
//! what `whisper-info.py`, `whisper-fetch.py` and `whisper-dump.py` print.
//!
//! Used by `hekate whisper` and the Graphite render API (`graphite`). Rust's float formatting is exact and rounds ties to even,
//! like C's `printf` that Python's `%` operator follows, so only the layout (exponent
//! form, trailing zeros) is rebuilt here.

/// Splits `x.abs()` formatted with `{:e}` (or `{:.N e}`) into mantissa digits and exponent.
fn sci_parts(s: &str) -> (String, i32) {
    let (mant, exp) = s.split_once('e').unwrap_or((s, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp.parse().unwrap_or(0))
}

fn non_finite(x: f64) -> Option<String> {
    if x.is_nan() {
        Some("nan".into())
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" }.into())
    } else {
        None
    }
}

fn sign(x: f64) -> &'static str {
    if x.is_sign_negative() {
        "-"
    } else {
        ""
    }
}

/// `digits` as `d.ddd` (no point when one digit) followed by `e±XX`.
fn exp_form(digits: &str, exp: i32) -> String {
    let (first, rest) = digits.split_at(1.min(digits.len()));
    let dot = if rest.is_empty() { "" } else { "." };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{first}{dot}{rest}e{esign}{:02}", exp.abs())
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents in
/// `[-4, 16)`, always with a fractional part (`1.0`), otherwise `1e+16` style.
pub fn repr(x: f64) -> String {
    if let Some(s) = non_finite(x) {
        return s;
    }
    let (digits, exp) = sci_parts(&format!("{:e}", x.abs()));
    let body = if (-4..16).contains(&exp) {
        positional(&digits, exp)
    } else {
        exp_form(&digits, exp)
    };
    format!("{}{body}", sign(x))
}

fn positional(digits: &str, exp: i32) -> String {
    if exp < 0 {
        return format!("0.{}{digits}", "0".repeat((-exp - 1) as usize));
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
    } else {
        format!("{}.{}", &digits[..int_len], &digits[int_len..])
    }
}

/// Python's `'%f' % x` (six decimals).
pub fn percent_f(x: f64) -> String {
    non_finite(x).unwrap_or_else(|| format!("{x:.6}"))
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Python's `'%.{precision}g' % x`.
pub fn percent_g(x: f64, precision: usize) -> String {
    if let Some(s) = non_finite(x) {
        return s;
    }
    let p = precision.max(1);
    let (digits, exp) = sci_parts(&format!("{:.*e}", p - 1, x.abs()));
    let body = if exp >= -4 && (exp as i64) < p as i64 {
        let decimals = (p as i64 - 1 - exp as i64) as usize;
        strip_zeros(&format!("{:.*}", decimals, x.abs())).to_string()
    } else {
        exp_form(digits.trim_end_matches('0'), exp)
    };
    let body = if body.is_empty() {
        "0".to_string()
    } else {
        body
    };
    format!("{}{body}", sign(x))
}

/// Right-aligns `s` in `width` columns, like `%10s`.
pub fn pad(s: &str, width: usize) -> String {
    format!("{s:>width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(repr(1.0), "1.0");
        assert_eq!(repr(0.5), "0.5");
        assert_eq!(repr(-0.0), "-0.0");
        assert_eq!(repr(f64::from(0.1f32)), "0.10000000149011612");
        assert_eq!(repr(1e16), "1e+16");
        assert_eq!(repr(1.5e-5), "1.5e-05");
        assert_eq!(repr(0.0001), "0.0001");
        assert_eq!(repr(123456.789), "123456.789");
        assert_eq!(repr(f64::NAN), "nan");
        assert_eq!(repr(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn percent_g_matches_c() {
        assert_eq!(percent_g(0.5, 6), "0.5");
        assert_eq!(percent_g(f64::from(0.1f32), 6), "0.1");
        assert_eq!(percent_g(0.0, 35), "0");
        assert_eq!(percent_g(0.1, 35), "0.1000000000000000055511151231257827");
        assert_eq!(
            percent_g(1e40, 35),
            "1.0000000000000000303786028427003667e+40"
        );
        assert_eq!(percent_g(12.0, 35), "12");
        assert_eq!(percent_g(1e-5, 6), "1e-05");
        assert_eq!(pad(&percent_g(1.0, 35), 10), "         1");
        assert_eq!(percent_f(1.0 / 128.0), "0.007812");
        assert_eq!(percent_f(f64::INFINITY), "inf");
    }
}
