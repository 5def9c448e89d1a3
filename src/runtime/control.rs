//! The control socket: a Unix stream socket where `mooseherd status`, `switchover` and
//! `maintenance` talk to the running agent, one JSON request and one JSON response per line.
//!
//! Who may do what: anyone who can open the socket (mode 0660, root and the socket's group) may
//! read the status; commands that change the rack (switchover, maintenance) are refused unless the
//! caller's uid (checked with SO_PEERCRED) is root or the agent's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::config::{Rack, Role};
use crate::core::agent::{Agent, AgentStatus};
use crate::core::{Instant, NodeId};
use crate::wire::WireStats;

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    /// Hand the master over (to the named node, or the best standby).
    Switchover {
        to: Option<String>,
    },
    /// Put this node in maintenance (not eligible; a leader hands over) or take it out.
    Maintenance {
        on: bool,
    },
}

impl Request {
    /// Whether the request changes the rack (root only).
    pub fn mutates(&self) -> bool {
        !matches!(self, Request::Status)
    }

    /// The command's name as the CLI spells it.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Switchover { .. } => "switchover",
            Request::Maintenance { .. } => "maintenance",
        }
    }
}

/// What the agent answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
}

impl Response {
    pub fn error(e: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(e.into()),
            message: None,
            status: None,
        }
    }
    pub fn message(m: impl Into<String>) -> Self {
        Response {
            ok: true,
            error: None,
            message: Some(m.into()),
            status: None,
        }
    }
}

/// The status of one agent, as `mooseherd status --json` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub rack: String,
    /// This node's name.
    pub node: String,
    /// Node names by id (index).
    pub names: Vec<String>,
    /// The host driver (`dry-run` or `linux`).
    pub host: String,
    pub uptime_s: u64,
    pub agent: AgentStatus,
    /// Frames sealed, delivered and rejected (by reason).
    pub wire: WireStats,
    pub version: String,
    /// The status LEDs (absent from agents before #9).
    #[serde(default)]
    pub leds: Option<super::panel::LedReport>,
}

/// What a request may read and change: the agent loop's state, lent for one request.
pub struct Target<'a> {
    pub now: Instant,
    pub agent: &'a mut Agent,
    pub rack: &'a Rack,
    /// This node's name.
    pub node: &'a str,
    /// Node names by id (index).
    pub names: &'a [String],
    /// The host driver's name.
    pub host: &'a str,
    pub wire: WireStats,
    pub leds: Option<super::panel::LedReport>,
    /// This node's maintenance switch (also flipped by the button).
    pub maintenance: &'a mut bool,
}

impl Target<'_> {
    fn name_of(&self, id: NodeId) -> String {
        node_name(self.names, id)
    }
}

