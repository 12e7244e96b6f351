//! The full-screen terminal page a console app's host serves, its script, and the asset paths.
//! Pure: strings only. The page loads xterm.js and its fit addon from `/.slipway/terminal/`, which
//! the gateway serves from the assets directory (`GatewayConfig::terminal_assets`); this module
//! only names the files.
//!
//! The script opens `/.slipway/terminal/ws?cols=C&rows=R` on the same host (so the access cookie
//! goes with it), sends keystrokes as binary frames (UTF-8; composed Korean arrives from xterm.js's
//! IME handling as finished syllables), sends `{"resize":..}` when the window changes, and writes
//! binary frames to the screen. When the session ends it shows why and offers a restart.

use crate::gateway::pages::escape;

/// Where everything of the terminal lives on a console app's host.
pub const PREFIX: &str = "/.slipway/terminal/";
/// The WebSocket endpoint.
pub const SOCKET_PATH: &str = "/.slipway/terminal/ws";
/// The page's own script.
pub const SCRIPT_PATH: &str = "/.slipway/terminal/terminal.js";

/// The files served from the assets directory: URL name → path below it (as `npm ci` in
/// `web/terminal/` lays them out) and content type.
pub const ASSETS: &[(&str, &str, &str)] = &[
    ("xterm.js", "@xterm/xterm/lib/xterm.js", "text/javascript; charset=utf-8"),
    ("xterm.css", "@xterm/xterm/css/xterm.css", "text/css; charset=utf-8"),
    ("addon-fit.js", "@xterm/addon-fit/lib/addon-fit.js", "text/javascript; charset=utf-8"),
];

/// The page's Content-Security-Policy: only this host's scripts, styles and socket.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; \
                       img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The terminal page for console app `app`, as the gateway serves it.
pub fn html(app: &str) -> String {
    page_html(app, PREFIX, SOCKET_PATH)
}

/// A terminal page titled `title` that loads xterm.js from `assets_prefix` (which also serves
/// `terminal.js`) and connects to the WebSocket at `socket_path` on the same host. The portal's
/// owner shell uses it with its own paths.
pub fn page_html(title: &str, assets_prefix: &str, socket_path: &str) -> String {
    let (app, prefix, socket) = (escape(title), escape(assets_prefix), escape(socket_path));
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{app}</title>
<link rel="stylesheet" href="{prefix}xterm.css">
<style>
html, body {{ margin: 0; height: 100%; background: #1e1e1e; }}
#terminal {{ position: absolute; inset: 0; padding: 4px; }}
#status {{ position: fixed; right: 8px; bottom: 8px; font: 14px system-ui, sans-serif; color: #ddd;
  background: #333c; padding: 6px 10px; border-radius: 4px; display: none; }}
#status button {{ margin-left: 8px; }}
</style>
</head>
<body>
<div id="terminal" data-socket="{socket}"></div>
<div id="status" role="status"><span id="status-text"></span><button id="restart" type="button">Run again</button></div>
<script src="{prefix}xterm.js"></script>
<script src="{prefix}addon-fit.js"></script>
<script src="{prefix}terminal.js"></script>
</body>
</html>
"#
    )
}

/// The page's script (no inline script, so the CSP can forbid them).
pub const SCRIPT: &str = r#"'use strict';
(function () {
  const element = document.getElementById('terminal');
  const status = document.getElementById('status');
  const statusText = document.getElementById('status-text');
  const term = new Terminal({ cursorBlink: true, convertEol: false, fontSize: 16,
    fontFamily: '"D2Coding", "Noto Sans Mono CJK KR", "Nanum Gothic Coding", monospace' });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(element);
  fit.fit();
  const encoder = new TextEncoder();
  let socket = null;

  function show(text) {
    statusText.textContent = text;
    status.style.display = 'block';
    document.body.dataset.state = 'ended';
  }

  function connect() {
    status.style.display = 'none';
    document.body.dataset.state = 'connecting';
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = scheme + '//' + location.host + element.dataset.socket + '?cols=' + term.cols + '&rows=' + term.rows;
    socket = new WebSocket(url);
    socket.binaryType = 'arraybuffer';
    let told = false;
    socket.onopen = function () { document.body.dataset.state = 'running'; term.focus(); };
    socket.onmessage = function (event) {
      if (typeof event.data !== 'string') {
        term.write(new Uint8Array(event.data));
        return;
      }
      const message = JSON.parse(event.data);
      told = true;
      if (message.exit) {
        show(message.exit.code === 0 ? 'The program ended.' : 'The program ended (exit code ' + message.exit.code + ').');
      } else if (message.ended === 'time_limit') {
        show('The time limit for one session was reached.');
      } else if (message.ended) {
        show('The server is restarting.');
      } else if (message.error) {
        show(message.error);
      }
    };
    socket.onclose = function () { if (!told) { show('The connection was closed.'); } };
  }

  term.onData(function (data) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(encoder.encode(data)); }
  });
  term.onResize(function (size) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ resize: { cols: size.cols, rows: size.rows } }));
    }
  });
  window.addEventListener('resize', function () { fit.fit(); });
  document.getElementById('restart').addEventListener('click', function () { term.reset(); connect(); });
  window.slipwayTerminal = term;
  connect();
})();
"#;

/// The asset named `name` (the part after `PREFIX`): its path below the assets directory and
/// its content type. Only the listed files exist; nothing else of the directory is reachable.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS.iter().find(|(url_name, _, _)| *url_name == name).map(|(_, path, content_type)| (*path, *content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_the_app_name_and_loads_only_listed_assets() {
        let page = html("quiz<x>");
        assert!(page.contains("quiz&lt;x&gt;") && !page.contains("quiz<x>"));
        for (name, _, _) in ASSETS.iter().filter(|(name, _, _)| name.ends_with(".js")) {
            assert!(page.contains(&format!("{PREFIX}{name}")), "{name}");
        }
        assert!(page.contains(SCRIPT_PATH) && page.contains(&format!("data-socket=\"{SOCKET_PATH}\"")));
        let shell = page_html("shell: quiz", "/static/terminal/", "/projects/quiz/shell/ws");
        assert!(shell.contains("/static/terminal/terminal.js") && shell.contains("data-socket=\"/projects/quiz/shell/ws\""));
    }

    #[test]
    fn only_listed_assets_resolve() {
        assert_eq!(asset("xterm.js"), Some(("@xterm/xterm/lib/xterm.js", "text/javascript; charset=utf-8")));
        assert_eq!(asset("../package.json"), None);
        assert_eq!(asset("xterm.js.map"), None);
    }
}
