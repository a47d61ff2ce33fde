//! The `hyperloglog` module for sandboxes (`require "hyperloglog"`): a cardinality
//! estimator with Heka's lua_sandbox API (`new`, `add`, `count`, `clear`, plus `merge`
//! and `fromstring` for `preserve_data`), so Heka's `unique_items.lua` runs unchanged.
//!
//! The layout follows Redis' dense HyperLogLog, which lua_sandbox's module was built on:
//! 2^14 six-bit registers (standard error 0.81%), items hashed with MurmurHash64A (seed
//! `0xadc83b19`), the low 14 bits of the hash choosing the register and the run of zero
//! bits above them (plus one) its value. `count` uses Ertl's improved raw estimator
//! (Redis ≥ 5), which needs no bias tables and is accurate from 0 upwards. Registers are
//! stored one per byte (16 KiB) rather than packed: simpler, and the memory limit counts
//! them like any other allocation. Called by `require`; preserved by `preserve`.

use std::fmt::Write as _;

use mlua::{Lua, Table, UserData, UserDataMethods, Value};

/// Index bits: 2^14 registers.
const P: u32 = 14;
/// Registers.
const M: usize = 1 << P;
/// Bits of the hash left for the zero run.
const Q: u32 = 64 - P;
/// Redis' MurmurHash64A seed.
const SEED: u64 = 0xadc8_3b19;

/// One estimator: a register per byte.
#[derive(Clone)]
pub(crate) struct HyperLogLog {
    registers: Box<[u8]>,
}

impl HyperLogLog {
    /// An empty estimator.
    pub(crate) fn new() -> Self {
        HyperLogLog {
            registers: vec![0u8; M].into_boxed_slice(),
        }
    }

    /// Adds an item's bytes; true when a register changed (the estimate may have moved).
    pub(crate) fn add(&mut self, item: &[u8]) -> bool {
        let hash = murmur64a(item, SEED);
        let index = (hash & (M as u64 - 1)) as usize;
        // The sentinel bit bounds the run at Q zeros: values are 1..=Q+1.
        let rest = (hash >> P) | (1u64 << Q);
        let value = rest.trailing_zeros() as u8 + 1;
        if value > self.registers[index] {
            self.registers[index] = value;
            true
        } else {
            false
        }
    }

    /// The estimated number of distinct items added.
    pub(crate) fn count(&self) -> u64 {
        let mut histogram = [0u32; Q as usize + 2];
        for &r in self.registers.iter() {
            histogram[r as usize] += 1;
        }
        let m = M as f64;
        let mut z = m * tau((m - f64::from(histogram[Q as usize + 1])) / m);
        for k in (1..=Q as usize).rev() {
            z += f64::from(histogram[k]);
            z *= 0.5;
        }
        z += m * sigma(f64::from(histogram[0]) / m);
        let alpha_inf = 0.5 / std::f64::consts::LN_2;
        (alpha_inf * m * m / z).round() as u64
    }

    /// Forgets every item.
    pub(crate) fn clear(&mut self) {
        self.registers.fill(0);
    }

    /// Makes this the union of itself and `other`.
    pub(crate) fn merge(&mut self, other: &HyperLogLog) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// Writes Lua that rebuilds this estimator at `path` (for `preserve_data`); the
    /// caller has written `path = `.
    pub(crate) fn write_restore(&self, path: &str, out: &mut String) {
        let _ = writeln!(out, "hyperloglog.new()");
        let mut hex = String::with_capacity(M * 2);
        for r in self.registers.iter() {
            let _ = write!(hex, "{r:02x}");
        }
        let _ = writeln!(out, "{path}:fromstring(\"{hex}\")");
    }

    /// Restores registers written by [`HyperLogLog::write_restore`].
    fn fromstring(&mut self, s: &str) -> mlua::Result<()> {
        let bad = || mlua::Error::runtime("hyperloglog fromstring() invalid data");
        if s.len() != M * 2 {
            return Err(bad());
        }
        let mut regs = vec![0u8; M];
        for (i, r) in regs.iter_mut().enumerate() {
            let v = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
            if u32::from(v) > Q + 1 {
                return Err(bad());
            }
            *r = v;
        }
        self.registers = regs.into_boxed_slice();
        Ok(())
    }
}

