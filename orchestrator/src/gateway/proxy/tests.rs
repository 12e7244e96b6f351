//! End-to-end tests of the gateway: real hyper app servers on 127.0.0.1:0, the gateway in front of
//! them, and hyper or raw-TCP clients. Loopback only; every test bounds its own running time.
//!
//! They do not use a browser or a real WebSocket library: an `Upgrade: echo` protocol exercises the
//! same splice path with less code, and the pure header and page rules have their own table tests.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::error::Error as StdError;
use std::future::Future;
use std::sync::atomic::AtomicBool;

use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::super::netns::test_support::TestNetns;
use super::super::netns::NetnsConnector;
use super::super::route_table::Route;
use super::super::upstream::{TableResolver, TcpConnector};

type BoxError = Box<dyn StdError + Send + Sync>;
type TestBody = BoxBody<Bytes, BoxError>;

/// Every test is bounded so a streaming bug fails instead of hanging the suite.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, future).await.expect("the test finished in time")
}

fn full(text: impl Into<Bytes>) -> TestBody {
    Full::new(text.into()).map_err(|never| match never {}).boxed()
}

/// A body fed from a channel, so tests control exactly when each frame is sent.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

fn channel_body() -> (mpsc::Sender<Bytes>, TestBody) {
    let (sender, receiver) = mpsc::channel(4);
    (sender, ChannelBody(receiver).boxed())
}

/// A running app server that counts the TCP connections it accepted.
struct App {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn spawn_app<F, Fut>(handler: F) -> App
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind an app port");
    spawn_app_on(listener, handler)
}

fn spawn_app_on<F, Fut>(listener: TcpListener, handler: F) -> App
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Response<TestBody>> + Send + 'static,
{
    let addr = listener.local_addr().expect("app address");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let _ = server_http1::Builder::new().serve_connection(TokioIo::new(stream), service).with_upgrades().await;
            });
        }
    });
    App { addr, connections }
}

/// An app that answers `NAME PATH` so tests can see where a request went.
async fn named_app(name: &'static str) -> App {
    spawn_app(move |request: Request<Incoming>| async move {
        Response::new(full(format!("{name} {}", request.uri().path_and_query().map_or("", |pq| pq.as_str()))))
    })
    .await
}

/// An app that answers with the request headers it received, one `name: value` per line.
async fn header_echo_app() -> App {
    spawn_app(|request: Request<Incoming>| async move {
        let lines: String =
            request.headers().iter().map(|(name, value)| format!("{}: {}\n", name, String::from_utf8_lossy(value.as_bytes()))).collect();
        Response::new(full(lines))
    })
    .await
}

fn parse_header_lines(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|line| line.split_once(": ")).map(|(name, value)| (name.to_owned(), value.to_owned())).collect()
}

fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
}

/// The resolver the tests use: a route table, plus a record of every upstream error reported.
#[derive(Default)]
struct Recorder {
    table: TableResolver,
    errors: Mutex<Vec<(String, String)>>,
}

impl Resolver for Recorder {
    fn resolve(&self, app: &str, hints: &RequestHints<'_>) -> impl Future<Output = Resolution> + Send {
        self.table.resolve(app, hints)
    }

    fn on_upstream_error(&self, app: &str, _upstream: &Upstream, error: &UpstreamError) {
        self.errors.lock().expect("not poisoned").push((app.to_owned(), error.to_string()));
    }
}

impl Recorder {
    fn errors(&self) -> Vec<(String, String)> {
        self.errors.lock().expect("not poisoned").clone()
    }
}

struct Running<C: Connector> {
    addr: SocketAddr,
    gateway: Arc<Gateway<Arc<Recorder>, C>>,
    recorder: Arc<Recorder>,
    shutdown: watch::Sender<bool>,
    served: tokio::task::JoinHandle<()>,
}

impl<C: Connector> Running<C> {
    async fn stop(self) {
        self.shutdown.send(true).expect("the gateway is still listening for shutdown");
        bounded(self.served).await.expect("serve ends cleanly");
    }
}

fn tcp(addr: SocketAddr) -> Route {
    Route::Ready(Upstream::Tcp(addr))
}

