//! Logs never carry bodies: under security 0 they hold the Wi-Fi passphrase in the clear.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use wifiprov_proto::danger;
use wifiprov_proto::endpoint::{SessionLimits, names};
use wifiprov_proto::secret::ProofOfPossession;
use wifiprov_proto::security::{ClientSecurity, DeviceSecurity};

use crate::common::*;

/// Records every span field and event, at every level, as text.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<Mutex<String>>,
    next_id: Arc<AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={:?}", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "span {}:", span.metadata().name());
        span.record(&mut Fields(&mut text));
        text.push('\n');
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut text = self.text.lock().unwrap();
        text.push_str("record:");
        values.record(&mut Fields(&mut text));
        text.push('\n');
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "{}:", event.metadata().level());
        event.record(&mut Fields(&mut text));
        text.push('\n');
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

const PASSPHRASE: &str = "correct horse battery staple";
const SECRET_POP: &str = "pop-7f3a9c";

fn assert_absent(logs: &str, secret: &str) {
    assert!(!logs.contains(secret), "{secret:?} appears in the logs:\n{logs}");
    let hex = hex::encode(secret);
    assert!(!logs.contains(&hex), "{secret:?} appears hex-encoded in the logs:\n{logs}");
    let bytes = format!("{:?}", secret.as_bytes());
    assert!(!logs.contains(&bytes[1..bytes.len() - 1]), "{secret:?} appears as bytes in the logs:\n{logs}");
}

#[tokio::test]
async fn bodies_and_secrets_stay_out_of_the_logs() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());

    // Security 0: the passphrase travels in the clear, both ways.
    let server = Server::start(protocomm(danger::sec0(), SessionLimits::default())).await;
    let mut client = server.client().await;
    let reply = within(client.request(ECHO, PASSPHRASE.as_bytes())).await.unwrap();
    assert!(reply.ends_with(PASSPHRASE.as_bytes()));
    // A refused request carrying it.
    let mut raw = server.raw().await;
    raw.send(&post(names::PROV_SESSION, PASSPHRASE.as_bytes(), "")).await;
    raw.assert_closed_silently().await;

    // Security 1 with a distinctive proof of possession.
    let security = DeviceSecurity::sec1(ProofOfPossession::from(SECRET_POP));
    let server = Server::start(protocomm(security, SessionLimits::default())).await;
    let mut client = server.client().await;
    let mut session = handshake(&mut client, ClientSecurity::sec1(ProofOfPossession::from(SECRET_POP)), 50).await;
    assert_echo(&mut client, &mut session, PASSPHRASE.as_bytes()).await;

    let logs = capture.text.lock().unwrap().clone();
    assert_absent(&logs, PASSPHRASE);
    assert_absent(&logs, SECRET_POP);
    // The logs are there, including those written on the blocking threads that run protocomm.
    assert!(logs.contains("new session"), "{logs}");
    assert!(logs.contains("http_conn"), "{logs}");
    assert!(logs.contains("WARN: message=request refused; closing without response endpoint=prov-session"), "{logs}");
    assert!(logs.contains("record: session="), "{logs}");
}

/// A `Write` into a shared buffer, for a formatting subscriber.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every request names its session once, however many requests its connection carried before: the span of a
/// request is the request's, not the connection's, so nothing accumulates in it.
#[tokio::test]
async fn a_log_line_names_its_session_once_however_long_the_connection() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::start(protocomm(sec1(), SessionLimits::default())).await;
    let mut client = server.client().await;
    let mut session = handshake(&mut client, sec1_client(), 60).await;
    for i in 0..50u8 {
        assert_echo(&mut client, &mut session, &[i]).await;
    }
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let answered: Vec<&str> = text.lines().filter(|l| l.contains("answered")).collect();
    assert!(answered.len() >= 50, "{text}");
    for line in text.lines() {
        let named = line.matches(" session=").count() + line.matches("{session=").count();
        assert!(named <= 1, "a line names its session more than once: {line}");
        assert!(line.len() < 400, "a line grew: {line}");
    }
    assert!(answered.last().unwrap().contains(" session="), "{text}");
}
