//! Helpers shared by the test modules: a server on 127.0.0.1:0, protocomm set-ups, a client-side handshake, and a
//! raw TCP peer that sees exactly the bytes on the wire.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wifiprov_dispatch::Dispatcher;
use wifiprov_proto::endpoint::{
    EndpointHandler, HandlerError, HandlerFuture, Plaintext, Protocomm, SessionId, SessionLimits, names,
};
use wifiprov_proto::rng::SecureRandom;
use wifiprov_proto::secret::{Password, ProofOfPossession};
use wifiprov_proto::security::{
    ClientSecurity, ClientSession, DeviceSecurity, Sec2Patch, Sec2Verifier, generate_salt_verifier,
};
use wifiprov_testkit::SeededRandom;
use wifiprov_transport_http::{HttpClient, HttpConfig, TransportError, serve};

/// Upper bound for any single awaited event. Tests never sleep; they wait for something with this timeout.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

pub(crate) const POP: &str = "pop";
pub(crate) const USERNAME: &str = "wifiprov";
pub(crate) const PASSWORD: &str = "abcd1234";
pub(crate) const VERSION: &str = r#"{"prov":{"ver":"v1.1","sec_ver":1,"cap":["wifi_scan"]}}"#;
/// An ordinary endpoint answering `echo:` followed by the request.
pub(crate) const ECHO: &str = "echo";
/// An ordinary endpoint whose handler waits until the test releases it (see [`Gate`]).
pub(crate) const BLOCK: &str = "block";

/// Awaits `f`, failing the test if it takes longer than [`PATIENCE`].
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f).await.expect("timed out waiting for an event")
}

pub(crate) fn sec1() -> DeviceSecurity {
    DeviceSecurity::sec1(ProofOfPossession::from(POP))
}

pub(crate) fn sec1_client() -> ClientSecurity {
    ClientSecurity::sec1(ProofOfPossession::from(POP))
}

/// Security 2 with a salt and verifier generated from a fixed seed (computed once per test binary).
pub(crate) fn sec2() -> DeviceSecurity {
    static VERIFIER: OnceLock<Arc<Sec2Verifier>> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let mut rng = SeededRandom::new(2);
        let creds = generate_salt_verifier(USERNAME.as_bytes(), &Password::from(PASSWORD), 16, &mut rng).unwrap();
        Arc::new(Sec2Verifier::new(&creds.salt, &creds.verifier).unwrap())
    });
    DeviceSecurity::sec2(verifier.clone(), Sec2Patch::Counter)
}

pub(crate) fn sec2_client() -> ClientSecurity {
    ClientSecurity::sec2(USERNAME, Password::from(PASSWORD), Sec2Patch::Counter)
}

fn echo(_: Option<SessionId>, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
    Ok([b"echo:".as_slice(), request].concat())
}

/// A protocomm instance with `proto-ver`, `prov-session` (with `security`) and the [`ECHO`] endpoint.
pub(crate) fn protocomm(security: DeviceSecurity, limits: SessionLimits) -> Protocomm {
    let mut pc = Protocomm::new(limits);
    pc.set_version(names::PROTO_VER, VERSION).unwrap();
    let _ = pc.set_security(names::PROV_SESSION, security).unwrap();
    pc.add_endpoint(ECHO, Arc::new(echo)).unwrap();
    pc
}

/// Controls the [`BLOCK`] endpoint: each request reports its arrival, then waits for one release.
pub(crate) struct Gate {
    entered: mpsc::UnboundedReceiver<Vec<u8>>,
    release: Arc<tokio::sync::Semaphore>,
}

/// The [`BLOCK`] endpoint's handler: what a blocking Wi-Fi scan looks like to the transport.
struct Gated {
    entered: mpsc::UnboundedSender<Vec<u8>>,
    release: Arc<tokio::sync::Semaphore>,
}

impl EndpointHandler for Gated {
    fn handle(&self, _: Option<SessionId>, request: Plaintext) -> HandlerFuture {
        let _ = self.entered.send(request.to_vec());
        let release = self.release.clone();
        Box::pin(async move {
            release.acquire().await.map_err(|e| HandlerError::Internal(Box::new(e)))?.forget();
            Ok(b"released".to_vec())
        })
    }
}

impl Gate {
    /// Adds the [`BLOCK`] endpoint to `pc`.
    pub(crate) fn install(pc: &mut Protocomm) -> Self {
        let (entered_tx, entered) = mpsc::unbounded_channel();
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        pc.add_endpoint(BLOCK, Arc::new(Gated { entered: entered_tx, release: release.clone() })).unwrap();
        Self { entered, release }
    }

    /// Waits until a request is inside the handler; returns its plaintext.
    pub(crate) async fn entered(&mut self) -> Vec<u8> {
        within(self.entered.recv()).await.expect("handler gone")
    }

    /// Lets one waiting (or future) request finish.
    pub(crate) fn release(&self) {
        self.release.add_permits(1);
    }
}

