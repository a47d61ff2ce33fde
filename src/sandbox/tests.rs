//! Unit tests of the sandbox host: the API functions, escapes that must be denied and
//! the limits that must terminate (even when the script catches the error).

use std::sync::Arc;

use super::*;
use crate::message::{proto, smallvec, Field, FieldValue, Message, Pack, ValueRef};

fn settings() -> SandboxSettings {
    SandboxSettings::new("test_filter")
}

fn sandbox(src: &str) -> Sandbox {
    Sandbox::new(&settings(), src, "test.lua").expect("script loads")
}

fn sample() -> Pack {
    let mut m = Message::new();
    m.msg_type = "t".into();
    m.logger = "lg".into();
    m.payload = "hello".into();
    m.hostname = "h1".into();
    m.env_version = "0.8".into();
    m.severity = 3;
    m.pid = Some(42);
    m.timestamp = 1_500_000_000_000_000_000;
    m.add_field(Field::integer("n", 5));
    m.add_field(Field::new("arr", FieldValue::Double(smallvec![1.5, 2.5])));
    m.add_field(Field::string("s", "x"));
    m.add_field(Field::boolean("b", true));
    m.add_field(Field::string("s", "y"));
    Pack::new(m)
}

/// Runs `process_message` once, returning status and injected messages.
fn run(sb: &mut Sandbox, pack: &Pack, limit: u32) -> (Result<Status, String>, Vec<Message>) {
    let mut out = Vec::new();
    let r = sb.process_message(pack, limit, &mut out);
    (r, out)
}

/// Evaluates `expr` inside process_message and returns it as the payload text.
fn eval(expr: &str) -> String {
    let mut sb = sandbox(&format!(
        "function process_message() inject_payload('txt', '', {expr}) return 0 end"
    ));
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    out[0].payload.clone()
}

#[test]
fn read_message_reads_headers_and_fields() {
    assert_eq!(eval("read_message('Type')"), "t");
    assert_eq!(eval("read_message('Logger')"), "lg");
    assert_eq!(eval("read_message('Payload')"), "hello");
    assert_eq!(eval("read_message('Hostname')"), "h1");
    assert_eq!(eval("read_message('EnvVersion')"), "0.8");
    assert_eq!(eval("read_message('Severity')"), "3");
    assert_eq!(eval("read_message('Pid')"), "42");
    assert_eq!(eval("read_message('Timestamp')"), "1500000000000000000");
    assert_eq!(eval("read_message('Fields[n]')"), "5");
    assert_eq!(eval("read_message('Fields[arr]', 0, 1)"), "2.5");
    assert_eq!(eval("read_message('Fields[s]', 1)"), "y");
    assert_eq!(eval("read_message('Fields[b]')"), "true");
    assert_eq!(eval("read_message('Fields[missing]')"), "nil");
    assert_eq!(eval("read_message('Nope')"), "nil");
    assert_eq!(eval("#read_message('Uuid')"), "36");
}

#[test]
fn read_message_raw_is_the_protobuf() {
    let pack = sample();
    let mut sb =
        sandbox("function process_message() inject_message(read_message('raw')) return 0 end");
    let (r, out) = run(&mut sb, &pack, 1);
    assert_eq!(r, Ok(Status::Ok));
    let want = proto::decode(&proto::encode_to_vec(&pack.msg)).expect("roundtrip");
    assert_eq!(out[0].payload, want.payload);
    assert_eq!(out[0].fields, want.fields);
    assert_eq!(out[0].msg_type, "heka.sandbox.t");
}

#[test]
fn read_config_returns_typed_values() {
    let mut s = settings();
    s.config = "a = 'x'\nb = 2\nc = 1.5\nd = true".parse().expect("toml");
    let mut sb = Sandbox::new(
        &s,
        "function process_message() inject_payload('txt', '', read_config('a'), read_config('b'), \
         read_config('c'), read_config('d'), read_config('e')) return 0 end",
        "t.lua",
    )
    .expect("loads");
    let (_, out) = run(&mut sb, &sample(), 1);
    assert_eq!(out[0].payload, "x21.5truenil");
}

