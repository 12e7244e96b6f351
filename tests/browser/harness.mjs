// Shared parts of the browser tests: the slipway binary, free ports, a hermetic `slipway up`
// (private PostgreSQL and Redis in a temporary data dir, portal and app gateway on free loopback
// ports), the mail outbox, and the Chromium launch. Each test file starts its own server, so the
// files can run in parallel under `node --test`.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const __dirname = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(__dirname, '../..');

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const ALLOWED_DOMAIN = 'pusan.ac.kr';
export const VERIFY_LINK = /https?:\/\/\S+\/verify\?token=[A-Za-z0-9_-]+/;

export const HEALTH_TIMEOUT_MS = 60_000;
export const STOP_TIMEOUT_MS = 30_000;
export const MAIL_TIMEOUT_MS = 15_000;
export const STEP_TIMEOUT_MS = 15_000;

/** The slipway binary: $SLIPWAY_BIN, else $CARGO_TARGET_DIR/debug/slipway, else <repo>/target/debug/slipway. */
export function slipwayBinary() {
  if (process.env.SLIPWAY_BIN) return path.resolve(process.env.SLIPWAY_BIN);
  if (process.env.CARGO_TARGET_DIR) return path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR, 'debug/slipway');
  return path.resolve(__dirname, '../../target/debug/slipway');
}

/** A port that was free a moment ago: listen on port 0, read the number, close. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** `count` distinct ports that were free a moment ago (all held open together, so never equal). */
export async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      server.unref();
      await new Promise((resolve, reject) => {
        server.on('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      servers.push(server);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

/** Decodes a quoted-printable body: soft line breaks, then =XX bytes, then UTF-8 (strict). */
export function decodeQuotedPrintable(text) {
  const joined = text.replace(/=\r?\n/g, '');
  const bytes = [];
  for (let i = 0; i < joined.length; i++) {
    const hex = joined.slice(i + 1, i + 3);
    if (joined[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i], 'utf8'));
    }
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes));
}

/**
 * Decodes a single-part text body by its Content-Transfer-Encoding. The portal's mailer (lettre)
 * picks the encoding per message: quoted-printable for mostly-ASCII text, base64 for Korean.
 */
export function decodeBody(headers, body) {
  const encoding = (headers['content-transfer-encoding'] ?? '7bit').toLowerCase();
  switch (encoding) {
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    case 'base64':
      return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(body.replace(/\s+/g, ''), 'base64'));
    case '7bit':
    case '8bit':
      return body;
    default:
      throw new Error(`unexpected Content-Transfer-Encoding: ${encoding}`);
  }
}

/** Decodes RFC 2047 encoded words (=?utf-8?b?...?= and =?utf-8?q?...?=) in a header value. */
export function decodeEncodedWords(value) {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?utf-8\?([bq])\?([^?]*)\?=/gi, (_, kind, text) =>
      kind.toLowerCase() === 'b'
        ? Buffer.from(text, 'base64').toString('utf8')
        : decodeQuotedPrintable(text.replace(/_/g, ' ')));
}

/** Splits an .eml into unfolded headers (lower-cased names) and the raw body. */
export function parseEml(raw) {
  const match = /\r?\n\r?\n/.exec(raw);
  if (!match) return null;
  const head = raw.slice(0, match.index).replace(/\r?\n[ \t]+/g, ' ');
  const headers = {};
  for (const line of head.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body: raw.slice(match.index + match[0].length) };
}

/**
 * Waits for a complete mail to `email` in the server's outbox whose decoded body matches `wanted`;
 * returns { name, headers, body } (body decoded). Fails the test, with the server log, on timeout.
 */
