//! The app gateway alone, for `make bench`: `orchestrator::gateway::Gateway` with a fixed route
//! (`TableResolver`) to one upstream on loopback, connected with `TcpConnector`, so that its
//! throughput and added latency can be compared with nginx proxying to the same upstream.
//!
//! It runs the same proxy code as `slipway up` (header rewriting, pooling, streaming) but not the
//! runtime: no wake, no sandbox namespace (apps in `slipway up` are reached through their network
//! namespace with `NetnsConnector`; that connect is paid once per pooled connection). It only
//! binds loopback addresses and stops on Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run --release -p orchestrator --example gateway_bench -- 127.0.0.1:18001 127.0.0.1:18000 bench
//! ```
//! serves `http://bench.localhost:18001/` from `127.0.0.1:18000`.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use orchestrator::gateway::{Gateway, GatewayConfig, Route, RouteTable, TableResolver, TcpConnector, Upstream};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [listen, upstream, app] = args.as_slice() else {
        bail!("usage: gateway_bench LISTEN_ADDR UPSTREAM_ADDR APP_NAME (both addresses on loopback)");
    };
    let listen: SocketAddr = listen.parse().with_context(|| format!("listen address `{listen}` is not a socket address"))?;
    let upstream: SocketAddr = upstream.parse().with_context(|| format!("upstream address `{upstream}` is not a socket address"))?;
    if !listen.ip().is_loopback() || !upstream.ip().is_loopback() {
        bail!("the benchmark gateway only runs on loopback: {listen} -> {upstream}");
    }
    // The same worker count as `slipway up` (tokio's default: one per core).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let mut table = RouteTable::new();
        table.insert(app.clone(), Route::Ready(Upstream::Tcp(upstream)));
        let gateway = Gateway::new(GatewayConfig::new("localhost"), TableResolver::new(table), TcpConnector);
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot bind {listen}"))?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail on unix");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            let _ = stop.send(true);
        });
        println!("gateway_bench: http://{app}.localhost:{} -> {upstream}", listen.port());
        gateway.serve(listener, stopped).await;
        Ok(())
    })
}