/// Ertl's σ(x) = x + Σ x^(2^k) 2^(k-1), for the empty-register share.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

/// Ertl's τ(x), for the share of registers that are not saturated.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// MurmurHash64A (Austin Appleby), as Redis hashes HyperLogLog items.
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const MUL: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(MUL);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(chunk);
        let mut k = u64::from_le_bytes(buf);
        k = k.wrapping_mul(MUL);
        k ^= k >> R;
        k = k.wrapping_mul(MUL);
        h ^= k;
        h = h.wrapping_mul(MUL);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate() {
            h ^= u64::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(MUL);
    }
    h ^= h >> R;
    h = h.wrapping_mul(MUL);
    h ^= h >> R;
    h
}

/// The bytes an item is hashed by: a string's bytes, a number's IEEE 754 bytes (so 1 and
/// 1.0 are the same item).
fn item_bytes(v: &Value) -> mlua::Result<Vec<u8>> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Integer(n) => Ok((*n as f64).to_le_bytes().to_vec()),
        Value::Number(n) => Ok(n.to_le_bytes().to_vec()),
        other => Err(mlua::Error::runtime(format!(
            "hyperloglog add() expects a string or number, got {}",
            other.type_name()
        ))),
    }
}

impl UserData for HyperLogLog {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_method_mut("add", |_, h, v: Value| Ok(h.add(&item_bytes(&v)?)));
        m.add_method("count", |_, h, ()| {
            Ok(i64::try_from(h.count()).unwrap_or(i64::MAX))
        });
        m.add_method_mut("clear", |_, h, ()| {
            h.clear();
            Ok(())
        });
        m.add_method_mut("merge", |_, h, other: mlua::UserDataRef<HyperLogLog>| {
            h.merge(&other);
            Ok(())
        });
        m.add_method_mut("fromstring", |_, h, s: String| h.fromstring(&s));
    }
}

/// Builds the module table (`hyperloglog.new`).
pub(crate) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("new", lua.create_function(|_, ()| Ok(HyperLogLog::new()))?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_counts_zero_and_small_sets_are_exact_enough() {
        let mut h = HyperLogLog::new();
        assert_eq!(h.count(), 0);
        assert!(h.add(b"a"));
        assert!(!h.add(b"a"), "a repeat changes no register");
        assert_eq!(h.count(), 1);
        for i in 0..100 {
            h.add(format!("user{i}").as_bytes());
        }
        assert!((99..=103).contains(&h.count()), "{}", h.count());
        h.clear();
        assert_eq!(h.count(), 0);
    }

    #[test]
    fn large_cardinalities_stay_within_a_few_standard_errors() {
        let mut h = HyperLogLog::new();
        let n = 200_000u64;
        for i in 0..n {
            h.add(format!("uid-{i}").as_bytes());
        }
        let err = (h.count() as f64 - n as f64).abs() / n as f64;
        assert!(err < 0.03, "estimate {} for {n}", h.count());
    }

    #[test]
    fn merge_is_the_union() {
        let (mut a, mut b) = (HyperLogLog::new(), HyperLogLog::new());
        for i in 0..5000 {
            a.add(format!("x{i}").as_bytes());
            b.add(format!("x{}", i + 2500).as_bytes());
        }
        a.merge(&b);
        let c = a.count() as f64;
        assert!((c - 7500.0).abs() / 7500.0 < 0.03, "{c}");
    }

    #[test]
    fn every_tail_length_is_hashed() {
        // Keys differing only in their last (tail) byte, for every tail length 0..=7,
        // must land in different places: a tail that was ignored would collide.
        for len in 8..16 {
            let a = vec![b'k'; len];
            let mut b = a.clone();
            b[len - 1] = b'j';
            assert_ne!(murmur64a(&a, SEED), murmur64a(&b, SEED), "length {len}");
        }
    }

    #[test]
    fn restore_round_trips_and_rejects_junk() {
        let mut h = HyperLogLog::new();
        for i in 0..1000 {
            h.add(format!("{i}").as_bytes());
        }
        let mut out = String::new();
        h.write_restore("hll", &mut out);
        let hex = out.split('"').nth(1).expect("the hex string is quoted");
        let mut back = HyperLogLog::new();
        back.fromstring(hex).expect("valid");
        assert_eq!(back.count(), h.count());
        assert!(back.fromstring("zz").is_err());
    }
}
