//! Payload formatting for `add_to_payload`/`inject_payload`: strings verbatim, numbers
//! as Lua 5.1 printed them (`%.14g`, so `3.0` is `3`), booleans and nil as words, and
//! circular buffers in Heka's cbuf/cbufd text. Called by `sandbox::api`.

use std::fmt::Write as _;

use mlua::Value;

use super::circular_buffer::CircularBuffer;

/// Appends each value to `buf`.
pub(crate) fn append_values<'a>(
    buf: &mut String,
    values: impl Iterator<Item = &'a Value>,
) -> mlua::Result<()> {
    for v in values {
        match v {
            Value::String(s) => buf.push_str(&s.to_string_lossy()),
            Value::Integer(n) => {
                let _ = write!(buf, "{n}");
            }
            Value::Number(n) => push_number(buf, *n),
            Value::Boolean(b) => buf.push_str(if *b { "true" } else { "false" }),
            Value::Nil => buf.push_str("nil"),
            Value::UserData(ud) => match ud.borrow_mut::<CircularBuffer>() {
                Ok(mut cb) => cb.render(buf),
                Err(_) => return Err(unsupported("userdata")),
            },
            other => return Err(unsupported(other.type_name())),
        }
    }
    Ok(())
}

fn unsupported(what: &str) -> mlua::Error {
    mlua::Error::runtime(format!("add_to_payload() unsupported type: {what}"))
}

/// Formats a double like C's `%.14g` (Lua 5.1's number format).
pub(crate) fn push_number(buf: &mut String, n: f64) {
    if n.is_nan() {
        buf.push_str(if n.is_sign_negative() { "-nan" } else { "nan" });
        return;
    }
    if n.is_infinite() {
        buf.push_str(if n > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if n == 0.0 {
        buf.push_str(if n.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    let sci = format!("{n:.13e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..14).contains(&exp) {
        buf.push_str(trim_zeros(mant));
        let _ = write!(buf, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else {
        let decimals = (13 - exp).max(0) as usize;
        buf.push_str(trim_zeros(&format!("{n:.decimals$}")));
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(n: f64) -> String {
        let mut s = String::new();
        push_number(&mut s, n);
        s
    }

    #[test]
    fn numbers_print_like_lua_5_1() {
        assert_eq!(fmt(3.0), "3");
        assert_eq!(fmt(0.1 + 0.2), "0.3");
        assert_eq!(fmt(-2.5), "-2.5");
        assert_eq!(fmt(1e15), "1e+15");
        assert_eq!(fmt(1e14), "1e+14");
        assert_eq!(fmt(12345678901234.0), "12345678901234");
        assert_eq!(fmt(0.0001), "0.0001");
        assert_eq!(fmt(0.00001), "1e-05");
        assert_eq!(fmt(f64::NAN), "nan");
        assert_eq!(fmt(1.0 / 3.0), "0.33333333333333");
    }
}
