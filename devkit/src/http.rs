//! A small real HTTP server on 127.0.0.1 for checks to call: answers every request with the
//! response it was given (status, body, delay, redirect) and records what was asked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
    pub location: Option<String>,
}

impl Reply {
    pub fn ok(body: &str) -> Reply {
        Reply { status: 200, body: body.to_string(), delay: Duration::ZERO, location: None }
    }
}

pub struct LocalHttp {
    pub port: u16,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalHttp {
    pub async fn start(reply: Reply) -> LocalHttp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (r, q) = (reply.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let (r, q) = (r.clone(), q.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 8192];
                    let Ok(n) = socket.read(&mut buffer).await else { return };
                    let head = String::from_utf8_lossy(&buffer[..n]).to_string();
                    let target = head.lines().next().unwrap_or("").to_string();
                    q.lock().unwrap().push(target);
                    let reply = r.lock().unwrap().clone();
                    tokio::time::sleep(reply.delay).await;
                    let location = reply.location.map(|l| format!("Location: {l}\r\n")).unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{location}Connection: close\r\n\r\n{}",
                        reply.status,
                        reply.body.len(),
                        reply.body
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        LocalHttp { port, reply, requests, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_reply(&self, reply: Reply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// Request lines received so far (`GET /health HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for LocalHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}
