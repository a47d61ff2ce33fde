//! Heka's filter API as Lua globals: `read_message`, `read_config`, `decode_message`,
//! `inject_message`, `inject_payload` and `add_to_payload` (heka.md §3.3). They reach the
//! current call's [`CallState`] through Lua app data. Installed by
//! `sandbox::restricted_state`.

use mlua::{Lua, MultiValue, Table, Value};

use super::output::append_values;
use std::sync::MutexGuard;

use super::{CallState, Role, Shared};
use crate::message::{proto, Field, FieldValue, Message, ValueRef, Values};

/// Registers the API functions `role` has (heka.md §3.3).
pub(crate) fn install(lua: &Lua, shared: &Shared, role: Role) -> mlua::Result<()> {
    install_all(lua, shared)?;
    let absent: &[&str] = match role {
        Role::Filter => &[],
        Role::Input => &[
            "read_message",
            "read_next_field",
            "inject_payload",
            "add_to_payload",
        ],
        Role::Output => &["inject_message", "inject_payload", "add_to_payload"],
    };
    let g = lua.globals();
    for name in absent {
        g.raw_set(*name, Value::Nil)?;
    }
    Ok(())
}

fn install_all(lua: &Lua, shared: &Shared) -> mlua::Result<()> {
    let g = lua.globals();
    let full = lua.create_function({
        let s = shared.clone();
        // `String` is read straight off the Lua stack (cheaper than a `LuaString` ref).
        move |lua, (var, fi, ai): (String, Option<i64>, Option<i64>)| {
            read_message(lua, &s, &var, fi.unwrap_or(0), ai.unwrap_or(0))
        }
    })?;
    let current = lock(shared)?.fast.clone();
    g.raw_set("read_message", super::fast_read::wrap(lua, full, &current)?)?;
    g.raw_set("read_next_field", {
        let s = shared.clone();
        lua.create_function(move |lua, ()| read_next_field(lua, &s))?
    })?;
    g.raw_set("read_config", {
        let s = shared.clone();
        lua.create_function(move |lua, name: String| read_config(lua, &s, &name))?
    })?;
    g.raw_set(
        "decode_message",
        lua.create_function(|lua, pb: mlua::LuaString| {
            let msg = proto::decode(&pb.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("decode_message() failed: {e}")))?;
            message_table(lua, &msg)
        })?,
    )?;
    let s = shared.clone();
    g.raw_set(
        "inject_message",
        lua.create_function(move |lua, v: Value| inject_message(lua, &s, v))?,
    )?;
    let s = shared.clone();
    g.raw_set(
        "inject_payload",
        lua.create_function(move |lua, a: MultiValue| inject_payload(lua, &s, a))?,
    )?;
    let s = shared.clone();
    g.raw_set(
        "add_to_payload",
        lua.create_function(move |_, args: MultiValue| {
            let (limit, term, mut buf) = {
                let mut st = lock(&s)?;
                (
                    st.output_limit,
                    st.term.clone(),
                    std::mem::take(&mut st.payload),
                )
            };
            let res = append_values(&mut buf, args.iter());
            let over = limit > 0 && buf.len() > limit;
            lock(&s)?.payload = buf;
            res?;
            if over {
                return Err(term.error("output_limit exceeded"));
            }
            Ok(())
        })?,
    )?;
    Ok(())
}

/// Registers `write_message(name, value, representation, fi, ai)` (decoders and
/// encoders only).
pub(crate) fn install_write_message(lua: &Lua, shared: &Shared) -> mlua::Result<()> {
    let s = shared.clone();
    let f = lua.create_function(
        move |_,
              (name, value, rep, fi, ai): (
            String,
            Value,
            Option<String>,
            Option<i64>,
            Option<i64>,
        )| { write_message(&s, &name, &value, rep, fi.unwrap_or(0), ai.unwrap_or(0)) },
    )?;
    lua.globals().raw_set("write_message", f)
}