async fn start_with<C: Connector>(config: GatewayConfig, routes: Vec<(&str, Route)>, connector: C) -> Running<C> {
    let recorder = Arc::new(Recorder::default());
    for (name, route) in routes {
        recorder.table.insert(name, route);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the gateway port");
    let addr = listener.local_addr().expect("gateway address");
    let gateway = Gateway::new(config, Arc::clone(&recorder), connector);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let served = tokio::spawn(Arc::clone(&gateway).serve(listener, shutdown_rx));
    Running { addr, gateway, recorder, shutdown, served }
}

async fn start(routes: Vec<(&str, Route)>) -> Running<TcpConnector> {
    start_with(GatewayConfig::new("localhost"), routes, TcpConnector).await
}

/// Sends one request on a fresh client connection.
async fn send(addr: SocketAddr, request: Request<TestBody>) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.expect("connect to the gateway");
    let (mut sender, connection) = client_http1::handshake(TokioIo::new(stream)).await.expect("client handshake");
    tokio::spawn(connection);
    sender.send_request(request).await.expect("the gateway answers")
}

fn get(host: &str, path: &str) -> Request<TestBody> {
    Request::get(path).header(header::HOST, host).body(full("")).expect("valid test request")
}

async fn text(response: Response<Incoming>) -> String {
    let bytes = response.into_body().collect().await.expect("read the whole body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("UTF-8 body")
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn requests_are_routed_by_host_to_the_right_app() {
    let (quiz, blog) = (named_app("quiz").await, named_app("blog").await);
    let gateway = start(vec![("quiz", tcp(quiz.addr)), ("blog", tcp(blog.addr))]).await;
    let check = |host: &'static str, path: &'static str, expected: &'static str| {
        let addr = gateway.addr;
        async move {
            let response = send(addr, get(host, path)).await;
            assert_eq!(response.status(), StatusCode::OK, "host {host}");
            assert_eq!(text(response).await, expected, "host {host}");
        }
    };
    bounded(async {
        check("quiz.localhost:8000", "/hello?x=1", "quiz /hello?x=1").await;
        check("BLOG.Localhost.", "/", "blog /").await;
        check("quiz.localhost", "/a/b", "quiz /a/b").await;
    })
    .await;
    // An absolute-form target names the host itself, and the app still gets origin-form.
    let absolute = Request::get("http://blog.localhost:8000/abs?q").header(header::HOST, "quiz.localhost").body(full("")).expect("valid");
    assert_eq!(text(bounded(send(gateway.addr, absolute)).await).await, "blog /abs?q");
    gateway.stop().await;
}

#[tokio::test]
async fn unknown_hosts_and_apps_get_friendly_404_pages() {
    let gateway = start(vec![]).await;
    let check = |host: Option<&'static str>, status: StatusCode, needle: &'static str| {
        let addr = gateway.addr;
        async move {
            let mut request = Request::get("/").body(full("")).expect("valid");
            if let Some(host) = host {
                request.headers_mut().insert(header::HOST, HeaderValue::from_static(host));
            }
            let response = bounded(send(addr, request)).await;
            assert_eq!(response.status(), status, "host {host:?}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
            let body = text(response).await;
            assert!(body.contains(needle), "host {host:?}: {body}");
        }
    };
    check(Some("example.com"), StatusCode::NOT_FOUND, "no app called <code>example.com</code>").await;
    check(Some("a.b.localhost"), StatusCode::NOT_FOUND, "no app called <code>a.b.localhost</code>").await;
    check(Some("ghost.localhost:8000"), StatusCode::NOT_FOUND, "no app called <code>ghost</code>").await;
    check(Some("localhost:8000"), StatusCode::NOT_FOUND, "the apps domain").await;
    check(Some("127.0.0.1:8000"), StatusCode::NOT_FOUND, "NAME.localhost").await;
    check(None, StatusCode::BAD_REQUEST, "no Host header").await;
    gateway.stop().await;
}

#[tokio::test]
async fn apps_that_cannot_answer_get_crashed_starting_and_stopped_pages() {
    let unavailable = |reason, retry_after_secs| Route::Unavailable { reason, retry_after_secs };
    let gateway = start(vec![
        ("broken", unavailable(UnavailableReason::Crashed, 5)),
        ("waking", unavailable(UnavailableReason::Starting, 3)),
        ("parked", unavailable(UnavailableReason::Stopped, 60)),
    ])
    .await;
    let check = |host: &'static str, status: StatusCode, retry_after: &'static str, needles: &'static [&'static str]| {
        let addr = gateway.addr;
        async move {
            let response = bounded(send(addr, get(host, "/"))).await;
            assert_eq!(response.status(), status, "host {host}");
            assert_eq!(response.headers()[header::RETRY_AFTER], retry_after, "host {host}");
            let body = text(response).await;
            for needle in needles {
                assert!(body.contains(needle), "host {host}: missing {needle:?} in {body}");
            }
        }
    };
    check("broken.localhost", StatusCode::BAD_GATEWAY, "5", &["<code>broken</code> crashed and is being restarted"]).await;
    check("waking.localhost", StatusCode::SERVICE_UNAVAILABLE, "3", &["is starting", "http-equiv=\"refresh\" content=\"3\""]).await;
    check("parked.localhost", StatusCode::SERVICE_UNAVAILABLE, "60", &["<code>parked</code> is stopped"]).await;
    assert!(gateway.recorder.errors().is_empty(), "known-unavailable apps are not upstream errors");
    gateway.stop().await;
}

#[tokio::test]
async fn forwarding_headers_are_set_and_client_claims_replaced() {
    let app = header_echo_app().await;
    let gateway = start(vec![("echo", tcp(app.addr))]).await;
    let request = Request::get("/")
        .header(header::HOST, "echo.localhost:8000")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "bank.example")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .body(full(""))
        .expect("valid");
    let seen = parse_header_lines(&text(bounded(send(gateway.addr, request)).await).await);
    assert_eq!(header_values(&seen, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(header_values(&seen, "x-forwarded-proto"), ["http"]);
    assert_eq!(header_values(&seen, "x-forwarded-host"), ["echo.localhost:8000"]);
    assert_eq!(header_values(&seen, "x-real-ip"), ["127.0.0.1"]);
    assert_eq!(header_values(&seen, "host"), ["echo.localhost:8000"]);
    assert!(header_values(&seen, "forwarded").is_empty(), "{seen:?}");
    gateway.stop().await;
}

#[tokio::test]
async fn a_trusted_front_proxy_keeps_its_forwarding_headers() {
    let app = header_echo_app().await;
    let mut config = GatewayConfig::new("localhost");
    config.trusted_proxies = vec!["127.0.0.1".parse().expect("literal")];
    let gateway = start_with(config, vec![("echo", tcp(app.addr))], TcpConnector).await;
    let request = Request::get("/")
        .header(header::HOST, "echo.localhost")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-proto", "https")
        .body(full(""))
        .expect("valid");
    let seen = parse_header_lines(&text(bounded(send(gateway.addr, request)).await).await);
    assert_eq!(header_values(&seen, "x-forwarded-for"), ["1.2.3.4, 127.0.0.1"]);
    assert_eq!(header_values(&seen, "x-forwarded-proto"), ["https"]);
    assert_eq!(header_values(&seen, "x-forwarded-host"), ["echo.localhost"]);
    gateway.stop().await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let app = spawn_app(|request: Request<Incoming>| async move {
        let lines: String =
            request.headers().iter().map(|(name, value)| format!("{}: {}\n", name, value.to_str().unwrap_or("?"))).collect();
        Response::builder()
            .header(header::CONNECTION, "x-resp-custom")
            .header("x-resp-custom", "hop")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("x-end-to-end", "kept")
            .body(full(lines))
            .expect("valid")
    })
    .await;
    let gateway = start(vec![("hops", tcp(app.addr))]).await;
    let request = Request::get("/")
        .header(header::HOST, "hops.localhost")
        .header(header::CONNECTION, "keep-alive, X-Custom")
        .header("x-custom", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header(header::TE, "trailers")
        .header(header::UPGRADE, "h2c")
        .header("x-end-to-end", "kept")
        .body(full(""))
        .expect("valid");
    let response = bounded(send(gateway.addr, request)).await;
    for name in ["x-resp-custom", "keep-alive", "proxy-connection", "connection"] {
        assert!(!response.headers().contains_key(name), "response still has {name}: {:?}", response.headers());
    }
    assert_eq!(response.headers()["x-end-to-end"], "kept");
    let seen = parse_header_lines(&text(response).await);
    for name in ["connection", "x-custom", "keep-alive", "proxy-connection", "te", "upgrade"] {
        assert!(header_values(&seen, name).is_empty(), "the app saw {name}: {seen:?}");
    }
    assert_eq!(header_values(&seen, "x-end-to-end"), ["kept"]);
    gateway.stop().await;
}

#[tokio::test]
async fn portal_cookies_never_reach_the_app_and_the_app_cannot_set_them() {
    let app = spawn_app(|request: Request<Incoming>| async move {
        let cookies: Vec<String> = request.headers().get_all(header::COOKIE).iter().map(|v| v.to_str().unwrap_or("?").to_owned()).collect();
        Response::builder()
            .header(header::SET_COOKIE, "slipway_session=planted; Path=/; HttpOnly")
            .header(header::SET_COOKIE, "theme=dark; Path=/")
            .body(full(cookies.join("|")))
            .expect("valid")
    })
    .await;
    let gateway = start(vec![("crumbs", tcp(app.addr))]).await;
    let request = Request::get("/")
        .header(header::HOST, "crumbs.localhost")
        .header(header::COOKIE, "a=1; slipway_session=secret; b=2; slipway_csrf=c")
        .body(full(""))
        .expect("valid");
    let response = bounded(send(gateway.addr, request)).await;
    let set: Vec<&str> = response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().expect("ASCII")).collect();
    assert_eq!(set, ["theme=dark; Path=/"]);
    assert_eq!(text(response).await, "a=1; b=2");
    gateway.stop().await;
}

/// Deterministic test data: chunk `index` of a large body.
fn chunk(index: usize, size: usize) -> Bytes {
    (0..size).map(|j| (index.wrapping_mul(31) ^ j.wrapping_mul(7) ^ (j >> 9)) as u8).collect::<Vec<u8>>().into()
}

/// A cheap order-sensitive checksum, updated chunk by chunk.
fn checksum(mut state: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        state = state.wrapping_mul(0x100_0000_01b3).wrapping_add(u64::from(byte));
    }
    state
}

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 800; // 800 × 64 KiB = 50 MiB

#[tokio::test]
async fn a_50_mb_upload_streams_through_intact() {
    // The app signals when its first bytes arrive; the client holds back the rest until then, so a
    // gateway that buffered whole bodies would deadlock (and time out) instead of passing.
    let first_bytes = Arc::new(Notify::new());
    let signal = Arc::clone(&first_bytes);
    let app = spawn_app(move |request: Request<Incoming>| {
        let signal = Arc::clone(&signal);
        async move {
            let mut body = request.into_body();
            let (mut length, mut sum, mut signalled) = (0usize, 0u64, false);
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.expect("the upload arrives without errors").into_data() {
                    length += data.len();
                    sum = checksum(sum, &data);
                    if !signalled {
                        signal.notify_one();
                        signalled = true;
                    }
                }
            }
            Response::new(full(format!("{length} {sum}")))
        }
    })
    .await;
    let gateway = start(vec![("upload", tcp(app.addr))]).await;
    let (chunks, body) = channel_body();
    let producer = tokio::spawn(async move {
        let mut sum = 0u64;
        for index in 0..CHUNKS {
            let data = chunk(index, CHUNK);
            sum = checksum(sum, &data);
            chunks.send(data).await.expect("the gateway reads the upload");
            if index == 0 {
                first_bytes.notified().await;
            }
        }
        sum
    });
    let request = Request::post("/upload")
        .header(header::HOST, "upload.localhost")
        .header(header::CONTENT_LENGTH, CHUNK * CHUNKS)
        .body(body)
        .expect("valid");
    let response = bounded(send(gateway.addr, request)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer = bounded(text(response)).await;
    let sent_sum = bounded(producer).await.expect("the producer finishes");
    assert_eq!(answer, format!("{} {sent_sum}", CHUNK * CHUNKS));
    gateway.stop().await;
}

#[tokio::test]
async fn a_50_mb_download_streams_through_intact() {
    // The app sends one chunk and waits until the client has it before sending the rest, so a
    // gateway that buffered whole responses would time out instead of passing.
    let client_has_bytes = Arc::new(Notify::new());
    let sent_sum = Arc::new(Mutex::new(None));
    let (signal, record) = (Arc::clone(&client_has_bytes), Arc::clone(&sent_sum));
    let app = spawn_app(move |_request: Request<Incoming>| {
        let (signal, record) = (Arc::clone(&signal), Arc::clone(&record));
        async move {
            let (chunks, body) = channel_body();
            tokio::spawn(async move {
                let mut sum = 0u64;
                for index in 0..CHUNKS {
                    let data = chunk(index, CHUNK);
                    sum = checksum(sum, &data);
                    if chunks.send(data).await.is_err() {
                        return;
                    }
                    if index == 0 {
                        signal.notified().await;
                    }
                }
                *record.lock().expect("not poisoned") = Some(sum);
            });
            Response::builder().header(header::CONTENT_LENGTH, CHUNK * CHUNKS).body(body).expect("valid")
        }
    })
    .await;
    let gateway = start(vec![("download", tcp(app.addr))]).await;
    let response = bounded(send(gateway.addr, get("download.localhost", "/big"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let (mut length, mut sum, mut signalled) = (0usize, 0u64, false);
    bounded(async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("the download arrives without errors").into_data() {
                length += data.len();
                sum = checksum(sum, &data);
                if !signalled {
                    client_has_bytes.notify_one();
                    signalled = true;
                }
            }
        }
    })
    .await;
    assert_eq!(length, CHUNK * CHUNKS);
    assert_eq!(Some(sum), *sent_sum.lock().expect("not poisoned"));
    gateway.stop().await;
}

#[tokio::test]
async fn server_sent_events_arrive_one_by_one_and_count_as_in_flight() {
    let finished = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&finished);
    let app = spawn_app(move |_request: Request<Incoming>| {
        let flag = Arc::clone(&flag);
        async move {
            let (events, body) = channel_body();
            tokio::spawn(async move {
                for index in 0..5 {
                    if events.send(Bytes::from(format!("data: event {index}\n\n"))).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                flag.store(true, Ordering::SeqCst);
            });
            Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(body).expect("valid")
        }
    })
    .await;
    let gateway = start(vec![("sse", tcp(app.addr))]).await;
    let response = bounded(send(gateway.addr, get("sse.localhost", "/events"))).await;
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body();
    let first = bounded(body.frame()).await.expect("a first frame").expect("no error").into_data().expect("data");
    assert_eq!(&first[..], b"data: event 0\n\n");
    assert!(!finished.load(Ordering::SeqCst), "the first event arrived only after the app finished");
    assert_eq!(gateway.gateway.in_flight("sse"), 1, "a streaming response is in flight");
    let mut rest = Vec::new();
    bounded(async {
        while let Some(frame) = body.frame().await {
            rest.extend_from_slice(&frame.expect("no error").into_data().unwrap_or_default());
        }
    })
    .await;
    assert!(String::from_utf8_lossy(&rest).ends_with("data: event 4\n\n"));
    let gw = Arc::clone(&gateway.gateway);
    eventually("the finished stream is no longer in flight", || gw.in_flight("sse") == 0).await;
    assert_eq!(gateway.gateway.in_flight_by_app(), BTreeMap::from([("sse".to_owned(), 0)]));
    gateway.stop().await;
}

/// Reads an HTTP response head byte by byte, so that nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("the response head arrives"));
    }
    String::from_utf8(head).expect("ASCII head")
}

