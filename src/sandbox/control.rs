//! The control protocol of `SandboxManagerFilter`: builds `heka.control.sandbox` messages as
//! Heka's `heka-sbmgr` did and sends them over TCP with Heka stream framing. Used by the
//! `hekate sbmgr` command (and tests).

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::message::{framing, now_ns, proto, Field, Message};

/// How long `send` waits to connect and write.
const TIMEOUT: Duration = Duration::from_secs(10);

fn control() -> Message {
    Message {
        msg_type: "heka.control.sandbox".into(),
        logger: "hekad".into(),
        timestamp: now_ns(),
        uuid: *uuid::Uuid::new_v4().as_bytes(),
        hostname: crate::config::system_hostname().into(),
        ..Message::default()
    }
}

/// A `load` message: `Payload` = the script, `Fields[config]` = the TOML section
/// (representation `toml`), `Fields[action]` = `load`.
pub fn load_message(config_toml: &str, script: &str) -> Message {
    let mut m = control();
    m.payload = script.to_string();
    m.add_field(Field::string("config", config_toml).with_representation("toml"));
    m.add_field(Field::string("action", "load"));
    m
}

/// An `unload` message for the filter whose section was called `name`.
pub fn unload_message(name: &str) -> Message {
    let mut m = control();
    m.add_field(Field::string("name", name));
    m.add_field(Field::string("action", "unload"));
    m
}

/// Sends `msg` as one Heka-framed protobuf record to a TcpInput at `address`.
pub fn send(
    address: &str,
    msg: &Message,
    signer: Option<&framing::SignerConfig>,
) -> std::io::Result<()> {
    let addr = address.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{address}: no address"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut frame = Vec::new();
    let bytes = proto::encode_to_vec(msg);
    match signer {
        Some(s) => framing::write_signed_frame(&bytes, s, &mut frame),
        None => framing::write_frame(&bytes, &mut frame),
    }
    stream.write_all(&frame)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::ValueRef;

    #[test]
    fn messages_carry_hekas_fields() {
        let m = load_message(
            "[f]\ntype = 'SandboxFilter'",
            "function process_message() return 0 end",
        );
        assert_eq!(m.msg_type, "heka.control.sandbox");
        assert_eq!(m.field_value("action", 0, 0), Some(ValueRef::Str("load")));
        assert_eq!(
            m.field("config", 0).map(|f| f.representation.as_str()),
            Some("toml")
        );
        assert!(m.payload.contains("process_message"));
        assert!((now_ns() - m.timestamp).abs() < 5_000_000_000);
        let u = unload_message("f");
        assert_eq!(u.field_value("name", 0, 0), Some(ValueRef::Str("f")));
        assert_eq!(u.field_value("action", 0, 0), Some(ValueRef::Str("unload")));
        let bytes = proto::encode_to_vec(&u);
        assert_eq!(proto::decode(&bytes).expect("decodes"), u);
    }
}