#[test]
fn inject_message_converts_heka_table_format() {
    let mut sb = sandbox(
        r#"function process_message()
            inject_message({Type = "my", Payload = "p", Severity = 4, Pid = 9, Logger = "ignored",
                Fields = { count = 3, ms = {value = 7, value_type = 2, representation = "ms"},
                           list = {"a", "b"}, flag = false }})
            return 0 end"#,
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    let m = &out[0];
    assert_eq!(m.msg_type, "heka.sandbox.my");
    assert_eq!(m.logger, "test_filter");
    assert_eq!((m.payload.as_str(), m.severity, m.pid), ("p", 4, Some(9)));
    assert_eq!(
        m.field("count", 0).map(|f| &f.value),
        Some(&FieldValue::Double(smallvec![3.0]))
    );
    let ms = m.field("ms", 0).expect("ms");
    assert_eq!(
        (&ms.value, ms.representation.as_str()),
        (&FieldValue::Integer(smallvec![7]), "ms")
    );
    assert_eq!(
        m.field("list", 0).map(|f| &f.value),
        Some(&FieldValue::String(smallvec!["a".into(), "b".into()]))
    );
    assert_eq!(
        m.field("flag", 0).map(|f| &f.value),
        Some(&FieldValue::Bool(smallvec![false]))
    );
}

#[test]
fn a_non_numeric_header_is_left_unset_as_in_heka() {
    // Heka's bind_query_log.lua sets Severity = 'info'; lua_sandbox skips such headers.
    let mut sb = sandbox(
        r#"function process_message()
            inject_message({Type = "q", Severity = "info", Pid = "12", Timestamp = "x"})
            return 0 end"#,
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    assert_eq!(
        (out[0].severity, out[0].pid),
        (Message::new().severity, Some(12))
    );
}

#[test]
fn circular_buffer_truncates_fractional_columns_as_lua_5_1_did() {
    // Heka's http_status.lua: `status:add(ts, sc / 100, 1)` with sc = 503.
    let mut sb = sandbox(
        r#"require "circular_buffer"
           local cb = circular_buffer.new(2, 5, 60)
           function process_message()
             cb:add(60e9, 503 / 100, 1)
             inject_payload('txt', '', cb:get(60e9, 5), ' ', tostring(cb:get(60e9, 4)))
             return 0 end"#,
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    assert_eq!(out[0].payload, "1 nan");
}

#[test]
fn inject_message_accepts_array_fields() {
    let mut sb = sandbox(
        r#"function process_message()
            inject_message({Fields = {{name = "a", value = {1, 2}, value_type = 2}, {name = "a", value = "x"}}})
            return 0 end"#,
    );
    let (_, out) = run(&mut sb, &sample(), 1);
    assert_eq!(out[0].fields[0].value, FieldValue::Integer(smallvec![1, 2]));
    assert_eq!(
        out[0].fields[1].value,
        FieldValue::String(smallvec!["x".into()])
    );
}

#[test]
fn inject_payload_builds_sandbox_output() {
    let mut sb = sandbox(
        "function process_message() add_to_payload('a', 1, ' ') inject_payload('json', 'stats', 2.5) return 0 end",
    );
    let (_, out) = run(&mut sb, &sample(), 1);
    let m = &out[0];
    assert_eq!(m.msg_type, "heka.sandbox-output");
    assert_eq!(m.payload, "a1 2.5");
    let pt = m.field("payload_type", 0).expect("payload_type");
    assert_eq!(pt.value, FieldValue::String(smallvec!["json".into()]));
    assert_eq!(pt.representation, "file-extension");
    assert_eq!(
        m.field("payload_name", 0).map(|f| &f.value),
        Some(&FieldValue::String(smallvec!["stats".into()]))
    );
    let mut sb = sandbox("function process_message() inject_payload() return 0 end");
    let (_, out) = run(&mut sb, &sample(), 1);
    assert_eq!(
        out[0].field("payload_type", 0).map(|f| &f.value),
        Some(&FieldValue::String(smallvec!["txt".into()]))
    );
}

#[test]
fn decode_message_returns_array_based_table() {
    assert_eq!(
        eval("decode_message(read_message('raw')).Fields[1].value[1]"),
        "5"
    );
    assert_eq!(eval("decode_message(read_message('raw')).Payload"), "hello");
}

#[test]
fn return_codes_follow_heka() {
    let mut sb = sandbox("function process_message() return -1, 'bad' end");
    assert_eq!(
        run(&mut sb, &sample(), 1).0,
        Ok(Status::Failed("bad".into()))
    );
    let mut sb = sandbox("function process_message() return 1, 'boom' end");
    assert_eq!(
        run(&mut sb, &sample(), 1).0,
        Err("process_message() boom".into())
    );
    let mut sb = sandbox("function process_message() return 'x' end");
    assert!(run(&mut sb, &sample(), 1).0.is_err());
    let mut sb = sandbox("function process_message() error('oops') end");
    let err = run(&mut sb, &sample(), 1).0.expect_err("error terminates");
    assert!(
        err.starts_with("process_message() test.lua:1: oops"),
        "{err}"
    );
}

#[test]
fn timer_event_receives_ns_and_may_inject_up_to_limit() {
    let mut sb = sandbox(
        "function process_message() return 0 end \
         function timer_event(ns) for i = 1, 2 do inject_payload('txt', '', ns) end end",
    );
    let mut out = Vec::new();
    assert_eq!(sb.timer_event(7, 10, &mut out), Ok(()));
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].payload, "7");
    let mut out = Vec::new();
    let err = sb.timer_event(7, 1, &mut out).expect_err("over limit");
    assert!(err.contains("exceeded InjectMessage count"), "{err}");
}

#[test]
fn process_inject_limit_terminates_even_if_caught() {
    let mut sb =
        sandbox("function process_message() inject_payload() pcall(inject_payload) return 0 end");
    let (r, _) = run(&mut sb, &sample(), 1);
    assert!(r
        .expect_err("terminated")
        .contains("exceeded InjectMessage count"));
}

#[test]
fn escapes_are_denied() {
    for src in [
        "return io.open('/etc/passwd')",
        "return os.execute('true')",
        "return os.getenv('HOME')",
        "return os.exit(1)",
        "return load(string.dump(function() end))",
        "return string.dump(function() end)",
        "return debug.getinfo(1)",
        "return collectgarbage('count')",
        "return dofile('/etc/passwd')",
        "return loadfile('/etc/passwd')",
        "return loadstring('return 1')",
        "return coroutine.create(function() end)",
        "return package.loadlib('x', 'y')",
        "return require('../../etc/passwd')",
        "return require('nonexistent_module')",
    ] {
        let r = Sandbox::new(&settings(), src, "esc.lua");
        assert!(r.is_err(), "{src} must fail");
    }
}

#[test]
fn require_loads_text_modules_and_sets_the_global() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("mymod.lua"), "return {x = 41}").expect("write");
    std::fs::write(dir.path().join("bin.lua"), b"\x1bLua\x54\x00").expect("write");
    let mut s = settings();
    s.module_directories = vec![dir.path().to_path_buf()];
    let src = "require 'mymod' function process_message() inject_payload('txt', '', mymod.x + 1) return 0 end";
    let mut sb = Sandbox::new(&s, src, "r.lua").expect("loads");
    let (_, out) = run(&mut sb, &sample(), 1);
    assert_eq!(out[0].payload, "42");
    let err = Sandbox::new(&s, "require 'bin'", "r.lua").expect_err("binary chunk refused");
    assert!(err.to_string().contains("binary"), "{err}");
}