export async function waitForMail(server, email, wanted = VERIFY_LINK, timeoutMs = MAIL_TIMEOUT_MS) {
  const outbox = path.join(server.dataDir, 'outbox');
  const deadline = Date.now() + timeoutMs;
  let seen = 'no .eml file';
  for (;;) {
    const names = (await fs.readdir(outbox).catch(() => [])).filter((n) => n.endsWith('.eml'));
    for (const name of names) {
      const raw = await fs.readFile(path.join(outbox, name), 'utf8').catch(() => '');
      const parsed = parseEml(raw);
      if (!parsed?.headers.to?.toLowerCase().includes(email)) continue;
      // A file still being written may not decode yet, or lack the link: read it again next round.
      try {
        const body = decodeBody(parsed.headers, parsed.body);
        if (wanted.test(body)) return { name, headers: parsed.headers, body };
        seen = `${name} has no verification link yet:\n${body}`;
      } catch (error) {
        seen = `${name} does not decode (${error.message}):\n${raw.slice(0, 2000)}`;
      }
    }
    assert.ok(Date.now() < deadline, `no complete mail to ${email} in ${outbox} within ${timeoutMs / 1000} s (files: ${names.join(', ') || 'none'})\n${seen}\n${server.log()}`);
    await sleep(200);
  }
}

/** Clicks a submit button and waits for the page it leads to (after redirects); returns its response. */
export async function submit(page, button) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
  return response;
}

/**
 * A hermetic environment: no outside database, Redis or SMTP server, and no SLIPWAY_* setting
 * from the caller's shell (the server reads every SLIPWAY_* variable as configuration).
 */
export function hermeticEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('SLIPWAY_') || name === 'DATABASE_URL' || name === 'REDIS_URL') continue;
    env[name] = value;
  }
  return { ...env, SLIPWAY_ALLOWED_EMAIL_DOMAINS: ALLOWED_DOMAIN, ...extra };
}

/**
 * The running server: { child, dataDir, base, port, gatewayPort, stdout, stderr, exit, exited, log() }.
 * `log()` is the tail of its output, for failure messages.
 */
function newServer() {
  const server = { child: null, dataDir: null, base: null, port: null, gatewayPort: null, stdout: '', stderr: '', exit: null, exited: null };
  server.log = () => `--- slipway stdout ---\n${server.stdout.slice(-4000)}\n--- slipway stderr ---\n${server.stderr.slice(-8000)}`;
  return server;
}

/** Spawns `slipway up` once; resolves when healthy, or returns { retry: reason } when a port was taken meanwhile. */
async function spawnOnce(server, bin, env) {
  const [port, gatewayPort] = await freePorts(2);
  Object.assign(server, { port, gatewayPort, base: `http://127.0.0.1:${port}`, stdout: '', stderr: '', exit: null });
  // cwd is the temp dir too, so a ./slipway.toml wherever the test was started is not read.
  const spawnedAt = Date.now();
  const args = ['up', '--data-dir', server.dataDir, '--portal', `127.0.0.1:${port}`, '--gateway', `127.0.0.1:${gatewayPort}`, '--metrics', '127.0.0.1:0'];
  server.child = spawn(bin, args, { cwd: server.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.child.stdout.setEncoding('utf8').on('data', (chunk) => { server.stdout += chunk; });
  server.child.stderr.setEncoding('utf8').on('data', (chunk) => { server.stderr += chunk; });
  server.exited = new Promise((resolve) => server.child.on('exit', (code, signal) => { server.exit = { code, signal }; resolve(server.exit); }));
  server.child.on('error', (error) => { server.stderr += `\nspawn error: ${error.message}\n`; });

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let last = 'no answer yet';
  for (;;) {
    if (server.exit) {
      // Another process (the other test file, say) took one of the ports between freePorts and bind.
      const taken = (server.stderr + server.stdout).split('\n').find((line) => /address already in use|AddrInUse/i.test(line));
      if (taken) return { retry: taken.trim() };
      console.error(server.log());
      assert.fail(`slipway up exited before it was healthy (${JSON.stringify(server.exit)})`);
    }
    try {
      const response = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(2_000) });
      last = `${response.status} ${await response.text()}`;
      if (response.status === 200) break;
    } catch (error) {
      last = error.cause?.code ?? error.message;
    }
    if (Date.now() > deadline) {
      console.error(server.log());
      assert.fail(`GET ${server.base}/healthz did not answer 200 within ${HEALTH_TIMEOUT_MS / 1000} s (last: ${last})`);
    }
    await sleep(250);
  }
  // The readiness line goes out just before the portal serves, so it is there by now.
  for (let i = 0; i < 20 && !server.stdout.includes('Slipway is running.'); i++) await sleep(100);
  assert.match(server.stdout, new RegExp(`Slipway is running\\. Portal: ${server.base.replace(/\./g, '\\.')}/?\\s`), server.log());
  // The app gateway starts with the portal; it answers any request (a page for an unknown app).
  for (;;) {
    try {
      await fetch(`http://127.0.0.1:${server.gatewayPort}/`, { signal: AbortSignal.timeout(2_000) });
      break;
    } catch (error) {
      last = error.cause?.code ?? error.message;
    }
    if (server.exit || Date.now() > deadline) {
      console.error(server.log());
      assert.fail(`the app gateway on 127.0.0.1:${server.gatewayPort} did not answer (last: ${last}; exit: ${JSON.stringify(server.exit)})`);
    }
    await sleep(100);
  }
  console.log(`slipway healthy ${((Date.now() - spawnedAt) / 1000).toFixed(1)} s after spawn at ${server.base} (gateway port ${server.gatewayPort})`);
  return {};
}