/// Sets a header or `Fields[name]` value of the current message.
fn write_message(
    s: &Shared,
    var: &str,
    value: &Value,
    rep: Option<String>,
    fi: i64,
    ai: i64,
) -> mlua::Result<()> {
    let bad = |w: &str| mlua::Error::runtime(format!("write_message() {w}"));
    let (Ok(fi), Ok(ai)) = (usize::try_from(fi), usize::try_from(ai)) else {
        return Err(bad("field and array index must be >= 0"));
    };
    let mut st = lock(s)?;
    let fast = st.fast.clone();
    let Some(cur) = st.current.as_mut() else {
        return Err(bad("no active message"));
    };
    // Copy-on-write may move the message: republish it for the fast read path.
    std::sync::Arc::make_mut(cur);
    fast.set(Some(cur));
    let msg = std::sync::Arc::make_mut(cur);
    let text = || match value {
        Value::String(v) => Ok(v.to_string_lossy()),
        Value::Integer(n) => Ok(n.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(bad(&format!("{var} takes a string"))),
    };
    let num = || match value {
        Value::Integer(n) => Ok(*n),
        Value::Number(n) => Ok(*n as i64),
        _ => Err(bad(&format!("{var} takes a number"))),
    };
    match var {
        "Type" => msg.msg_type = text()?.into(),
        "Logger" => msg.logger = text()?.into(),
        "Payload" => msg.payload = text()?,
        "EnvVersion" => msg.env_version = text()?.into(),
        "Hostname" => msg.hostname = text()?.into(),
        "Timestamp" => msg.timestamp = num()?,
        "Severity" => msg.severity = num()? as i32,
        "Pid" => msg.pid = Some(num()? as i32),
        "Uuid" => {
            let Value::String(v) = value else {
                return Err(bad("Uuid takes a 16-byte string"));
            };
            msg.uuid = <[u8; 16]>::try_from(&v.as_bytes()[..])
                .map_err(|_| bad("Uuid takes a 16-byte string"))?;
        }
        _ => {
            let name = var
                .strip_prefix("Fields[")
                .and_then(|r| r.strip_suffix(']'))
                .ok_or_else(|| bad(&format!("unknown variable {var}")))?;
            write_field(msg, name, value, rep, fi, ai)?;
        }
    }
    Ok(())
}

/// Sets entry `ai` of the `fi`-th field called `name`, adding the field when `fi` is
/// beyond the existing ones (and `ai` is 0).
fn write_field(
    msg: &mut Message,
    name: &str,
    value: &Value,
    rep: Option<String>,
    fi: usize,
    ai: usize,
) -> mlua::Result<()> {
    let bad = |w: &str| mlua::Error::runtime(format!("write_message() {w}"));
    let new = field_value(name, value, None)?;
    let Some(pos) = msg
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name == name)
        .map(|(i, _)| i)
        .nth(fi)
    else {
        if ai != 0 {
            return Err(bad("array index out of range for a new field"));
        }
        msg.add_field(Field {
            name: name.into(),
            representation: rep.map(Into::into).unwrap_or_default(),
            value: new,
        });
        return Ok(());
    };
    let field = &mut msg.fields[pos];
    if let Some(r) = rep {
        field.representation = r.into();
    }
    if ai == 0 && field.value.len() <= 1 {
        field.value = new;
        return Ok(());
    }
    set_array_entry(&mut field.value, new, ai).map_err(|w| bad(&w))
}

/// Replaces or appends one entry of a same-typed array value.
fn set_array_entry(v: &mut FieldValue, new: FieldValue, ai: usize) -> Result<(), String> {
    fn put<T>(items: &mut Values<T>, mut new: Values<T>, ai: usize) -> Result<(), String> {
        let x = new.pop().ok_or("empty value")?;
        match ai.cmp(&items.len()) {
            std::cmp::Ordering::Less => items[ai] = x,
            std::cmp::Ordering::Equal => items.push(x),
            std::cmp::Ordering::Greater => return Err("array index out of range".into()),
        }
        Ok(())
    }
    match (v, new) {
        (FieldValue::String(a), FieldValue::String(b)) => put(a, b, ai),
        (FieldValue::Bytes(a), FieldValue::Bytes(b)) => put(a, b, ai),
        (FieldValue::Integer(a), FieldValue::Integer(b)) => put(a, b, ai),
        (FieldValue::Double(a), FieldValue::Double(b)) => put(a, b, ai),
        (FieldValue::Double(a), FieldValue::Integer(b)) => {
            put(a, b.into_iter().map(|n| n as f64).collect(), ai)
        }
        (FieldValue::Integer(a), FieldValue::Double(b)) => {
            put(a, b.into_iter().map(|n| n as i64).collect(), ai)
        }
        (FieldValue::Bool(a), FieldValue::Bool(b)) => put(a, b, ai),
        _ => Err("value type differs from the field's".into()),
    }
}

