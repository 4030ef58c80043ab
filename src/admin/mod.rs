//! The operations endpoints: ZooKeeper's AdminServer (`admin.serverPort`, commands in
//! JSON, plus `/ready`) and the Prometheus endpoint (`metricsProvider.httpPort`,
//! `/metrics`). Both run on one executor of their own, unpinned at nice 19, so they
//! never take a serving core's time; every connection is bounded in size, time and
//! number, so a slow or hostile HTTP client only ever holds one of these slots.

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
/// A connection's whole life: reading its request, answering, writing the answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

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
    open_connections: Cell<usize>,
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
            // The main thread waits for these signals; the thread started before it
            // blocked them.
            crate::server::block_shutdown_signals();
            crate::server::placement::run_at_low_priority();
            let context = Rc::new(Context { shared, leader: Default::default(), open_connections: Cell::new(0) });
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
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(?endpoint, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if context.open_connections.get() >= CONNECTIONS_MAX {
            tracing::debug!(?endpoint, "too many operations connections; closing a new one");
            continue;
        }
        context.open_connections.set(context.open_connections.get() + 1);
        let serving = context.clone();
        glommio::spawn_local(async move {
            let served = serve(stream, endpoint, &serving);
            let expired = async {
                glommio::timer::sleep(CONNECTION_TIMEOUT).await;
                tracing::debug!(?endpoint, "an operations connection timed out");
            };
            futures_lite::future::or(served, expired).await;
            serving.open_connections.set(serving.open_connections.get() - 1);
        })
        .detach();
    }
}

async fn serve(mut stream: TcpStream, endpoint: Endpoint, context: &Context) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    let response = loop {
        match http::parse_request(&bytes) {
            Ok(Some(request)) => break route(&request, endpoint, context).await,
            Ok(None) => {}
            Err(http::ParseError::TooLarge) => break Response::text(431, "request too large\n"),
            Err(http::ParseError::Malformed(why)) => break Response::text(400, format!("bad request: {why}\n")),
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => bytes.extend_from_slice(&chunk[..read]),
        }
    };
    let _ = stream.write_all(&http::encode_response(&response)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown(std::net::Shutdown::Both).await;
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
            .map(|names| format!("<a href=\"{base}/{0}\">{0}</a>\n<br/>\n", names[0]))
            .collect();
        return Response::new(200, "text/html; charset=utf-8", links);
    }
    if let Some(primary) = commands::primary_name(name) {
        commands::prepare(primary, shared);
        match (commands::listing_needed(primary), context.leader.get()) {
            (Some(in_full), Some(leader)) => refresh_listings(shared, leader, in_full).await,
            (Some(_), None) => {
                let answer = serde_json::json!({ "command": primary, "error": "This ZooKeeper instance is not currently serving requests" });
                return Response::new(200, "application/json", answer.to_string() + "\n");
            }
            (None, _) => {}
        }
    }
    let query = |key: &str| request.query_value(key).map(str::to_owned);
    let answer = commands::answer(name, &query, shared);
    let body = serde_json::to_string_pretty(&answer).expect("JSON values serialize");
    Response::new(200, "application/json", body + "\n")
}