#[tokio::test]
async fn upgraded_connections_are_spliced_both_ways() {
    // `Upgrade: echo`: after 101 the app greets, then echoes every byte. It exercises exactly the
    // path a WebSocket takes through the gateway, without a WebSocket implementation.
    let app = spawn_app(|mut request: Request<Incoming>| async move {
        if request.headers().get(header::UPGRADE).is_none_or(|protocol| protocol != "echo") {
            return Response::builder().status(StatusCode::BAD_REQUEST).body(full("upgrade to echo")).expect("valid");
        }
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let mut io = TokioIo::new(upgrade.await.expect("the app side upgrades"));
            io.write_all(b"hello from the app\n").await.expect("greet");
            let mut buffer = [0u8; 1024];
            loop {
                match io.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => io.write_all(&buffer[..n]).await.expect("echo"),
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "echo")
            .header(header::CONNECTION, "upgrade")
            .body(full(""))
            .expect("valid")
    })
    .await;
    let gateway = start(vec![("chat", tcp(app.addr))]).await;
    bounded(async {
        let mut stream = TcpStream::connect(gateway.addr).await.expect("connect");
        stream
            .write_all(b"GET /socket HTTP/1.1\r\nHost: chat.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\nCookie: slipway_session=s\r\n\r\n")
            .await
            .expect("send the handshake");
        let head = read_head(&mut stream).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: echo") && head.contains("connection: upgrade"), "{head}");
        let mut greeting = [0u8; 19];
        stream.read_exact(&mut greeting).await.expect("the app speaks first");
        assert_eq!(&greeting, b"hello from the app\n");
        assert_eq!(gateway.gateway.in_flight("chat"), 1, "an open upgraded connection is in flight");
        for message in [&b"ping"[..], b"a longer message with \x00 binary \xff bytes"] {
            stream.write_all(message).await.expect("send through the splice");
            let mut echoed = vec![0u8; message.len()];
            stream.read_exact(&mut echoed).await.expect("the echo comes back");
            assert_eq!(echoed, message);
        }
        drop(stream);
        let gw = Arc::clone(&gateway.gateway);
        eventually("the closed splice is no longer in flight", || gw.in_flight("chat") == 0).await;
    })
    .await;
    // A plain request to the same app still works: upgrades do not poison anything.
    assert_eq!(bounded(send(gateway.addr, get("chat.localhost", "/"))).await.status(), StatusCode::BAD_REQUEST);
    gateway.stop().await;
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let app = named_app("pool").await;
    let gateway = start(vec![("pool", tcp(app.addr))]).await;
    for index in 0..10 {
        let response = bounded(send(gateway.addr, get("pool.localhost", &format!("/{index}")))).await;
        assert_eq!(text(response).await, format!("pool /{index}"));
    }
    assert_eq!(app.connections.load(Ordering::SeqCst), 1, "ten sequential requests should share one upstream connection");
    assert_eq!(gateway.gateway.idle_upstream_connections(), 1);
    let gw = Arc::clone(&gateway.gateway);
    gateway.stop().await;
    assert_eq!(gw.idle_upstream_connections(), 0, "serve closes idle upstream connections on the way out");
}

