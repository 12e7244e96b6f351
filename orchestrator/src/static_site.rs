//! The platform's static file server, for templates whose start is `static` (plain sites and
//! built Vite apps). It runs inside the app's sandbox like any other app (`slipway serve-static`),
//! so a static site gets the same isolation, limits and scale-to-zero as a server.
//!
//! It serves GET and HEAD only, maps `/` and folders to `index.html`, optionally falls back to
//! `index.html` for unknown paths (single-page apps), and never leaves its root: the request path
//! is resolved component by component, and `..`, backslashes, NUL and symlinks out of the root
//! are refused. It does not list directories, compress, or handle ranges.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

/// Maps a request path to a file under `root`, or None when the path is not acceptable.
/// Pure except for the final symlink check, which `resolve_file` does.
pub fn relative_path(request_path: &str) -> Option<PathBuf> {
    let path = request_path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path)?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let mut out = PathBuf::new();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut idx = 0;
    while idx < bytes.len() {
        if bytes[idx] == b'%' {
            let hex = text.get(idx + 1..idx + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            idx += 3;
        } else {
            out.push(bytes[idx]);
            idx += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The content type for a file name, by extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("xml") => "application/xml",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Finds the file to serve: the path itself, its `index.html` when it is a folder, or (for SPAs)
/// the root `index.html`. The canonical path must stay under the canonical root.
pub fn resolve_file(root: &Path, request_path: &str, spa_fallback: bool) -> Option<PathBuf> {
    let canonical_root = root.canonicalize().ok()?;
    let inside = |candidate: &Path| -> Option<PathBuf> {
        let real = candidate.canonicalize().ok()?;
        (real.starts_with(&canonical_root) && real.is_file()).then_some(real)
    };
    if let Some(relative) = relative_path(request_path) {
        let candidate = canonical_root.join(&relative);
        if candidate.is_dir() {
            if let Some(found) = inside(&candidate.join("index.html")) {
                return Some(found);
            }
        } else if let Some(found) = inside(&candidate) {
            return Some(found);
        }
        // Only paths that look like routes fall back; a missing `app.js` stays a 404.
        let looks_like_route = relative.extension().is_none();
        if spa_fallback && looks_like_route {
            return inside(&canonical_root.join("index.html"));
        }
    }
    None
}

async fn handle(root: Arc<PathBuf>, spa_fallback: bool, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = |status: StatusCode, content_type: &str, body: Bytes| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("x-content-type-options", "nosniff")
            .body(Full::new(body))
            .expect("static headers are valid")
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut reply = response(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", Bytes::from_static(b"method not allowed\n"));
        reply.headers_mut().insert("allow", hyper::header::HeaderValue::from_static("GET, HEAD"));
        return Ok(reply);
    }
    let path = request.uri().path().to_owned();
    let found = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || resolve_file(&root, &path, spa_fallback)).await.ok().flatten()
    };
    let Some(file) = found else {
        return Ok(response(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", Bytes::from_static(b"not found\n")));
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let body = if request.method() == Method::HEAD { Bytes::new() } else { Bytes::from(bytes) };
            Ok(response(StatusCode::OK, content_type(&file), body))
        }
        Err(_) => Ok(response(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", Bytes::from_static(b"not found\n"))),
    }
}

/// Serves `root` on `addr` until the process ends.
pub async fn serve(root: PathBuf, addr: SocketAddr, spa_fallback: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let root = Arc::new(root);
    loop {
        let (stream, _) = listener.accept().await?;
        let root = root.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(root.clone(), spa_fallback, request));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(request: &str, expected: Option<&str>) {
        assert_eq!(relative_path(request).map(|p| p.display().to_string()), expected.map(str::to_owned), "{request:?}");
    }

    #[test]
    fn request_paths_map_inside_the_root_only() {
        check("/", Some(""));
        check("/a/b.css?v=1", Some("a/b.css"));
        check("/./a", Some("a"));
        check("/%ED%95%9C.html", Some("한.html"));
        check("/../etc/passwd", None);
        check("/a/../../x", None);
        check("/%2e%2e/secret", None);
        check("/a\\..\\b", None);
        check("/a%00b", None);
        check("/%zz", None);
    }

    #[test]
    fn files_folders_and_spa_fallback_resolve_as_a_browser_expects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("site");
        std::fs::create_dir_all(root.join("docs")).expect("mkdir");
        std::fs::write(root.join("index.html"), "home").expect("write");
        std::fs::write(root.join("docs/index.html"), "docs").expect("write");
        std::fs::write(root.join("app.js"), "js").expect("write");
        std::fs::write(dir.path().join("secret.txt"), "secret").expect("write");
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("leak.txt")).expect("symlink");
        let name = |p: Option<PathBuf>| p.map(|p| std::fs::read_to_string(p).expect("read"));
        assert_eq!(name(resolve_file(&root, "/", false)), Some("home".into()));
        assert_eq!(name(resolve_file(&root, "/docs/", false)), Some("docs".into()));
        assert_eq!(name(resolve_file(&root, "/app.js", false)), Some("js".into()));
        assert_eq!(name(resolve_file(&root, "/leak.txt", false)), None, "symlinks out of the root are refused");
        assert_eq!(name(resolve_file(&root, "/missing", false)), None);
        assert_eq!(name(resolve_file(&root, "/some/route", true)), Some("home".into()), "SPA routes fall back to index.html");
        assert_eq!(name(resolve_file(&root, "/missing.js", true)), None, "missing assets stay missing");
        assert_eq!(content_type(Path::new("a.CSS")), "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn serves_files_over_http() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("index.html"), "<h1>hi</h1>").expect("write");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        tokio::spawn(serve(dir.path().to_owned(), addr, true));
        let mut stream = loop {
            if let Ok(stream) = tokio::net::TcpStream::connect(addr).await {
                break stream;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(b"GET /deep/link HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.1 200") && reply.contains("text/html") && reply.ends_with("<h1>hi</h1>"), "{reply}");
    }
}