/// Locks the call state (never held across a call back into Lua).
pub(crate) fn lock(s: &Shared) -> mlua::Result<MutexGuard<'_, CallState>> {
    Ok(s.lock().unwrap_or_else(|p| p.into_inner()))
}

/// `read_message(var, fi, ai)`: a header, `Fields[name]` or `raw`, or nil.
fn read_message(lua: &Lua, s: &Shared, var: &str, fi: i64, ai: i64) -> mlua::Result<Value> {
    if fi < 0 || ai < 0 {
        return Err(mlua::Error::runtime(
            "read_message() field and array index must be >= 0",
        ));
    }
    if var == "raw" {
        let mut st = lock(s)?;
        let Some(msg) = st.current.clone() else {
            return Ok(Value::Nil);
        };
        let raw = st.raw.get_or_insert_with(|| proto::encode_to_vec(&msg));
        return Ok(Value::String(lua.create_string(&raw[..])?));
    }
    let st = lock(s)?;
    let Some(msg) = st.current.as_deref() else {
        return Ok(Value::Nil);
    };
    let s = |v: &str| lua.create_string(v).map(Value::String);
    Ok(match var {
        "Type" => s(&msg.msg_type)?,
        "Logger" => s(&msg.logger)?,
        "Payload" => s(&msg.payload)?,
        "EnvVersion" => s(&msg.env_version)?,
        "Hostname" => s(&msg.hostname)?,
        "Uuid" => s(&msg.uuid_string())?,
        "Timestamp" => Value::Integer(msg.timestamp),
        "Severity" => Value::Integer(msg.severity.into()),
        "Pid" => msg.pid.map_or(Value::Nil, |p| Value::Integer(p.into())),
        _ => match var
            .strip_prefix("Fields[")
            .and_then(|r| r.strip_suffix(']'))
        {
            Some(name) => match msg.field_value(name, fi as usize, ai as usize) {
                Some(v) => value_ref(lua, v)?,
                None => Value::Nil,
            },
            None => Value::Nil,
        },
    })
}

/// `read_next_field()` (deprecated in Heka 0.10, still used by its shipped scripts):
/// `value_type, name, value, representation, count` of the next field of the current
/// message (its first value), or five nils after the last one.
fn read_next_field(lua: &Lua, s: &Shared) -> mlua::Result<MultiValue> {
    let mut st = lock(s)?;
    let i = st.next_field;
    let Some(field) = st.current.as_ref().and_then(|m| m.fields.get(i)).cloned() else {
        return Ok(std::iter::repeat_n(Value::Nil, 5).collect());
    };
    st.next_field += 1;
    drop(st);
    let value = match field.value.get(0) {
        Some(v) => value_ref(lua, v)?,
        None => Value::Nil,
    };
    Ok(MultiValue::from_iter([
        Value::Integer(field.value.type_code().into()),
        Value::String(lua.create_string(&field.name)?),
        value,
        Value::String(lua.create_string(&field.representation)?),
        Value::Integer(field.value.len() as i64),
    ]))
}

fn value_ref(lua: &Lua, v: ValueRef<'_>) -> mlua::Result<Value> {
    Ok(match v {
        ValueRef::Str(s) => Value::String(lua.create_string(s)?),
        ValueRef::Bytes(b) => Value::String(lua.create_string(b)?),
        ValueRef::Int(n) => Value::Integer(n),
        ValueRef::Double(n) => Value::Number(n),
        ValueRef::Bool(b) => Value::Boolean(b),
    })
}