/// The name of node `id` in `names` (node names by id), or its id when there is no such node.
pub fn node_name(names: &[String], id: NodeId) -> String {
    names
        .get(usize::from(id.0))
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

/// Answers one request from a caller with uid `uid`: the agent loop's whole control logic.
pub fn handle(t: Target<'_>, request: &Request, uid: u32) -> Response {
    if request.mutates() && uid != 0 && uid != nix::unistd::geteuid().as_raw() {
        return Response::error(format!(
            "`{}` changes the rack and needs root (your uid is {uid}); run it with sudo",
            request.command()
        ));
    }
    let now = t.now;
    match request {
        Request::Status => Response {
            ok: true,
            error: None,
            message: None,
            status: Some(StatusReport {
                rack: t.rack.cluster.name.clone(),
                node: t.node.to_string(),
                names: t.names.to_vec(),
                host: t.host.to_string(),
                uptime_s: now.as_micros() / 1_000_000,
                agent: t.agent.status(now),
                wire: t.wire,
                version: env!("CARGO_PKG_VERSION").to_string(),
                leds: t.leds,
            }),
        },
        Request::Switchover { to } => {
            let target = match to {
                Some(n) => match t.rack.node_by_name(n) {
                    Some(c) if c.has(Role::Master) => Ok(Some(c.id)),
                    Some(_) => Err(format!("`{n}` is not a master candidate")),
                    None => Err(format!("no node named `{n}` in the rack")),
                },
                None => Ok(None),
            };
            match target {
                Err(e) => Response::error(e),
                Ok(to) if t.agent.switchover(now, to) => {
                    let to = to
                        .map(|id| format!(" to {}", t.name_of(id)))
                        .unwrap_or_default();
                    tracing::info!("switchover asked{to}: stepping down and fencing");
                    Response::message(format!("{} steps down and hands over{to}", t.node))
                }
                Ok(_) => {
                    let leader = t
                        .agent
                        .status(now)
                        .leader
                        .map(|id| t.name_of(id))
                        .unwrap_or_else(|| "unknown".into());
                    Response::error(format!(
                        "{} is not the leader (the leader is {leader}); run switchover on the leader",
                        t.node
                    ))
                }
            }
        }
        Request::Maintenance { on } => {
            *t.maintenance = *on;
            t.agent.set_maintenance(now, *on);
            tracing::info!(
                "maintenance {}",
                if *on { "on: not eligible" } else { "off" }
            );
            Response::message(format!(
                "{}: maintenance {}",
                t.node,
                if *on { "on" } else { "off" }
            ))
        }
    }
}

impl StatusReport {
    /// The name of node `id` in this rack.
    pub fn name_of(&self, id: NodeId) -> String {
        node_name(&self.names, id)
    }
}

/// A request waiting for the agent loop, with the caller's uid and where to answer.
pub struct Pending {
    pub request: Request,
    pub uid: u32,
    pub reply: oneshot::Sender<Response>,
}

/// Binds the control socket at `path`. Refuses to start when another agent answers there.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "another agent is already running on control socket {} (stop it first, or give this one --socket)",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding control socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

/// Accepts connections forever, passing each request to the agent loop.
pub async fn serve(listener: UnixListener, to_agent: mpsc::Sender<Pending>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let to_agent = to_agent.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, to_agent).await {
                tracing::debug!("control connection: {e:#}");
            }
        });
    }
}

async fn serve_connection(
    stream: UnixStream,
    to_agent: mpsc::Sender<Pending>,
) -> anyhow::Result<()> {
    let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
    let (read, mut write) = stream.into_split();
    // Bytes, not a String: a request that is not UTF-8 must get an answer saying so, not a
    // closed connection. One byte more than the limit tells a request that is too long.
    let mut line = Vec::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let response =
        match tokio::time::timeout(Duration::from_secs(5), reader.read_until(b'\n', &mut line))
            .await
        {
            Err(_) => Response::error("bad request: no complete line within 5 s"),
            Ok(Err(e)) => Response::error(format!("bad request: cannot read it: {e}")),
            Ok(Ok(_)) => match parse_request(&line) {
                Err(e) => {
                    tracing::debug!(uid, "control request refused: {e}");
                    Response::error(e)
                }
                Ok(request) => {
                    let (tx, rx) = oneshot::channel();
                    to_agent
                        .send(Pending {
                            request,
                            uid,
                            reply: tx,
                        })
                        .await
                        .context("agent loop gone")?;
                    rx.await.context("agent loop dropped the request")?
                }
            },
        };
    let mut out = serde_json::to_vec(&response)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

/// One request line as read from the socket (at most [`MAX_REQUEST`] + 1 bytes, with or without
/// its newline), checked: UTF-8, not too long, one JSON [`Request`]. The error is the answer.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.len() > MAX_REQUEST {
        return Err(format!(
            "bad request: longer than {MAX_REQUEST} bytes (one JSON object on one line)"
        ));
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "bad request: not UTF-8 (invalid byte at offset {}); send one JSON object such as {{\"cmd\":\"status\"}}",
            e.valid_up_to()
        )
    })?;
    serde_json::from_str::<Request>(text.trim()).map_err(|e| format!("bad request: {e}"))
}

/// Why a request to the agent got no answer. Each variant says what failed and carries the
/// cause as its source (printed after it by `{:#}`), never in its own message.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{}", connect_failed(path, source))]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Sending the request or reading the answer failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
    #[error("the agent did not answer within {} s", after.as_secs_f64())]
    Timeout {
        after: Duration,
        #[source]
        source: tokio::time::error::Elapsed,
    },
    #[error("unreadable answer from the agent: {line:?}")]
    Unreadable {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("starting the tokio runtime")]
    Runtime(#[source] std::io::Error),
}

