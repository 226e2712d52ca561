//! A minimal local Lambda Runtime API (the 2018-06-01 interface a `bootstrap` polls): it hands out
//! queued events on `GET /runtime/invocation/next`, collects responses and errors, and notes when
//! the function first asked for work, which ends its init phase.
//!
//! Plain HTTP/1.1 with keep-alive over tokio, enough for `lambda_runtime`'s hyper client and for a
//! Python `urllib` loop.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

/// What the function answered for one invocation.
#[derive(Debug, Clone)]
pub struct Answer {
    pub request_id: String,
    /// `true` for `/response`, `false` for `/error` (and for an init error).
    pub ok: bool,
    pub body: String,
    pub at: Instant,
}

struct Pending {
    request_id: String,
    body: Vec<u8>,
    timeout: Duration,
}

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<Pending>>,
    first_next: Mutex<Option<Instant>>,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    state: Arc<State>,
    queued: Arc<Notify>,
    asked: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    /// Listens on a free loopback port; answers arrive on the returned channel.
    pub async fn start() -> (RuntimeApi, mpsc::UnboundedReceiver<Answer>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State::default());
        let queued = Arc::new(Notify::new());
        let asked = Arc::new(Notify::new());
        let (tx, rx) = mpsc::unbounded_channel();
        let (s, q, a) = (state.clone(), queued.clone(), asked.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(serve(socket, s.clone(), q.clone(), a.clone(), tx.clone()));
            }
        });
        (RuntimeApi { addr, state, queued, asked, task }, rx)
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Queues one invocation; the function gets `timeout` to answer it.
    pub fn invoke(&self, request_id: &str, body: Vec<u8>, timeout: Duration) {
        self.state.queue.lock().unwrap().push_back(Pending { request_id: request_id.to_string(), body, timeout });
        self.queued.notify_one();
    }

    /// When the function first asked for an invocation, waiting up to `limit` for it.
    pub async fn first_next(&self, limit: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let asked = self.asked.notified();
            if let Some(at) = *self.state.first_next.lock().unwrap() {
                return Some(at);
            }
            if tokio::time::timeout_at(deadline, asked).await.is_err() {
                return None;
            }
        }
    }
}

async fn serve(
    socket: TcpStream,
    state: Arc<State>,
    queued: Arc<Notify>,
    asked: Arc<Notify>,
    answers: mpsc::UnboundedSender<Answer>,
) {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let arrived = Instant::now();
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = path.strip_prefix("/2018-06-01").unwrap_or(path);

        let response = if method == "GET" && path == "/runtime/invocation/next" {
            state.first_next.lock().unwrap().get_or_insert(arrived);
            asked.notify_waiters();
            let next = loop {
                let wait = queued.notified();
                if let Some(next) = state.queue.lock().unwrap().pop_front() {
                    break next;
                }
                wait.await;
            };
            let deadline_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + next.timeout;
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Lambda-Runtime-Aws-Request-Id: {}\r\nLambda-Runtime-Deadline-Ms: {}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\r\n",
                next.body.len(),
                next.request_id,
                deadline_ms.as_millis()
            );
            let mut out = head.into_bytes();
            out.extend_from_slice(&next.body);
            out
        } else {
            let answer = |request_id: &str, ok: bool| Answer {
                request_id: request_id.to_string(),
                ok,
                body: String::from_utf8_lossy(&body).into_owned(),
                at: arrived,
            };
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            match (method, segments.as_slice()) {
                ("POST", ["runtime", "invocation", id, "response"]) => {
                    let _ = answers.send(answer(id, true));
                }
                ("POST", ["runtime", "invocation", id, "error"]) => {
                    let _ = answers.send(answer(id, false));
                }
                ("POST", ["runtime", "init", "error"]) => {
                    let _ = answers.send(answer("init", false));
                }
                _ => {}
            }
            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n"
                .to_vec()
        };
        if write.write_all(&response).await.is_err() {
            return;
        }
    }
}