/// `read_config(name)`: a value of `[name.config]`, or nil.
fn read_config(lua: &Lua, s: &Shared, name: &str) -> mlua::Result<Value> {
    let mut st = lock(s)?;
    if !st.read_keys.contains(name) {
        st.read_keys.insert(name.to_string());
    }
    match st.config.get(name) {
        Some(v) => toml_value(lua, v),
        None => Ok(Value::Nil),
    }
}

fn toml_value(lua: &Lua, v: &toml::Value) -> mlua::Result<Value> {
    Ok(match v {
        toml::Value::String(s) => Value::String(lua.create_string(s)?),
        toml::Value::Integer(n) => Value::Integer(*n),
        toml::Value::Float(n) => Value::Number(*n),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        toml::Value::Datetime(d) => Value::String(lua.create_string(d.to_string())?),
        toml::Value::Array(a) => {
            let t = lua.create_table()?;
            for (i, x) in a.iter().enumerate() {
                t.raw_set(i + 1, toml_value(lua, x)?)?;
            }
            Value::Table(t)
        }
        toml::Value::Table(m) => {
            let t = lua.create_table()?;
            for (k, x) in m {
                t.raw_set(k.as_str(), toml_value(lua, x)?)?;
            }
            Value::Table(t)
        }
    })
}

/// Counts one injection against the call's limit, terminating past it.
fn count_inject(s: &Shared, what: &str) -> mlua::Result<()> {
    let mut st = lock(s)?;
    st.inject_count += 1;
    if st.inject_count > st.inject_limit {
        let term = st.term.clone();
        drop(st);
        return Err(term.error(&format!("{what}() exceeded InjectMessage count")));
    }
    Ok(())
}

/// Queues a message, enforcing the output limit on its protobuf size.
fn push(s: &Shared, msg: Message) -> mlua::Result<()> {
    let mut st = lock(s)?;
    if st.output_limit > 0 && proto::encode_to_vec(&msg).len() > st.output_limit {
        let term = st.term.clone();
        drop(st);
        return Err(term.error("output_limit exceeded"));
    }
    st.injected.push(msg);
    Ok(())
}

/// `inject_message(table | pb_string)`.
fn inject_message(_lua: &Lua, s: &Shared, arg: Value) -> mlua::Result<()> {
    count_inject(s, "inject_message")?;
    let mut msg = match arg {
        Value::Table(t) => table_message(&t)?,
        Value::String(s) => proto::decode(&s.as_bytes()).map_err(|e| {
            mlua::Error::runtime(format!("inject_message() could not decode protobuf: {e}"))
        })?,
        other => {
            return Err(mlua::Error::runtime(format!(
                "inject_message() takes a table or a protobuf string, not {}",
                other.type_name()
            )))
        }
    };
    let (name, codec, input) = {
        let st = lock(s)?;
        (st.name.clone(), st.codec, st.sink.is_some())
    };
    if input {
        return send_now(s, msg);
    }
    if codec {
        lock(s)?.output = Some(proto::encode_to_vec(&msg));
        return push(s, msg);
    }
    msg.msg_type = compact_str::format_compact!("heka.sandbox.{}", msg.msg_type);
    msg.logger = name.into();
    msg.hostname.clear();
    push(s, msg)
}

/// Input role: checks the output limit and hands `msg` to the sink (as given: no
/// prefixing). The sink may block; the state lock is not held meanwhile.
fn send_now(s: &Shared, msg: Message) -> mlua::Result<()> {
    let (limit, term, mut sink) = {
        let mut st = lock(s)?;
        (st.output_limit, st.term.clone(), st.sink.take())
    };
    if term.stopping() {
        lock(s)?.sink = sink;
        return Err(term.error(super::STOP_REASON));
    }
    if limit > 0 && proto::encode_to_vec(&msg).len() > limit {
        lock(s)?.sink = sink;
        return Err(term.error("output_limit exceeded"));
    }
    let sent = match sink.as_mut() {
        Some(f) => f(msg),
        None => Err("no sink".into()),
    };
    lock(s)?.sink = sink;
    sent.map_err(|e| mlua::Error::runtime(format!("inject_message() {e}")))
}

