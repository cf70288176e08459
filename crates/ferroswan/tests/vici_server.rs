//! In-process VICI server + client tests.

#![allow(missing_docs, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{TestHandler, socket_path};
use ferroswan::vici::packet::{FrameDecoder, Packet};
use ferroswan::vici::{Client, Error, Message, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

async fn start(test: &str) -> Server {
    let path = socket_path(test);
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    Server::start(ServerConfig::new(path), TestHandler).await.unwrap()
}

/// Reads packets from a raw connection until EOF (or `limit` packets).
async fn read_packets(stream: &mut UnixStream, limit: usize) -> Vec<Packet> {
    let mut dec = FrameDecoder::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < limit {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        dec.handle_bytes(&buf[..n]);
        while let Some(p) = dec.poll_packet().unwrap() {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn version_stats_and_streamed_list_sas() {
    let server = start("basic").await;
    let mode = std::fs::metadata(server.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode {mode:o}");
    let dir_mode = std::fs::metadata(server.path().parent().unwrap()).unwrap().permissions();
    assert_eq!(dir_mode.mode() & 0o777, 0o750);

    let mut client = Client::connect(server.path()).await.unwrap();
    let version = client.request("version", &Message::new()).await.unwrap();
    assert_eq!(version.get_str("daemon"), Some("ferroswan"));
    assert_eq!(version.get_str("version"), Some("0.1.0"));

    let stats = client.request("stats", &Message::new()).await.unwrap();
    assert_eq!(stats.find_str("uptime.running"), Some("5 minutes"));
    assert_eq!(stats.find_str("workers.active.critical"), Some("4"));
    assert_eq!(stats.find_str("ikesas.half-open"), Some("0"));
    assert_eq!(stats.get_str_list("plugins").unwrap().len(), 2);

    let (events, response) =
        client.request_streaming("list-sas", &Message::new(), "list-sa").await.unwrap();
    assert!(response.is_empty());
    assert_eq!(events.len(), 2);
    let home = events[0].get_section("home").unwrap();
    assert_eq!(home.get_str("state"), Some("ESTABLISHED"));
    assert_eq!(home.get_str("initiator-spi"), Some("6fd55d95f66b4a67"));
    let net = home.get_section("child-sas").unwrap().get_section("net-1").unwrap();
    assert_eq!(net.get_str("spi-in"), Some("c8931e89"));
    assert_eq!(net.get_str("bytes-out"), Some("168"));
    assert_eq!(net.get_str_list("remote-ts"), Some(vec!["10.2.0.0/16", "10.3.0.0/16"]));
    let office = events[1].get_section("office").unwrap();
    assert_eq!(office.get_str("remote-host"), Some("2001:db8::1"));
    assert_eq!(office.get_str("initiator"), None);

    // A filter in the request reaches the handler.
    let filter = Message::new().kv("ike", "office");
    let (events, _) = client.request_streaming("list-sas", &filter, "list-sa").await.unwrap();
    assert_eq!(events.len(), 1);

    // Without registering, the stream is not sent; the command still completes.
    let response = client.request("list-sas", &Message::new()).await.unwrap();
    assert!(response.is_empty());

    let (logs, response) =
        client.request_streaming("initiate", &Message::new(), "control-log").await.unwrap();
    assert_eq!(logs.len(), 3);
    assert_eq!(response.get_str("success"), Some("yes"));

    let path = server.path().to_path_buf();
    server.shutdown().await;
    assert!(!path.exists(), "socket file removed on shutdown");
}

#[tokio::test]
async fn unknown_command_and_event() {
    let server = start("unknown").await;
    let mut client = Client::connect(server.path()).await.unwrap();
    let err = client.request("no-such-command", &Message::new()).await.unwrap_err();
    assert!(matches!(&err, Error::CommandUnknown(c) if c == "no-such-command"), "{err}");
    let err = client.register("no-such-event").await.unwrap_err();
    assert!(matches!(&err, Error::EventUnknown(e) if e == "no-such-event"), "{err}");
    // Both answers leave the connection usable.
    assert!(client.request("version", &Message::new()).await.is_ok());

    // The same on the wire: CMD_UNKNOWN and EVENT_UNKNOWN packets.
    let mut raw = UnixStream::connect(server.path()).await.unwrap();
    for p in [
        Packet::CmdRequest { name: "nope".into(), msg: Message::new() },
        Packet::EventRegister { name: "nope".into() },
        Packet::EventRegister { name: "ike-updown".into() },
        Packet::EventUnregister { name: "nope".into() },
    ] {
        raw.write_all(&p.encode().unwrap()).await.unwrap();
    }
    let got = read_packets(&mut raw, 4).await;
    assert_eq!(
        got,
        [Packet::CmdUnknown, Packet::EventUnknown, Packet::EventConfirm, Packet::EventUnknown]
    );
}

#[tokio::test]
async fn garbage_disconnects_only_that_client() {
    let server = start("garbage").await;
    let mut good = Client::connect(server.path()).await.unwrap();
    assert!(good.request("version", &Message::new()).await.is_ok());

    let garbage: [&[u8]; 5] = [
        // Valid length, unknown packet type.
        b"\x00\x00\x00\x01\x09",
        // CMD_REQUEST with an invalid message (unknown element type 9).
        b"\x00\x00\x00\x04\x00\x01x\x09",
        // A server-only packet.
        b"\x00\x00\x00\x01\x05",
        // Oversized segment length (rejected before reading the data).
        b"\x00\x08\x00\x01\x00",
        // Empty segment.
        b"\x00\x00\x00\x00",
    ];
    for bytes in garbage {
        let mut bad = UnixStream::connect(server.path()).await.unwrap();
        bad.write_all(bytes).await.unwrap();
        assert_eq!(read_packets(&mut bad, 1).await, [], "{bytes:?} got an answer");
        // The other client keeps working.
        let v = good.request("version", &Message::new()).await.unwrap();
        assert_eq!(v.get_str("daemon"), Some("ferroswan"));
    }

    // A client that hangs up mid-packet does not hurt either.
    let mut half = UnixStream::connect(server.path()).await.unwrap();
    half.write_all(b"\x00\x00\x01\x00\x00\x05").await.unwrap();
    drop(half);
    assert!(good.request("stats", &Message::new()).await.is_ok());
    assert!(
        Client::connect(server.path())
            .await
            .unwrap()
            .request("version", &Message::new())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn broadcast_reaches_registered_clients_only() {
    let server = start("broadcast").await;
    let broadcaster = server.broadcaster();
    let mut a = Client::connect(server.path()).await.unwrap();
    let mut b = Client::connect(server.path()).await.unwrap();
    a.register("ike-updown").await.unwrap();
    b.register("child-updown").await.unwrap();
    assert!(broadcaster.has_listeners("ike-updown"));
    assert!(!broadcaster.has_listeners("log"));

    let sa = &common::ike_sas()[0];
    assert_eq!(broadcaster.emit("ike-updown", sa.ike_updown_event(true)), 1);
    assert_eq!(broadcaster.emit("child-updown", sa.child_updown_event(&sa.child_sas[0], false)), 1);
    assert_eq!(broadcaster.emit("log", Message::new().kv("msg", "x")), 0);

    let (name, msg) = a.next_event().await.unwrap();
    assert_eq!(name, "ike-updown");
    assert_eq!(msg.get_str("up"), Some("yes"));
    assert!(msg.get_section("home").unwrap().get_section("child-sas").is_none());
    let (name, msg) = b.next_event().await.unwrap();
    assert_eq!(name, "child-updown");
    assert_eq!(msg.get_str("up"), None);
    let children = msg.get_section("home").unwrap().get_section("child-sas").unwrap();
    assert!(children.get_section("net-1").is_some());

    // Events arriving during a request are kept for next_event.
    assert_eq!(broadcaster.emit("ike-updown", sa.ike_updown_event(false)), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(a.request("version", &Message::new()).await.is_ok());
    assert_eq!(a.next_event().await.unwrap().0, "ike-updown");

    a.unregister("ike-updown").await.unwrap();
    assert_eq!(broadcaster.emit("ike-updown", sa.ike_updown_event(true)), 0);
    assert_eq!(server.client_count(), 2);
    drop(a);
    drop(b);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(server.client_count(), 0);
}

#[tokio::test]
async fn stale_socket_is_replaced_and_live_one_refused() {
    let path = socket_path("stale");
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    // A socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::start(ServerConfig::new(&path), TestHandler).await.unwrap();

    // A second server on the same live path is refused, and does not remove the socket.
    let err = Server::start(ServerConfig::new(&path), TestHandler).await.unwrap_err();
    assert!(err.to_string().contains("another server"), "{err}");
    assert!(Client::connect(&path).await.is_ok());

    // Dropping the server removes the socket file.
    drop(server);
    assert!(!path.exists());

    // A regular file is not removed.
    std::fs::write(&path, b"not a socket").unwrap();
    let err = Server::start(ServerConfig::new(&path), TestHandler).await.unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert!(path.exists());
}

#[tokio::test]
async fn client_times_out_and_is_poisoned() {
    // A "server" that accepts and never answers.
    let path = socket_path("timeout");
    let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
    let mut client = Client::connect(&path).await.unwrap();
    client.set_timeout(Duration::from_millis(100));
    let err = client.request("version", &Message::new()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("\"version\""), "{err}");
    let err = client.request("version", &Message::new()).await.unwrap_err();
    assert!(matches!(err, Error::Poisoned), "{err}");
    drop(accept);
    let _ = std::fs::remove_file(&path);
}