#[tokio::test]
async fn a_connection_the_app_closed_while_idle_is_replaced_transparently() {
    // This app answers one request per connection and then closes it without saying so
    // (no `Connection: close`), as apps with short keep-alive timeouts do.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let _ = read_head(&mut stream).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
            });
        }
    });
    let gateway = start(vec![("flaky", tcp(addr))]).await;
    for _ in 0..3 {
        let response = bounded(send(gateway.addr, get("flaky.localhost", "/"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "ok");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    assert!(gateway.recorder.errors().is_empty(), "{:?}", gateway.recorder.errors());
    gateway.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_a_502_page_and_is_reported() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("address");
    drop(closed);
    let gateway = start(vec![("dead", tcp(addr))]).await;
    let response = bounded(send(gateway.addr, get("dead.localhost", "/"))).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(text(response).await.contains("<code>dead</code> did not answer"));
    let errors = gateway.recorder.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "dead");
    assert!(errors[0].1.contains("could not connect"), "{errors:?}");
    assert_eq!(gateway.gateway.in_flight("dead"), 0);
    gateway.stop().await;
}

#[tokio::test]
async fn an_app_that_drops_the_connection_is_a_502_page_and_is_reported() {
    // The app reads the request and hangs up without answering, as a process killed mid-request does.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let _ = read_head(&mut stream).await;
            drop(stream);
        }
    });
    let gateway = start(vec![("quitter", tcp(addr))]).await;
    let response = bounded(send(gateway.addr, get("quitter.localhost", "/"))).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(text(response).await.contains("<code>quitter</code> did not answer"));
    let errors = gateway.recorder.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("closed or broke the connection"), "{errors:?}");
    gateway.stop().await;
}