/**
 * Starts `slipway up` in a fresh temporary data dir (prefix names it, e.g. `slipway-browser-deploy-`)
 * with the portal and the app gateway on free loopback ports, and waits for /healthz.
 */
export async function startSlipway({ prefix = 'slipway-browser-', env: extraEnv = {} } = {}) {
  const bin = slipwayBinary();
  assert.ok(existsSync(bin), `no slipway binary at ${bin}: build it (cargo build -p portal --bin slipway) or set SLIPWAY_BIN`);
  const server = newServer();
  server.dataDir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  // Run as root, slipway starts PostgreSQL as the `postgres` user, which must be able to enter
  // the data dir; mkdtemp makes it 0700.
  if (process.getuid?.() === 0) await fs.chmod(server.dataDir, 0o711);
  const env = hermeticEnv(extraEnv);
  try {
    for (let attempt = 1; ; attempt++) {
      const { retry } = await spawnOnce(server, bin, env);
      if (!retry) return server;
      assert.ok(attempt < 3, `slipway up could not bind its ports in ${attempt} attempts (${retry})\n${server.log()}`);
      console.log(`slipway up attempt ${attempt}: ${retry}; trying other ports`);
    }
  } catch (error) {
    // The caller never gets the server to stop: stop it (if it still runs) and remove its data dir here.
    await stopSlipway(server).catch(() => {});
    throw error;
  }
}

/**
 * Stops the server (SIGTERM, SIGKILL after timeoutMs, default STOP_TIMEOUT_MS), removes its data dir, and asserts a
 * server that was running stopped cleanly. Safe to call with a server that never started.
 */
export async function stopSlipway(server, { timeoutMs = STOP_TIMEOUT_MS } = {}) {
  if (!server) return;
  let stopped = true;
  const running = server.child && !server.exit;
  if (running) {
    const started = Date.now();
    server.child.kill('SIGTERM');
    stopped = await Promise.race([server.exited.then(() => true), sleep(timeoutMs, false, { ref: false })]);
    if (!stopped) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    console.log(`slipway stopped ${((Date.now() - started) / 1000).toFixed(1)} s after SIGTERM`);
  }
  if (server.dataDir) await fs.rm(server.dataDir, { recursive: true, force: true, maxRetries: 5 });
  assert.ok(stopped, `slipway did not stop within ${timeoutMs / 1000} s of SIGTERM (killed)\n${server.log()}`);
  // A server that died early has been reported by startSlipway; one we stopped must stop cleanly.
  if (running) assert.deepEqual(server.exit, { code: 0, signal: null }, `slipway did not exit cleanly on SIGTERM\n${server.log()}`);
}

/** The system Chromium, headless. */
export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
}

/** A browser context with the step timeouts set (options: locale, viewport, ...). */
export async function newContext(browser, options) {
  const context = await browser.newContext(options);
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  return context;
}

/**
 * Ordered steps of one test: once a step fails, the later ones fail too (never skipped), naming
 * the cause. Returns step(name, fn).
 */
export function stepper(t) {
  let failed = null;
  return (name, fn) => t.test(name, async () => {
    if (failed) assert.fail(`cannot run: the earlier step "${failed}" failed`);
    try {
      await fn();
    } catch (error) {
      failed = name;
      throw error;
    }
  });
}