#[test]
fn lpeg_and_re_load_and_set_their_globals() {
    let src = "require 'lpeg' require 're'\n\
               function process_message()\n\
                 local p = lpeg.C(lpeg.R'az'^1) * ' ' * re.compile('{%d+}')\n\
                 local a, b = p:match('abc 42')\n\
                 inject_payload('txt', '', a, '|', b, '|', lpeg.version())\n\
                 return 0\n\
               end";
    let mut sb = sandbox(src);
    let (_, out) = run(&mut sb, &sample(), 1);
    assert_eq!(out[0].payload, "abc|42|1.0.2");
}

#[test]
fn a_module_that_cannot_be_had_is_reported_with_its_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).expect("write");
    w("common_log_format.lua", "require 'date_time'\nreturn {}");
    w("date_time.lua", "local l = require 'struct'\nreturn {}");
    w("uses_struct.lua", "require 'struct'\nreturn {}");
    w("uses_nothing.lua", "require 'no_such_module'\nreturn {}");
    let mut s = settings();
    s.module_directories = vec![dir.path().to_path_buf()];
    let err = |src: &str| {
        Sandbox::new(&s, src, "/etc/hekate/lua_decoders/nginx_access.lua")
            .expect_err("fails")
            .to_string()
    };
    let e = err("require 'common_log_format'");
    assert!(
        e.contains("nginx_access.lua → common_log_format → date_time: module 'struct' is a lua_sandbox C module"),
        "{e}"
    );
    let e = err("require 'uses_struct'");
    assert!(
        e.contains(
            "uses_struct: module 'struct' is a lua_sandbox C module that hekate does not provide"
        ),
        "{e}"
    );
    let e = err("require 'uses_nothing'");
    assert!(
        e.contains("uses_nothing: module 'no_such_module' not found in module_directory"),
        "{e}"
    );
    let e = err("require 'bloom_filter'");
    assert!(
        e.contains("nginx_access.lua: module 'bloom_filter' is a lua_sandbox C module"),
        "{e}"
    );
}