/// A connector whose connects never finish, like an app whose sandbox drops packets.
struct HangingConnector;

impl Connector for HangingConnector {
    async fn connect(&self, _upstream: &Upstream) -> std::io::Result<TcpStream> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_connect_that_hangs_is_a_504_page_and_is_reported() {
    let mut config = GatewayConfig::new("localhost");
    config.upstream_connect_timeout = Duration::from_millis(200);
    let gateway = start_with(config, vec![("stuck", tcp("127.0.0.1:9".parse().expect("literal")))], HangingConnector).await;
    let response = bounded(send(gateway.addr, get("stuck.localhost", "/"))).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(text(response).await.contains("took too long"));
    let errors = gateway.recorder.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("connecting to the app took longer"), "{errors:?}");
    gateway.stop().await;
}

#[tokio::test]
async fn an_app_that_never_answers_is_a_504_page() {
    let app = spawn_app(|_request: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Response::new(full("too late"))
    })
    .await;
    let mut config = GatewayConfig::new("localhost");
    config.upstream_response_timeout = Duration::from_millis(200);
    let gateway = start_with(config, vec![("slow", tcp(app.addr))], TcpConnector).await;
    let response = bounded(send(gateway.addr, get("slow.localhost", "/"))).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(gateway.recorder.errors()[0].1.contains("did not answer within"));
    gateway.stop().await;
}