/// What a failed connect means: no permission on the socket is not an agent that is down.
fn connect_failed(path: &Path, cause: &std::io::Error) -> String {
    if cause.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "no permission to use the agent's control socket {}: run as root (or as a member of the socket's group)",
            path.display()
        )
    } else {
        format!(
            "cannot reach the agent at {} (is `mooseherd agent` running? give --socket or --config)",
            path.display()
        )
    }
}

/// How long [`call`] waits for the answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Sends one request to the agent at `path` and returns its response.
pub async fn call(path: &Path, request: &Request) -> Result<Response, ControlError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| ControlError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
    let (read, mut write) = stream.into_split();
    let mut req = serde_json::to_vec(request)?;
    req.push(b'\n');
    write.write_all(&req).await?;
    let mut line = String::new();
    within(ANSWER_WITHIN, BufReader::new(read).read_line(&mut line)).await??;
    serde_json::from_str(line.trim()).map_err(|source| ControlError::Unreadable {
        line: line.clone(),
        source,
    })
}

/// `fut`, or [`ControlError::Timeout`] after `after`.
async fn within<T>(
    after: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, ControlError> {
    tokio::time::timeout(after, fut)
        .await
        .map_err(|source| ControlError::Timeout { after, source })
}

/// [`call`] for code without a runtime of its own (the CLI, the lab, DRBD's handlers): starts a
/// small single-threaded runtime for the one request. `timeout` bounds the whole exchange, on
/// top of [`call`]'s own 10 s wait for the answer.
pub fn call_blocking(
    path: &Path,
    request: &Request,
    timeout: Option<Duration>,
) -> Result<Response, ControlError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ControlError::Runtime)?;
    rt.block_on(async {
        match timeout {
            None => call(path, request).await,
            Some(t) => within(t, call(path, request)).await?,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `bytes` through `serve_connection` (no agent loop: a request that parses gets the
    /// answer `status`) and returns the one answer line, if any.
    async fn exchange(bytes: &[u8]) -> Option<Response> {
        let (client, server) = UnixStream::pair().expect("socketpair");
        let (tx, mut rx) = mpsc::channel::<Pending>(1);
        let agent = tokio::spawn(async move {
            if let Some(p) = rx.recv().await {
                let _ = p.reply.send(Response::message("status"));
            }
        });
        let served = tokio::spawn(serve_connection(server, tx));
        let (read, mut write) = client.into_split();
        write.write_all(bytes).await.expect("write");
        drop(write);
        let mut line = String::new();
        let _ = BufReader::new(read).read_line(&mut line).await;
        let _ = served.await;
        agent.abort();
        serde_json::from_str(line.trim()).ok()
    }

    #[tokio::test]
    async fn invalid_utf8_gets_a_clear_error_answer() {
        let r = exchange(b"{\"cmd\":\"st\xffatus\"}\n")
            .await
            .expect("an answer, not a closed connection");
        assert!(!r.ok);
        let e = r.error.unwrap_or_default();
        assert!(e.contains("not UTF-8") && e.contains("offset 10"), "{e}");
    }

    #[tokio::test]
    async fn garbage_too_long_and_unterminated_requests_are_answered() {
        let r = exchange(b"hello\n").await.expect("answer");
        assert!(!r.ok && r.error.unwrap_or_default().starts_with("bad request"));
        let long = vec![b' '; MAX_REQUEST + 10];
        let r = exchange(&long).await.expect("answer");
        assert!(r.error.unwrap_or_default().contains("longer than"));
        // No newline, but the caller closed its side: the request is what was sent.
        let r = exchange(b"{\"cmd\":\"status\"}").await.expect("answer");
        assert!(r.ok, "{r:?}");
    }

    proptest::proptest! {
        /// Whatever bytes arrive, the answer is a request or an error message, never a panic.
        #[test]
        fn any_bytes_get_a_request_or_an_error(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Err(e) = parse_request(&bytes) {
                proptest::prop_assert!(e.starts_with("bad request: "));
            }
        }
    }

    #[test]
    fn parse_request_accepts_the_documented_requests() {
        assert_eq!(
            parse_request(b"{\"cmd\":\"status\"}\n"),
            Ok(Request::Status)
        );
        assert_eq!(
            parse_request(b"{\"cmd\":\"maintenance\",\"on\":true}"),
            Ok(Request::Maintenance { on: true })
        );
        assert!(parse_request(&[0xc3, 0x28]).is_err());
    }
}