fn terminated(src: &str) -> String {
    let mut s = settings();
    s.memory_limit = 1024 * 1024;
    s.output_limit = 1024;
    let mut sb = Sandbox::new(&s, src, "lim.lua").expect("loads");
    let (r, _) = run(&mut sb, &sample(), 1);
    let reason = r.expect_err("terminated");
    assert!(sb.termination().is_some(), "flag set for {src}");
    reason
}

#[test]
fn infinite_loop_hits_instruction_limit() {
    let r = terminated("function process_message() while true do end end");
    assert_eq!(r, "process_message() instruction_limit exceeded");
}

#[test]
fn pcall_cannot_swallow_the_instruction_limit() {
    let r = terminated(
        "function process_message() for i = 1, 10 do pcall(function() while true do end end) end return 0 end",
    );
    assert_eq!(r, "process_message() instruction_limit exceeded");
}

#[test]
fn memory_bombs_hit_memory_limit() {
    let r = terminated("function process_message() local s = string.rep('x', 1e8) return 0 end");
    assert!(r.contains("memory_limit exceeded"), "{r}");
    let r = terminated(
        "t = {} function process_message() while true do t[#t + 1] = string.rep('y', 100) .. #t end end",
    );
    assert!(
        r.contains("memory_limit exceeded") || r.contains("instruction_limit"),
        "{r}"
    );
    let r = terminated(
        "function process_message() local ok = pcall(string.rep, 'x', 1e8) return 0 end",
    );
    assert!(r.contains("memory_limit exceeded"), "{r}");
}

#[test]
fn output_flood_hits_output_limit() {
    let r = terminated(
        "function process_message() for i = 1, 1000 do pcall(add_to_payload, 'xxxxxxxxxx') end return 0 end",
    );
    assert_eq!(r, "process_message() output_limit exceeded");
}

#[test]
fn limits_reset_between_calls() {
    let mut sb = sandbox("function process_message() for i = 1, 200000 do end return 0 end");
    for _ in 0..20 {
        assert_eq!(run(&mut sb, &sample(), 1).0, Ok(Status::Ok));
    }
}

