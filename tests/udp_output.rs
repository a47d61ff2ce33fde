//! `UdpOutput` to real sockets: a UDP socket and a Unix datagram socket each get one
//! datagram per message; a message over `max_message_size` is dropped and counted, and
//! the ones after it still go.

use std::time::Duration;

use crate::common::*;

#[test]
fn udp_and_unixgram_datagrams_one_per_message() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    udp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("in.sock");
    let unix = std::os::unix::net::UnixDatagram::bind(&path).expect("unixgram");
    unix.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let port = free_port();
    let h = Hekate::start(&format!(
        "{}\n[to_udp]\ntype = \"UdpOutput\"\nmessage_matcher = \"Logger == 'lines'\"\n\
         address = \"{}\"\nencoder = \"raw\"\nmax_message_size = 16\n\
         [to_unix]\ntype = \"UdpOutput\"\nnet = \"unixgram\"\nmessage_matcher = \"Logger == 'lines'\"\n\
         address = \"{}\"\nencoder = \"raw\"\n",
        tcp_lines(port),
        udp.local_addr().expect("addr"),
        path.display()
    ));
    assert!(wait_tcp(port), "{}", h.log_text());
    send_tcp(port, b"one\nthis line is longer than sixteen bytes\ntwo\n");
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    for _ in 0..2 {
        let n = udp.recv(&mut buf).expect("udp datagram");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got, ["one\n", "two\n"]);
    let mut got = Vec::new();
    for _ in 0..3 {
        let n = unix.recv(&mut buf).expect("unix datagram");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(
        got,
        ["one\n", "this line is longer than sixteen bytes\n", "two\n"]
    );
    let c = h.counters("to_udp");
    assert_eq!(
        (c.get("oversize"), c.get("dropped")),
        (Some(&1), Some(&1)),
        "{c:?}"
    );
}
