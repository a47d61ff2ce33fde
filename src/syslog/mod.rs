//! The syslog kit: parsing RFC 3164/5424 lines and rsyslog templates, and the time zone
//! rules for timestamps that carry none. `SyslogDecoder` and `RsyslogDecoder` are thin
//! adapters over it.
//!
//! May import: `message`, `error` and external crates; never a plugin folder or the
//! engine (`pipeline`).

pub mod fast;
pub mod rsyslog_template;
pub mod zone;

pub use zone::{parse_tz, Zone};