/// A server running on 127.0.0.1 with an ephemeral port.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    pub(crate) dispatcher: Arc<Dispatcher>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl Server {
    pub(crate) async fn start(pc: Protocomm) -> Self {
        Self::start_with(pc, Box::new(SeededRandom::new(1)), HttpConfig::default()).await
    }

    pub(crate) async fn start_with(pc: Protocomm, rng: Box<dyn SecureRandom + Send>, config: HttpConfig) -> Self {
        let listener = wifiprov_transport_http::listen(([127, 0, 0, 1], 0).into()).unwrap();
        let addr = listener.local_addr().unwrap();
        let dispatcher = Arc::new(Dispatcher::new(pc, rng));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, dispatcher.clone(), config, async {
            let _ = stopped.await;
        }));
        Self { addr, dispatcher, stop: Some(stop), task: Some(task) }
    }

    /// Asks the server to shut down, without waiting.
    pub(crate) fn request_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for `serve` to return and checks that it succeeded.
    pub(crate) async fn stopped(&mut self) {
        let task = self.task.take().expect("server already awaited");
        within(task).await.expect("server task panicked").expect("serve failed");
    }

    pub(crate) async fn client(&self) -> HttpClient {
        within(HttpClient::connect(self.addr)).await.unwrap()
    }

    pub(crate) async fn raw(&self) -> Raw {
        Raw::connect(self.addr).await
    }

    pub(crate) fn session_count(&self) -> usize {
        self.dispatcher.with_protocomm(|p| p.session_count())
    }

    /// Proves the server still works: a new client gets its version.
    pub(crate) async fn assert_serving(&self) {
        let mut client = self.client().await;
        let reply = within(client.request(wifiprov_proto::endpoint::names::PROTO_VER, b"---")).await.unwrap();
        assert_eq!(reply, VERSION.as_bytes());
    }
}

/// Runs a whole security handshake over `client`; the client's randomness comes from `seed`.
pub(crate) async fn handshake(client: &mut HttpClient, security: ClientSecurity, seed: u64) -> ClientSession {
    let mut rng = SeededRandom::new(seed);
    let mut session = ClientSession::new(security);
    let mut request = session.start(&mut rng).unwrap();
    loop {
        let response = within(client.request(names::PROV_SESSION, &request)).await.unwrap();
        match session.handle_response(&response, &mut rng).unwrap() {
            Some(next) => request = next,
            None => break,
        }
    }
    assert!(session.is_established());
    session
}

/// Sends `message` encrypted to `endpoint` and returns the decrypted reply.
pub(crate) async fn call(
    client: &mut HttpClient,
    session: &mut ClientSession,
    endpoint: &str,
    message: &[u8],
) -> Result<Vec<u8>, TransportError> {
    let mut body = message.to_vec();
    session.encrypt(&mut body).unwrap();
    let mut reply = within(client.request(endpoint, &body)).await?;
    session.decrypt(&mut reply).unwrap();
    Ok(reply)
}

/// Encrypted echo that must succeed.
pub(crate) async fn assert_echo(client: &mut HttpClient, session: &mut ClientSession, message: &[u8]) {
    let reply = call(client, session, ECHO, message).await.unwrap();
    assert_eq!(reply, [b"echo:".as_slice(), message].concat());
}

/// A `POST` as esp_prov sends it, with extra header lines (each ending in CRLF).
pub(crate) fn post(endpoint: &str, body: &[u8], extra_headers: &str) -> Vec<u8> {
    let head = format!(
        "POST /{endpoint} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\
         Content-type: application/x-www-form-urlencoded\r\nAccept: text/plain\r\n{extra_headers}\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// A parsed response, as seen by [`Raw`].
#[derive(Debug)]
pub(crate) struct RawResponse {
    /// Everything before the body, CRLFs included.
    pub(crate) head: String,
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl RawResponse {
    /// The value of header `name` (case-insensitive), if present.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A TCP peer that writes and reads raw bytes.
pub(crate) struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        Self { stream: within(TcpStream::connect(addr)).await.unwrap(), buf: Vec::new() }
    }

    /// Writes `bytes`. Errors are ignored: a device that refuses early may close while we are still writing.
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        let _ = within(self.stream.write_all(bytes)).await;
    }

    /// Reads one response with a `Content-Length` body.
    pub(crate) async fn response(&mut self) -> RawResponse {
        let head_len = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = within(self.stream.read_buf(&mut self.buf)).await.unwrap();
            assert!(
                n > 0,
                "connection closed before a complete response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf.drain(..head_len).collect()).unwrap();
        let status = head.get(9..12).unwrap().parse().unwrap();
        let mut response = RawResponse { head, status, body: Vec::new() };
        let len: usize = response.header("Content-Length").expect("response has a Content-Length").parse().unwrap();
        while self.buf.len() < len {
            let n = within(self.stream.read_buf(&mut self.buf)).await.unwrap();
            assert!(n > 0, "connection closed in the middle of a response body");
        }
        response.body = self.buf.drain(..len).collect();
        response
    }

    /// Reads until the device closes the connection; returns every byte that arrived (a reset counts as a
    /// close: closing a socket with unread request bytes makes the kernel send one).
    pub(crate) async fn until_closed(mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        loop {
            match within(self.stream.read_buf(&mut rest)).await {
                Ok(0) => return rest,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return rest,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Sends `bytes` every `interval` until the device closes the connection; returns what it sent meanwhile.
    pub(crate) async fn drip_until_closed(mut self, bytes: &[u8], interval: Duration) -> Vec<u8> {
        let mut ticks = tokio::time::interval(interval);
        let mut received = std::mem::take(&mut self.buf);
        within(async {
            loop {
                tokio::select! {
                    read = self.stream.read_buf(&mut received) => match read {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
                        Err(e) => panic!("read failed: {e}"),
                    },
                    _ = ticks.tick() => {
                        // A write after the device closed may fail; the read above sees the close.
                        let _ = self.stream.write_all(bytes).await;
                    }
                }
            }
        })
        .await;
        received
    }

    /// Asserts that the device closes the connection without sending a single byte.
    pub(crate) async fn assert_closed_silently(self) {
        let received = self.until_closed().await;
        assert!(
            received.is_empty(),
            "device sent {:?} instead of closing silently",
            String::from_utf8_lossy(&received)
        );
    }
}