#[test]
fn cjson_round_trips_and_discards_null() {
    let mut sb = sandbox(
        r#"require "cjson"
        function process_message()
            local t = cjson.decode('{"a":1,"b":null,"c":[1,2,"x"],"d":{"e":true}}')
            inject_payload("txt", "", tostring(t.b), " ", cjson.encode(t))
            return 0 end"#,
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    assert_eq!(
        out[0].payload,
        r#"nil {"a":1,"c":[1,2,"x"],"d":{"e":true}}"#
    );
    let mut sb = sandbox(
        r#"require "cjson" cjson.decode_null(true)
        function process_message()
            local t = cjson.decode('{"b":null}')
            inject_payload("txt", "", tostring(t.b == cjson.null), cjson.encode({1, 2}))
            return 0 end"#,
    );
    let (_, out) = run(&mut sb, &sample(), 1);
    assert_eq!(out[0].payload, "true[1,2]");
}

#[test]
fn circular_buffer_from_lua() {
    let mut sb = sandbox(
        r#"require "circular_buffer"
        cb = circular_buffer.new(2, 1, 60)
        cb:set_header(1, "Hits!", "count")
        function process_message()
            cb:add(read_message("Timestamp"), 1, 1)
            cb:add(read_message("Timestamp"), 1, 1)
            local rows, cols, spr = cb:get_configuration()
            local name, unit, agg = cb:get_header(1)
            inject_payload("cbuf", "hits", rows, cols, spr, name, unit, agg, "\n",
                cb:compute("sum", 1), "\n", cb)
            return 0 end"#,
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    let t = 1_500_000_000 / 60 * 60;
    assert_eq!(
        out[0].payload,
        format!(
            "2160Hits_countsum\n2\n{{\"time\":{},\"rows\":2,\"columns\":1,\"seconds_per_row\":60,\
             \"column_info\":[{{\"name\":\"Hits_\",\"unit\":\"count\",\"aggregation\":\"sum\"}}]}}\nnan\n2\n",
            t - 60
        )
    );
}

#[test]
fn current_message_is_shared_not_copied() {
    let pack = sample();
    let mut sb = sandbox("function process_message() return 0 end");
    let _ = run(&mut sb, &pack, 1);
    assert_eq!(Arc::strong_count(&pack.msg), 1, "released after the call");
}

#[test]
fn syntax_errors_name_the_file() {
    let err = Sandbox::new(&settings(), "function (", "bad.lua").expect_err("syntax");
    assert!(err.to_string().contains("bad.lua"), "{err}");
}

#[test]
fn preserve_data_round_trips_globals() {
    let src = r#"require "circular_buffer"
        _PRESERVATION_VERSION = 1
        function process_message()
            n = 3; f = 2.5; s = "a\"b\n"; flag = true
            t = {1, 2, x = {y = "z"}}; t.self = t; alias = t.x
            cb = circular_buffer.new(2, 1, 1)
            cb:set_header(1, "Hits", "count", "max")
            cb:add(1e9, 1, 7)
            return 0 end
        function report()
            inject_payload("txt", "", n, " ", f, " ", s, " ", flag, " ", t[2], " ", t.self == t,
                " ", alias == t.x, " ", alias.y, " ", cb:get(1e9, 1), " ", select(3, cb:get_header(1)))
            return 0 end"#;
    let mut sb = sandbox(src);
    let _ = run(&mut sb, &sample(), 1);
    let data = sb.preserve().expect("serializes");
    let restored_src = src.replace("function process_message()", "function ignored()");
    let mut fresh = sandbox(&format!("{restored_src}\nprocess_message = report"));
    fresh.restore(&data, "t.data").expect("restores");
    let (r, out) = run(&mut fresh, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok), "{data}");
    assert_eq!(
        out[0].payload, "3 2.5 a\"b\n true 2 true true z 7 max",
        "{data}"
    );
    let mut other = sandbox(&format!(
        "{}\nprocess_message = report",
        restored_src.replace("_PRESERVATION_VERSION = 1", "_PRESERVATION_VERSION = 2")
    ));
    other
        .restore(&data, "t.data")
        .expect("version mismatch is a clean start");
    assert!(
        run(&mut other, &sample(), 1).0.is_err(),
        "n is nil after a skipped restore"
    );
}

fn codec(src: &str) -> Sandbox {
    let mut sb = sandbox(src);
    sb.enable_codec().expect("codec mode");
    sb
}

#[test]
fn write_message_sets_headers_fields_and_array_entries() {
    let mut sb = codec(
        "function process_message() \
         write_message('Type', 'nt') write_message('Severity', 1) write_message('Pid', 7) \
         write_message('Fields[n]', 9) write_message('Fields[arr]', 3.5, '', 0, 1) \
         write_message('Fields[arr]', 4.5, '', 0, 2) write_message('Fields[s]', 'z', '', 1) \
         write_message('Fields[new]', 'v', 'unit') write_message('Fields[new]', 'w', nil, 1) \
         return 0 end",
    );
    let mut out = Vec::new();
    let (st, m) = sb.process_owned(sample().msg.as_ref().clone(), 0, &mut out);
    assert_eq!(st, Ok(Status::Ok));
    assert_eq!((m.msg_type.as_str(), m.severity, m.pid), ("nt", 1, Some(7)));
    assert_eq!(
        m.field("n", 0).map(|f| &f.value),
        Some(&FieldValue::Double(smallvec![9.0]))
    );
    assert_eq!(
        m.field("arr", 0).map(|f| &f.value),
        Some(&FieldValue::Double(smallvec![1.5, 3.5, 4.5]))
    );
    assert_eq!(m.field_value("s", 1, 0), Some(ValueRef::Str("z")));
    assert_eq!(
        m.field("new", 0).map(|f| f.representation.as_str()),
        Some("unit")
    );
    assert_eq!(m.field_value("new", 1, 0), Some(ValueRef::Str("w")));
    assert_eq!(m.payload, "hello", "untouched headers stay");
}

#[test]
fn write_message_rejects_bad_input_and_is_absent_in_filters() {
    let mut sb =
        codec("function process_message() write_message('Fields[x]', 1, '', 0, 3) return 0 end");
    let (st, _) = sb.process_owned(Message::new(), 0, &mut Vec::new());
    assert!(st.expect_err("fatal").contains("array index"));
    let mut f = sandbox("function process_message() write_message('Type', 'x') return 0 end");
    let (r, _) = run(&mut f, &sample(), 1);
    assert!(r.expect_err("no write_message").contains("write_message"));
}

#[test]
fn codec_inject_message_keeps_headers_and_sets_output() {
    let mut sb = codec(
        "function process_message() inject_message({Type = 'raw', Logger = 'me'}) return 0 end",
    );
    let mut out = Vec::new();
    let (st, _) = sb.process_owned(Message::new(), 1, &mut out);
    assert_eq!(st, Ok(Status::Ok));
    assert_eq!(
        (out[0].msg_type.as_str(), out[0].logger.as_str()),
        ("raw", "me")
    );
    let bytes = sb.take_output().expect("output set");
    assert_eq!(proto::decode(&bytes).expect("pb").msg_type, "raw");
    assert_eq!(sb.take_output(), None);
}

#[test]
fn lua_51_names_heka_scripts_use_are_available() {
    assert_eq!(eval("(unpack({'a', 'b'}))"), "a");
    assert_eq!(eval("table.getn({1, 2, 3})"), "3");
    assert_eq!(eval("table.maxn({[1] = 1, [7] = 2})"), "7");
    assert_eq!(eval("math.pow(2, 10)"), "1024");
    assert_eq!(eval("math.mod(7, 3)"), "1");
    assert_eq!(eval("math.log10(1000)"), "3");
    assert_eq!(eval("math.ldexp(3, 2)"), "12");
    assert_eq!(eval("(function() local s = '' for w in string.gfind('a b', '%a') do s = s .. w end return s end)()"), "ab");
    assert_eq!(eval("tostring(debug)"), "nil", "debug stays hidden");
}

#[test]
fn os_date_and_time_truncate_fractions_as_lua_5_1() {
    // Heka's scripts pass `Timestamp / 1e9`, which has a fraction.
    assert_eq!(
        eval("os.date('!%Y-%m-%dT%H:%M:%S', 1500000000.999)"),
        "2017-07-14T02:40:00"
    );
    assert_eq!(eval("os.date('!%S', -0.5)"), "00");
    assert_eq!(eval("os.date('!%Y', 0)"), "1970");
    assert_eq!(
        eval("os.time({year = 2017.0, month = 7.9, day = 14, hour = 2, min = 40, sec = 0.75, isdst = false}) - os.time({year = 2017, month = 7, day = 14, hour = 2, min = 40, sec = 0})"),
        "0"
    );
    assert_eq!(eval("(function() local t = {year = 2017, month = 7, day = 14, sec = 1.5}; os.time(t); return t.sec end)()"), "1.5");
    assert_eq!(eval("type(os.time())"), "number");
    assert_eq!(eval("type(os.date())"), "string");
}

#[test]
fn setfenv_module_pattern_keeps_globals_in_the_module() {
    let sb = sandbox(
        r#"
        local M = {}
        local string = string
        setfenv(1, M)
        function greet() return string.upper("hi") end
        leaked = 1
        function process_message()
            inject_payload("txt", "", M.greet(), " ", tostring(M.leaked), " ", tostring(rawget(_G or {}, "leaked")))
            return 0
        end
        M.process_message = process_message
        _PM = process_message
        "#,
    );
    // process_message was defined into M, so the host finds none.
    assert!(!sb.has_process_message());
    let mut sb2 = sandbox(
        r#"
        local M = {}
        local g = getfenv(1)
        setfenv(1, M)
        x = 5
        g.process_message = function()
            g.inject_payload("txt", "", g.tostring(M.x), " ", g.tostring(g.x))
            return 0
        end
        "#,
    );
    let (r, out) = run(&mut sb2, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    assert_eq!(out[0].payload, "5 nil");
    assert!(sb.termination().is_none());
}

#[test]
fn read_next_field_walks_the_fields_then_returns_nils() {
    let mut sb = sandbox(
        r#"function process_message()
            local out = {}
            while true do
                local t, name, value, rep, count = read_next_field()
                if not t then break end
                out[#out + 1] = string.format("%d:%s=%s/%d", t, name, tostring(value), count)
            end
            inject_payload("txt", "", table.concat(out, " "))
            return 0
        end"#,
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    assert_eq!(
        out[0].payload,
        "2:n=5/1 3:arr=1.5/2 0:s=x/1 4:b=true/1 0:s=y/1"
    );
    let (_, out) = run(&mut sb, &sample(), 1);
    assert!(out[0].payload.starts_with("2:n=5/1"), "restarts per call");
}

#[test]
fn cjson_encodes_like_lua_cjson() {
    assert_eq!(
        eval(r#"(function() require "cjson" return cjson.encode({60000.0, 3.5, nil, "x"}) end)()"#),
        r#"[60000,3.5,null,"x"]"#
    );
    let mut sb = sandbox(
        r#"require "cjson"
        function process_message()
            local ok, err = pcall(cjson.encode, {[1] = 1, [100] = 2})
            inject_payload("txt", "", tostring(ok), " ", tostring(err))
            return 0
        end"#,
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    assert!(
        out[0].payload.starts_with("false ") && out[0].payload.contains("excessively sparse array"),
        "{}",
        out[0].payload
    );
}

#[test]
fn read_message_fast_path_and_full_path_agree() {
    // Handled by the C fast path.
    assert_eq!(eval("read_message('Fields[arr]', 0, 1)"), "2.5");
    assert_eq!(eval("read_message('Fields[s]', 1)"), "y");
    assert_eq!(eval("tostring(read_message('Fields[missing]'))"), "nil");
    assert_eq!(eval("math.type(read_message('Timestamp'))"), "integer");
    // Passed to the full implementation: float indices, Uuid, raw, bad arguments.
    assert_eq!(eval("read_message('Fields[arr]', 0.0, 1.0)"), "2.5");
    assert_eq!(eval("#read_message('Uuid')"), "36");
    assert_eq!(eval("type(read_message('raw'))"), "string");
    let mut sb = sandbox(
        "function process_message() local ok, e = pcall(read_message, 'Fields[n]', -1) \
         inject_payload('txt', '', tostring(e)) return 0 end",
    );
    let (_, out) = run(&mut sb, &sample(), 1);
    assert!(
        out[0].payload.contains("must be >= 0"),
        "{}",
        out[0].payload
    );
    // Outside a call there is no current message.
    let sb = sandbox("x = read_message('Type') function process_message() return 0 end");
    assert!(sb.termination().is_none());
}

#[test]
fn hyperloglog_counts_distinct_items_and_survives_preserve() {
    // The calls Heka's unique_items.lua makes: a bare require, new, add (true when the
    // estimate may have moved), count and clear.
    let src = r#"require "hyperloglog"
        hll = hyperloglog.new()
        function process_message()
            local changed = 0
            for i = 1, 1000 do
                if hll:add("uid" .. (i % 500)) then changed = changed + 1 end
            end
            if hll:add(7) then changed = changed + 1 end
            inject_payload("txt", "", hll:count(), " ", hll:add(7), " ", changed > 0)
            return 0 end
        function report()
            inject_payload("txt", "", hll:count())
            hll:clear()
            inject_payload("txt", "", hll:count())
            return 0 end"#;
    let mut sb = sandbox(src);
    let (r, out) = run(&mut sb, &sample(), 2);
    assert_eq!(r, Ok(Status::Ok));
    let (count, rest) = out[0].payload.split_once(' ').expect("two parts");
    let count: i64 = count.parse().expect("integer count");
    assert!((496..=506).contains(&count), "~501 distinct items: {count}");
    assert_eq!(rest, "false true", "a repeat changes nothing");
    let data = sb.preserve().expect("serializes");
    let mut fresh = sandbox(&format!(
        "{}\nprocess_message = report",
        src.replace("function process_message()", "function ignored()")
    ));
    fresh.restore(&data, "t.data").expect("restores");
    let (r, out) = run(&mut fresh, &sample(), 2);
    assert_eq!(r, Ok(Status::Ok), "{data}");
    assert_eq!(
        out[0].payload,
        count.to_string(),
        "the estimate is preserved"
    );
    assert_eq!(out[1].payload, "0");
}

fn io_role(role: Role) -> SandboxSettings {
    let mut s = settings();
    s.role = role;
    s.instruction_limit = 0;
    s
}

/// Heka's io template (SandboxInput/SandboxOutput) adds `io` and `os`, and nothing that
/// reaches below Lua or escapes the hook: no `load`, `string.dump`, `debug`, `dofile`,
/// `loadfile`, C modules, `os.exit` or `coroutine` (a loop inside a coroutine would not
/// see the instruction hook, so a stop or a limit could be dodged).
#[test]
fn the_io_template_still_denies_code_loading_exit_and_coroutines() {
    for role in [Role::Input, Role::Output] {
        for src in [
            "return load('return 1')",
            "return string.dump(function() end)",
            "return debug.getinfo(1)",
            "return dofile('/etc/passwd')",
            "return loadfile('/etc/passwd')",
            "return package.loadlib('x', 'y')",
            "return os.exit(1)",
            "return os.setlocale('C')",
            "return require('../../etc/passwd')",
            "return coroutine.create(function() end)",
            "return coroutine.wrap(function() end)",
        ] {
            let r = Sandbox::new(&io_role(role), src, "esc.lua");
            assert!(r.is_err(), "{role:?}: {src} must fail");
        }
    }
}

/// A forced stop ends a script spinning in `pcall`, and a set instruction limit holds in
/// the io template too.
#[test]
fn a_stop_and_the_instruction_limit_end_a_spinning_io_script() {
    let spin = "function process_message() \
                while true do pcall(function() while true do end end) end \
                end";
    let mut sb = Sandbox::new(&io_role(Role::Input), spin, "spin.lua").expect("loads");
    let stopper = sb.stopper();
    let t = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        stopper.force();
    });
    let r = sb.run_input(Box::new(|_| Ok(())));
    t.join().expect("thread");
    assert!(r.is_err(), "stopped: {r:?}");
    assert!(sb.clear_stop(), "a requested stop, not a failure");

    let mut limited = io_role(Role::Output);
    limited.instruction_limit = 100_000;
    let mut sb = Sandbox::new(&limited, spin, "spin.lua").expect("loads");
    let (r, _) = run(&mut sb, &sample(), 0);
    assert!(r.expect_err("terminated").contains("instruction_limit"));
}

/// The escape review's userdata part: a script reaching the metatable of hekate's
/// userdata (circular_buffer, hyperloglog, lpeg patterns) gets nothing it can change,
/// and a method called on the wrong userdata is an error, never a crash.
#[test]
fn userdata_metatables_are_locked() {
    for make in [
        "circular_buffer.new(2, 1, 60)",
        "hyperloglog.new()",
        "lpeg.P('a')",
    ] {
        let probe = format!(
            "require 'circular_buffer' require 'hyperloglog' require 'lpeg' \
             local u = {make} \
             return tostring(getmetatable(u))"
        );
        let mut sb = sandbox(&format!(
            "function process_message() inject_payload('txt', '', (function() {probe} end)()) return 0 end"
        ));
        let (r, out) = run(&mut sb, &sample(), 1);
        assert_eq!(r, Ok(Status::Ok), "{make}");
        assert_eq!(out[0].payload, "false", "{make}: the metatable is hidden");
    }
    // Methods of one type called on another are refused.
    let mut sb = sandbox(
        "require 'circular_buffer' require 'hyperloglog' \
         function process_message() \
           local cb, h = circular_buffer.new(2, 1, 60), hyperloglog.new() \
           local ok, err = pcall(cb.add, h, 0, 1, 1) \
           inject_payload('txt', '', tostring(ok) .. ' ' .. tostring(err)) return 0 end",
    );
    let (r, out) = run(&mut sb, &sample(), 1);
    assert_eq!(r, Ok(Status::Ok));
    assert!(out[0].payload.starts_with("false "), "{}", out[0].payload);
}

/// Finalizers cannot dodge the instruction limit: Lua runs `__gc` with hooks off, so a
/// finalizer that never returned would hang the plugin's thread. `setmetatable` refuses
/// a metatable with `__gc` (also a placeholder to be filled in later), and a script that
/// tried still lets the sandbox be dropped at once.
#[test]
fn finalizers_are_refused() {
    for mt in ["{__gc = function() while true do end end}", "{__gc = true}"] {
        let src = format!(
            "function process_message() \
               local ok, err = pcall(setmetatable, {{}}, {mt}) \
               inject_payload('txt', '', tostring(ok) .. ' ' .. tostring(err)) return 0 end"
        );
        let mut sb = sandbox(&src);
        let (r, out) = run(&mut sb, &sample(), 1);
        assert_eq!(r, Ok(Status::Ok));
        assert!(
            out[0].payload.contains("__gc metamethods are not allowed"),
            "{}",
            out[0].payload
        );
    }
    // Ordinary metatables still work.
    assert_eq!(
        eval("getmetatable(setmetatable({}, {__index = {x = 1}})).__index.x"),
        "1"
    );
    let src = "function process_message() \
                 pcall(setmetatable, {}, {__gc = function() while true do end end}) \
                 return 0 end";
    let mut sb = sandbox(src);
    let (r, _) = run(&mut sb, &sample(), 0);
    assert_eq!(r, Ok(Status::Ok));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(sb);
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(20)).is_ok(),
        "dropping the sandbox hung in a finalizer"
    );
}
