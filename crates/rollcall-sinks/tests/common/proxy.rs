//! A TCP relay in front of a real local server, for the broker sinks' connection tests: it
//! can cut every open connection (the server "goes away" for the client) and keep
//! listening, so the client must reconnect. Included with `#[path]` by the tests that use it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// Relays every connection to `127.0.0.1:<port>` to `target`, until dropped.
pub struct Proxy {
    pub port: u16,
    connections: Arc<Mutex<JoinSet<()>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// A relay on a free port.
    pub async fn start(target: SocketAddr) -> Self {
        Self::start_on(0, target).await
    }

    /// A relay on `port` (0: any free one).
    pub async fn start_on(port: u16, target: SocketAddr) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], port)))
            .unwrap();
        let listener = socket.listen(64).unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let relayed = Arc::clone(&connections);
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                relayed.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            port,
            connections,
            accepting,
        }
    }

    /// Closes every relayed connection; new ones are still accepted.
    pub fn cut(&self) {
        self.connections.lock().unwrap().abort_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server on 127.0.0.1 that accepts connections and never says a word.
pub async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    (port, task)
}

/// The message of a transient failure; panics on anything else.
fn transient_message(result: Result<(), rollcall_core::SinkError>) -> String {
    match result {
        Err(rollcall_core::SinkError::Transient { message, .. }) => message,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

/// A sink built for a port nothing listens on (`sink_for(port, timeout_seconds)`) builds
/// without a server, and its send fails transiently with "cannot connect", quickly.
pub async fn assert_a_closed_port_is_transient(
    sink_for: impl Fn(u16, u64) -> Box<dyn rollcall_core::Sink>,
) {
    let sink = sink_for(closed_port(), 2);
    let started = std::time::Instant::now();
    let message = transient_message(sink.send(&super::common::event("evt-1", "{}")).await);
    assert!(message.contains("cannot connect"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A sink built for a server that accepts and never answers fails transiently once its
/// timeout (1 s) has passed, not later.
pub async fn assert_a_silent_server_times_out(
    sink_for: impl Fn(u16, u64) -> Box<dyn rollcall_core::Sink>,
) {
    let (port, _server) = silent_server().await;
    let sink = sink_for(port, 1);
    let started = std::time::Instant::now();
    let message = transient_message(sink.send(&super::common::event("evt-1", "{}")).await);
    assert!(message.contains("cannot connect"), "{message}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
}