#[tokio::test]
async fn request_bodies_over_the_limit_get_413() {
    let app = spawn_app(|request: Request<Incoming>| async move {
        match request.into_body().collect().await {
            Ok(body) => Response::new(full(format!("{}", body.to_bytes().len()))),
            Err(_) => Response::new(full("broken")),
        }
    })
    .await;
    let mut config = GatewayConfig::new("localhost");
    config.max_request_body = Some(2048);
    let gateway = start_with(config, vec![("small", tcp(app.addr))], TcpConnector).await;
    let post = |body: TestBody| Request::post("/").header(header::HOST, "small.localhost").body(body).expect("valid");

    let response = bounded(send(gateway.addr, post(full(vec![b'x'; 2048])))).await;
    assert_eq!(text(response).await, "2048", "a body at the limit passes");

    let response = bounded(send(gateway.addr, post(full(vec![b'x'; 4096])))).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "a declared length over the limit is refused up front");

    let (chunks, body) = channel_body();
    for _ in 0..3 {
        chunks.send(Bytes::from(vec![b'y'; 1024])).await.expect("buffered");
    }
    drop(chunks);
    let response = bounded(send(gateway.addr, post(body))).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "a chunked body is cut off at the limit");
    assert!(gateway.recorder.errors().is_empty(), "an oversized request is not the app's fault");
    gateway.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
    let app = spawn_app(|_request: Request<Incoming>| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Response::new(full("finished"))
    })
    .await;
    let gateway = start(vec![("slow", tcp(app.addr))]).await;
    let addr = gateway.addr;
    let in_flight = tokio::spawn(async move { text(send(addr, get("slow.localhost", "/")).await).await });
    let gw = Arc::clone(&gateway.gateway);
    eventually("the request reaches the app", || gw.in_flight("slow") == 1).await;
    gateway.shutdown.send(true).expect("serve is listening");
    assert_eq!(bounded(in_flight).await.expect("the client task"), "finished");
    bounded(gateway.served).await.expect("serve returns after the last request");
    assert!(TcpStream::connect(addr).await.is_err(), "the gateway no longer accepts connections");
}

