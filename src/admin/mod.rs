//! The operations endpoints: ZooKeeper's AdminServer (`admin.serverPort`, commands in
//! JSON, plus `/ready`) and the Prometheus endpoint (`metricsProvider.httpPort`,
//! `/metrics`). Both run on one executor of their own, unpinned at nice 19, so they
//! never take a serving core's time. Every connection is bounded in size and time, and
//! each endpoint in connections: a slow or hostile HTTP client holds at most the slots
//! of one endpoint, and each for a few seconds.

pub mod commands;
pub mod http;
pub mod metrics;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::shared_channel::SharedSender;
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

use crate::server::connection::{refresh_listings, LeaderLink};
use crate::server::messages::ToLeader;
use crate::server::shared::Shared;
use http::{Request, Response};

/// Connections served at once per endpoint; more are closed on accept.
const CONNECTIONS_MAX: usize = 16;
/// How long a client has to send its request's headers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// A connection's whole life: reading its request, answering (a command may wait up to
/// 5 s for fresh listings), writing the answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Request bytes read and dropped after the answer, so closing with unread input does not
/// reset the connection before the client has read the answer.
const DRAIN_BYTES_MAX: usize = 64 * 1024;

/// Which endpoint a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Admin,
    Metrics,
}

struct Context {
    shared: Arc<Shared>,
    /// The way to ask the cores for fresh listings, once core 0 has recovered and
    /// listens for it.
    leader: std::cell::OnceCell<LeaderLink>,
}

/// Starts the endpoints the configuration enables, on a thread of their own. A port
/// that cannot be bound is logged and skipped, as ZooKeeper carries on without its
/// AdminServer; the server itself still starts.
pub fn start(shared: Arc<Shared>, to_leader: SharedSender<ToLeader>) -> Result<(), String> {
    let config = &shared.config;
    let mut endpoints = Vec::new();
    if config.admin.enabled {
        endpoints.push((Endpoint::Admin, SocketAddr::new(config.admin.address, config.admin.port)));
    }
    if config.metrics.enabled {
        endpoints.push((Endpoint::Metrics, SocketAddr::new(config.metrics.address, config.metrics.port)));
    }
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("admin")
        .io_memory(64 * 1024)
        .spawn(move || async move {
            crate::server::placement::run_at_low_priority();
            let context = Rc::new(Context { shared, leader: Default::default() });
            let mut accepting = Vec::new();
            for (endpoint, address) in endpoints {
                match TcpListener::bind(address) {
                    Ok(listener) => {
                        tracing::info!(?endpoint, %address, "operations endpoint listening");
                        accepting.push(glommio::spawn_local(accept(listener, endpoint, context.clone())));
                    }
                    Err(error) => tracing::warn!(?endpoint, %address, %error, "cannot start an operations endpoint"),
                }
            }
            let connected = LeaderLink::Remote(to_leader.connect().await);
            assert!(context.leader.set(connected).is_ok(), "connected once");
            for task in accepting {
                task.await;
            }
        })
        .map(|_| ())
        .map_err(|error| format!("cannot start the operations endpoints: {error}"))
}

async fn accept(listener: TcpListener, endpoint: Endpoint, context: Rc<Context>) {
    let open_connections = Rc::new(Cell::new(0usize));
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(?endpoint, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if open_connections.get() >= CONNECTIONS_MAX {
            tracing::debug!(?endpoint, "too many operations connections; closing a new one");
            continue;
        }
        open_connections.set(open_connections.get() + 1);
        let (serving, open) = (context.clone(), open_connections.clone());
        glommio::spawn_local(async move {
            let served = serve(stream, endpoint, &serving);
            let expired = async {
                glommio::timer::sleep(CONNECTION_TIMEOUT).await;
                tracing::debug!(?endpoint, "an operations connection timed out");
            };
            futures_lite::future::or(served, expired).await;
            open.set(open.get() - 1);
        })
        .detach();
    }
}

/// Reads until the request's headers are complete (or are refused).
async fn read_request(stream: &mut TcpStream) -> Option<Result<Request, Response>> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match http::parse_request(&bytes) {
            Ok(Some(request)) => return Some(Ok(request)),
            Ok(None) => {}
            Err(http::ParseError::TooLarge) => return Some(Err(Response::text(431, "request too large\n"))),
            Err(http::ParseError::Malformed(why)) => {
                return Some(Err(Response::text(400, format!("bad request: {why}\n"))))
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
        }
    }
}

async fn serve(mut stream: TcpStream, endpoint: Endpoint, context: &Context) {
    let expired = async {
        glommio::timer::sleep(REQUEST_TIMEOUT).await;
        None
    };
    let Some(read) = futures_lite::future::or(read_request(&mut stream), expired).await else { return };
    let (response, head_only) = match read {
        Ok(request) => (route(&request, endpoint, context).await, request.method == "HEAD"),
        Err(refusal) => (refusal, false),
    };
    let _ = stream.write_all(&http::encode_response(&response, head_only)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
    let mut drained = 0;
    let mut chunk = [0u8; 1024];
    while drained < DRAIN_BYTES_MAX {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => drained += read,
        }
    }
}

async fn route(request: &Request, endpoint: Endpoint, context: &Context) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "only GET is served\n");
    }
    let shared = &context.shared;
    match endpoint {
        Endpoint::Metrics if request.path == "/metrics" => {
            if let Some(leader) = context.leader.get() {
                refresh_listings(shared, leader, false).await;
            }
            Response::new(200, metrics::CONTENT_TYPE, metrics::exposition(shared))
        }
        Endpoint::Metrics => Response::text(404, "not found: the metrics are at /metrics\n"),
        Endpoint::Admin if request.path == "/ready" => match shared.readiness() {
            Ok(()) => Response::text(200, format!("ready: {}\n", shared.server_mode())),
            Err(reason) => Response::text(503, format!("not ready: {reason}\n")),
        },
        Endpoint::Admin => admin_command(request, context).await,
    }
}

/// `<commandURL>` lists the commands as links (as ZooKeeper's `CommandListServlet`);
/// `<commandURL>/<name>` answers one.
async fn admin_command(request: &Request, context: &Context) -> Response {
    let shared = &context.shared;
    let base = shared.config.admin_command_url.as_str();
    let Some(rest) = request.path.strip_prefix(base) else {
        return Response::text(404, format!("not found: the commands are at {base}\n"));
    };
    let name = rest.trim_start_matches('/');
    if name.is_empty() {
        let links: String = commands::COMMANDS
            .iter()
            .map(|command| format!("<a href=\"{base}/{0}\">{0}</a>\n<br/>\n", command.names[0]))
            .collect();
        return Response::new(200, "text/html; charset=utf-8", links);
    }
    if let Some(command) = commands::lookup(name) {
        commands::prepare(command, shared);
        // Without the link to core 0 the server is still recovering: nothing to refresh.
        if let (Some(in_full), Some(leader)) = (command.listing, context.leader.get()) {
            refresh_listings(shared, leader, in_full).await;
        }
    }
    let query = |key: &str| request.query_value(key).map(str::to_owned);
    let answer = commands::answer(name, &query, shared);
    let body = serde_json::to_string_pretty(&answer).expect("JSON values serialize");
    Response::new(200, "application/json", body + "\n")
}