/// `inject_payload(type="txt", name="", ...)`.
fn inject_payload(_lua: &Lua, s: &Shared, args: MultiValue) -> mlua::Result<()> {
    count_inject(s, "inject_payload")?;
    let mut it = args.iter();
    let kind = opt_string(it.next())?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "txt".into());
    let name = opt_string(it.next())?.unwrap_or_default();
    let mut buf = std::mem::take(&mut lock(s)?.payload);
    let res = append_values(&mut buf, it);
    res?;
    let logger = lock(s)?.name.clone();
    let mut msg = Message {
        msg_type: "heka.sandbox-output".into(),
        logger: logger.into(),
        payload: buf,
        ..Message::default()
    };
    msg.add_field(Field::string("payload_type", kind).with_representation("file-extension"));
    msg.add_field(Field::string("payload_name", name));
    {
        let mut st = lock(s)?;
        if st.codec {
            st.output = Some(msg.payload.as_bytes().to_vec());
        }
    }
    push(s, msg)
}

fn opt_string(v: Option<&Value>) -> mlua::Result<Option<String>> {
    match v {
        None | Some(Value::Nil) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.to_str()?.to_string())),
        Some(other) => Err(mlua::Error::runtime(format!(
            "inject_payload() type and name must be strings, not {}",
            other.type_name()
        ))),
    }
}

/// Converts Heka's message table format into a message.
fn table_message(t: &Table) -> mlua::Result<Message> {
    let mut msg = Message::default();
    let uuid: Value = t.raw_get("Uuid")?;
    if let Value::String(s) = uuid {
        if let Ok(b) = <[u8; 16]>::try_from(&s.as_bytes()[..]) {
            msg.uuid = b;
        }
    }
    msg.timestamp = header_number(t, "Timestamp")?.map_or(0, |n| n as i64);
    msg.msg_type = compact(t.raw_get("Type")?);
    msg.logger = compact(t.raw_get("Logger")?);
    msg.hostname = compact(t.raw_get("Hostname")?);
    msg.payload = t.raw_get::<Option<String>>("Payload")?.unwrap_or_default();
    msg.env_version = compact(t.raw_get("EnvVersion")?);
    msg.pid = header_number(t, "Pid")?.map(|n| n as i32);
    if let Some(s) = header_number(t, "Severity")? {
        msg.severity = s as i32;
    }
    if let Some(fields) = t.raw_get::<Option<Table>>("Fields")? {
        table_fields(&fields, &mut msg)?;
    }
    Ok(msg)
}

/// A numeric header (`Timestamp`, `Severity`, `Pid`). As in Heka's lua_sandbox, a
/// value that is not a number (or a numeric string) leaves the header unset: Heka's own
/// `bind_query_log.lua` sets `Severity = 'info'`.
fn header_number(t: &Table, key: &str) -> mlua::Result<Option<f64>> {
    Ok(match t.raw_get::<Value>(key)? {
        Value::Integer(i) => Some(i as f64),
        Value::Number(n) => Some(n),
        Value::String(s) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    })
}

/// `Fields` as an array of `{name=, value=, ...}` or as a hash `name = value | spec`.
fn table_fields(fields: &Table, msg: &mut Message) -> mlua::Result<()> {
    if fields.raw_len() > 0 {
        for entry in fields.sequence_values::<Table>() {
            let entry = entry?;
            let name: String = entry.raw_get("name")?;
            msg.add_field(field_spec(name, &entry)?);
        }
        return Ok(());
    }
    let mut pairs: Vec<(String, Value)> = Vec::new();
    for pair in fields.pairs::<String, Value>() {
        pairs.push(pair?);
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, v) in pairs {
        let field = match &v {
            Value::Table(spec) if !spec.raw_get::<Value>("value")?.is_nil() => {
                field_spec(name, spec)?
            }
            _ => Field::new(name.clone(), field_value(&name, &v, None)?),
        };
        msg.add_field(field);
    }
    Ok(())
}