#[tokio::test]
async fn shutdown_closes_what_is_still_running_after_the_grace() {
    let app = spawn_app(|_request: Request<Incoming>| async move {
        let (events, body) = channel_body();
        tokio::spawn(async move {
            // An endless stream, as a live-updating page would hold open.
            while events.send(Bytes::from_static(b"data: tick\n\n")).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(body).expect("valid")
    })
    .await;
    let mut config = GatewayConfig::new("localhost");
    config.shutdown_grace = Duration::from_millis(200);
    let gateway = start_with(config, vec![("live", tcp(app.addr))], TcpConnector).await;
    let mut body = bounded(send(gateway.addr, get("live.localhost", "/"))).await.into_body();
    bounded(body.frame()).await.expect("a first event").expect("no error");
    let started = Instant::now();
    gateway.shutdown.send(true).expect("serve is listening");
    bounded(gateway.served).await.expect("serve returns");
    assert!(started.elapsed() < Duration::from_secs(3), "serve took {:?}", started.elapsed());
    let ended = bounded(async {
        loop {
            match body.frame().await {
                None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended, "the endless stream was cut when the grace ran out");
}

#[tokio::test]
async fn a_namespaced_app_is_reached_through_the_gateway() {
    let Some(netns) = TestNetns::create() else { return };
    let app = spawn_app_on(netns.bind_loopback(), |_request: Request<Incoming>| async move { Response::new(full("inside the sandbox")) });
    assert!(TcpStream::connect(app.addr).await.is_err(), "the app must not be reachable from the host namespace");
    let route = Route::Ready(Upstream::InNetns { netns: netns.path.clone(), addr: app.addr });
    let gateway = start_with(GatewayConfig::new("localhost"), vec![("boxed", route)], NetnsConnector::new()).await;
    for _ in 0..3 {
        let response = bounded(send(gateway.addr, get("boxed.localhost", "/"))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(text(response).await, "inside the sandbox");
    }
    assert_eq!(app.connections.load(Ordering::SeqCst), 1, "namespaced upstreams are pooled too");
    gateway.stop().await;
}

/// The gateway on TLS with the test wildcard certificate for `apps.test`, and custom domains.
async fn start_tls(routes: Vec<(&str, Route)>, domains: Arc<Domains>) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let recorder = Arc::new(Recorder::default());
    for (name, route) in routes {
        recorder.table.insert(name, route);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the HTTPS port");
    let addr = listener.local_addr().expect("gateway address");
    let certs = Arc::clone(domains.certs());
    let gate = super::super::access::Gate::new(super::super::access::AccessConfig {
        key: [1u8; 32],
        portal_url: "http://portal.test".to_owned(),
        cookie_ttl_secs: 60,
        secure_cookies: true,
        max_staleness_secs: 60,
    });
    let now = super::super::access::feed::now_unix();
    gate.replace(
        super::super::access::AccessTable::new(
            ["echo", "shop"].map(|app| {
                (app.to_owned(), super::super::access::AccessRecord { visibility: super::super::access::Visibility::Public, users: vec![] })
            }),
            [],
        ),
        now,
    );
    let gateway = Gateway::with_domains(GatewayConfig::new("apps.test"), recorder, TcpConnector, Arc::new(Registry::new()), gate, domains);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let served = tokio::spawn(gateway.serve_tls(listener, super::super::tls::server_config(certs), shutdown_rx));
    (addr, shutdown, served)
}

/// One request over TLS with SNI `server_name`, trusting only the test CA.
async fn send_tls(addr: SocketAddr, server_name: &str, request: Request<TestBody>) -> Result<Response<Incoming>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(include_bytes!("../tls/testdata/ca.pem")) {
        roots.add(certificate.expect("test CA")).expect("add the test CA");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let stream = connector.connect(name, stream).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = client_http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn https_picks_the_certificate_by_sni_routes_custom_domains_and_tells_the_app_it_was_https() {
    use super::super::domains::{DomainRecord, DomainTable, PublishedCertificate};
    let app = header_echo_app().await;
    let key = [5u8; 32];
    let domains = Domains::new(super::super::tls::CertStore::new("apps.test"), key);
    domains.certs().set_wildcard(
        super::super::tls::certified_key(include_bytes!("../tls/testdata/wildcard.pem"), include_bytes!("../tls/testdata/wildcard.key"))
            .expect("wildcard"),
    );
    let certificate = PublishedCertificate {
        chain_pem: include_str!("../tls/testdata/custom.pem").to_owned(),
        key_sealed: super::super::tls::seal_with_nonce(&key, [2u8; 24], include_bytes!("../tls/testdata/custom.key")),
    };
    let record = DomainRecord { app: "shop".to_owned(), verified: true, proof_token: None, certificate: Some(certificate) };
    domains.replace(DomainTable::new([("shop.example.test".to_owned(), record)], []));
    let (addr, shutdown, served) = start_tls(vec![("echo", tcp(app.addr)), ("shop", tcp(app.addr))], domains).await;

    // The apps domain: the wildcard certificate; the app sees X-Forwarded-Proto: https.
    let request =
        Request::get("/").header(header::HOST, "echo.apps.test").header("x-forwarded-proto", "http").body(full("")).expect("valid");
    let response = bounded(send_tls(addr, "echo.apps.test", request)).await.expect("TLS to the apps domain");
    assert_eq!(response.status(), 200);
    let seen = parse_header_lines(&text(response).await);
    assert_eq!(header_values(&seen, "x-forwarded-proto"), ["https"]);
    assert_eq!(header_values(&seen, "host"), ["echo.apps.test"]);

    // A custom domain: its own certificate, routed to its app.
    let response = bounded(send_tls(addr, "shop.example.test", get("shop.example.test", "/"))).await.expect("TLS to the custom domain");
    assert_eq!(response.status(), 200);
    assert_eq!(header_values(&parse_header_lines(&text(response).await), "host"), ["shop.example.test"]);

    // A name with no certificate fails the handshake instead of getting someone else's.
    let refused = bounded(send_tls(addr, "other.example.test", get("other.example.test", "/"))).await;
    assert!(refused.is_err(), "a handshake for an unknown name succeeded");

    shutdown.send(true).expect("the gateway listens for shutdown");
    bounded(served).await.expect("serve ends cleanly");
}