fn field_spec(name: String, spec: &Table) -> mlua::Result<Field> {
    let vt: Option<i64> = spec.raw_get("value_type")?;
    let value: Value = spec.raw_get("value")?;
    let rep: Option<String> = spec.raw_get("representation")?;
    let value = field_value(&name, &value, vt)?;
    Ok(Field {
        name: name.into(),
        representation: rep.map(Into::into).unwrap_or_default(),
        value,
    })
}

/// An optional Lua string as a message header (absent is empty).
fn compact(s: Option<mlua::LuaString>) -> crate::message::CompactString {
    s.map(|s| s.to_string_lossy().into()).unwrap_or_default()
}

/// A scalar or array Lua value as a typed field value (numbers are DOUBLE unless
/// `value_type` is 2).
fn field_value(name: &str, v: &Value, vt: Option<i64>) -> mlua::Result<FieldValue> {
    let items: Vec<Value> = match v {
        Value::Table(t) => t.sequence_values::<Value>().collect::<mlua::Result<_>>()?,
        other => vec![other.clone()],
    };
    let bad = |what: &str| mlua::Error::runtime(format!("inject_message() field '{name}': {what}"));
    let first = items.first().ok_or_else(|| bad("empty array"))?;
    let num = |x: &Value| match x {
        Value::Integer(n) => Ok(*n as f64),
        Value::Number(n) => Ok(*n),
        _ => Err(bad("mixed types in array")),
    };
    let string = |x: &Value| match x {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        _ => Err(bad("mixed types in array")),
    };
    Ok(match (first, vt) {
        (Value::Integer(_) | Value::Number(_), Some(2)) => FieldValue::Integer(
            items
                .iter()
                .map(|x| num(x).map(|n| n as i64))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Integer(_) | Value::Number(_), _) => {
            FieldValue::Double(items.iter().map(num).collect::<Result<_, _>>()?)
        }
        (Value::String(_), Some(1)) => {
            FieldValue::Bytes(items.iter().map(string).collect::<Result<_, _>>()?)
        }
        (Value::String(_), _) => FieldValue::String(
            items
                .iter()
                .map(|x| string(x).map(|b| String::from_utf8_lossy(&b).into_owned()))
                .collect::<Result<_, _>>()?,
        ),
        (Value::Boolean(_), _) => FieldValue::Bool(
            items
                .iter()
                .map(|x| match x {
                    Value::Boolean(b) => Ok(*b),
                    _ => Err(bad("mixed types in array")),
                })
                .collect::<Result<_, _>>()?,
        ),
        (other, _) => {
            return Err(bad(&format!(
                "unsupported value type {}",
                other.type_name()
            )))
        }
    })
}

/// `decode_message`'s array-based table form.
fn message_table(lua: &Lua, msg: &Message) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("Uuid", lua.create_string(msg.uuid)?)?;
    t.raw_set("Timestamp", msg.timestamp)?;
    t.raw_set("Type", msg.msg_type.as_str())?;
    t.raw_set("Logger", msg.logger.as_str())?;
    t.raw_set("Severity", msg.severity)?;
    t.raw_set("Payload", msg.payload.as_str())?;
    t.raw_set("EnvVersion", msg.env_version.as_str())?;
    t.raw_set("Hostname", msg.hostname.as_str())?;
    if let Some(p) = msg.pid {
        t.raw_set("Pid", p)?;
    }
    let fields = lua.create_table()?;
    for (i, f) in msg.fields.iter().enumerate() {
        let ft = lua.create_table()?;
        ft.raw_set("name", f.name.as_str())?;
        ft.raw_set("value_type", f.value.type_code())?;
        ft.raw_set("representation", f.representation.as_str())?;
        let values = lua.create_table()?;
        for j in 0..f.value.len() {
            if let Some(v) = f.value.get(j) {
                values.raw_set(j + 1, value_ref(lua, v)?)?;
            }
        }
        ft.raw_set("value", values)?;
        fields.raw_set(i + 1, ft)?;
    }
    t.raw_set("Fields", fields)?;
    Ok(t)
}
