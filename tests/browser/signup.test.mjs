// End-to-end: a student signs up from a Korean browser, verifies the mailed link, logs in,
// edits the profile, switches the language and logs out, against a real `slipway up` with its
// own private PostgreSQL and Redis in a temporary data dir. Run with `node --test` (README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const __dirname = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(__dirname, '../..');

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ALLOWED_DOMAIN = 'pusan.ac.kr';
const PASSWORD = 'correct horse battery';
const SCREENSHOT = path.join(os.tmpdir(), 'slipway-browser-profile.png');
const VERIFY_LINK = /https?:\/\/\S+\/verify\?token=[A-Za-z0-9_-]+/;

const HEALTH_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const MAIL_TIMEOUT_MS = 15_000;
const STEP_TIMEOUT_MS = 15_000;

/** The slipway binary: $SLIPWAY_BIN, else $CARGO_TARGET_DIR/debug/slipway, else <repo>/target/debug/slipway. */
function slipwayBinary() {
  if (process.env.SLIPWAY_BIN) return path.resolve(process.env.SLIPWAY_BIN);
  if (process.env.CARGO_TARGET_DIR) return path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR, 'debug/slipway');
  return path.resolve(__dirname, '../../target/debug/slipway');
}

/** A port that was free a moment ago: listen on port 0, read the number, close. */
function freePort() {
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

/** Decodes a quoted-printable body: soft line breaks, then =XX bytes, then UTF-8 (strict). */
function decodeQuotedPrintable(text) {
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
function decodeBody(headers, body) {
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
function decodeEncodedWords(value) {
  return value
    .replace(/\?=\s+=\?/g, '?==?')
    .replace(/=\?utf-8\?([bq])\?([^?]*)\?=/gi, (_, kind, text) =>
      kind.toLowerCase() === 'b'
        ? Buffer.from(text, 'base64').toString('utf8')
        : decodeQuotedPrintable(text.replace(/_/g, ' ')));
}

/** Splits an .eml into unfolded headers (lower-cased names) and the raw body. */
function parseEml(raw) {
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

/** Clicks a submit button and waits for the page it leads to (after redirects); returns its response. */
async function submit(page, button) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
  return response;
}

const server = { child: null, dataDir: null, base: null, stdout: '', stderr: '', exit: null };
let browser;
let context;
let page;

function serverLog() {
  return `--- slipway stdout ---\n${server.stdout.slice(-4000)}\n--- slipway stderr ---\n${server.stderr.slice(-8000)}`;
}

before(async () => {
  const bin = slipwayBinary();
  assert.ok(existsSync(bin), `no slipway binary at ${bin}: build it (cargo build -p portal --bin slipway) or set SLIPWAY_BIN`);
  server.dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-browser-'));
  // Run as root, slipway starts PostgreSQL as the `postgres` user, which must be able to enter
  // the data dir; mkdtemp makes it 0700.
  if (process.getuid?.() === 0) await fs.chmod(server.dataDir, 0o711);
  const port = await freePort();
  server.base = `http://127.0.0.1:${port}`;

  // A hermetic environment: no outside database, Redis or SMTP server, and no SLIPWAY_* setting
  // from the caller's shell (the server reads every SLIPWAY_* variable as configuration).
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name.startsWith('SLIPWAY_') || name === 'DATABASE_URL' || name === 'REDIS_URL') continue;
    env[name] = value;
  }
  env.SLIPWAY_ALLOWED_EMAIL_DOMAINS = ALLOWED_DOMAIN;

  // cwd is the temp dir too, so a ./slipway.toml wherever the test was started is not read.
  const spawnedAt = Date.now();
  server.child = spawn(bin, ['up', '--data-dir', server.dataDir, '--portal', `127.0.0.1:${port}`], { cwd: server.dataDir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.child.stdout.setEncoding('utf8').on('data', (chunk) => { server.stdout += chunk; });
  server.child.stderr.setEncoding('utf8').on('data', (chunk) => { server.stderr += chunk; });
  server.exited = new Promise((resolve) => server.child.on('exit', (code, signal) => { server.exit = { code, signal }; resolve(server.exit); }));
  server.child.on('error', (error) => { server.stderr += `\nspawn error: ${error.message}\n`; });

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let last = 'no answer yet';
  for (;;) {
    if (server.exit) {
      console.error(serverLog());
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
      console.error(serverLog());
      assert.fail(`GET ${server.base}/healthz did not answer 200 within ${HEALTH_TIMEOUT_MS / 1000} s (last: ${last})`);
    }
    await sleep(250);
  }
  // The readiness line goes out just before the portal serves, so it is there by now.
  for (let i = 0; i < 20 && !server.stdout.includes('Slipway is running.'); i++) await sleep(100);
  assert.match(server.stdout, new RegExp(`Slipway is running\\. Portal: ${server.base.replace(/\./g, '\\.')}/?\\s`), serverLog());

  console.log(`slipway healthy ${((Date.now() - spawnedAt) / 1000).toFixed(1)} s after spawn at ${server.base}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  context = await browser.newContext({ locale: 'ko-KR', viewport: { width: 1100, height: 900 } });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  page = await context.newPage();
}, { timeout: HEALTH_TIMEOUT_MS + 45_000 });

after(async () => {
  await browser?.close().catch((error) => console.error(`closing the browser: ${error.message}`));
  let stopped = true;
  const running = server.child && !server.exit;
  if (running) {
    const started = Date.now();
    server.child.kill('SIGTERM');
    stopped = await Promise.race([server.exited.then(() => true), sleep(STOP_TIMEOUT_MS, false, { ref: false })]);
    if (!stopped) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    console.log(`slipway stopped ${((Date.now() - started) / 1000).toFixed(1)} s after SIGTERM`);
  }
  if (server.dataDir) await fs.rm(server.dataDir, { recursive: true, force: true, maxRetries: 5 });
  assert.ok(stopped, `slipway did not stop within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM (killed)\n${serverLog()}`);
  // A server that died early has been reported by before(); one we stopped must stop cleanly.
  if (running) assert.deepEqual(server.exit, { code: 0, signal: null }, `slipway did not exit cleanly on SIGTERM\n${serverLog()}`);
}, { timeout: STOP_TIMEOUT_MS + 15_000 });

test('a student signs up from a Korean page, verifies by mail, logs in, edits the profile and logs out', { timeout: 100_000 }, async (t) => {
  const email = `s${randomBytes(5).toString('hex')}@${ALLOWED_DOMAIN}`;
  const url = (p) => `${server.base}${p}`;
  const pathname = () => new URL(page.url()).pathname;
  let verifyLink;
  let failed = null;

  // Steps build on each other: once one fails, the later ones fail too (never skipped), naming the cause.
  const step = (name, fn) => t.test(name, async () => {
    if (failed) assert.fail(`cannot run: the earlier step "${failed}" failed`);
    try {
      await fn();
    } catch (error) {
      failed = name;
      throw error;
    }
  });

  await step('sign-up page is Korean and refuses an address outside the allowed domain', async () => {
    const response = await page.goto(url('/signup'));
    assert.equal(response.status(), 200);
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    assert.equal((await page.locator('main h1').textContent()).trim(), '계정 만들기');

    const form = page.locator('form[action="/signup"]');
    await form.locator('input[name=email]').fill(`s${randomBytes(4).toString('hex')}@gmail.com`);
    await form.locator('input[name=display_name]').fill('김민수');
    await form.locator('input[name=password]').fill(PASSWORD);
    const refused = await submit(page, form.locator('button[type=submit]'));
    assert.ok(refused.status() >= 400 && refused.status() < 500, `expected a 4xx for a gmail.com address, got ${refused.status()}`);
    const error = page.locator('[data-testid=error]');
    assert.ok(await error.isVisible(), 'the error is shown');
    assert.match(await error.textContent(), /pusan\.ac\.kr/);
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
  });

  await step('signing up with a pusan.ac.kr address sends a verification mail', async () => {
    const form = page.locator('form[action="/signup"]');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=display_name]').fill('김민수');
    await form.locator('input[name=student_number]').fill('202312345');
    await form.locator('input[name=password]').fill(PASSWORD);
    const response = await submit(page, form.locator('button[type=submit]'));
    assert.equal(response.status(), 200);
    assert.equal(await page.locator('[data-testid=error]').count(), 0, 'no error after a valid sign-up');
    assert.ok((await page.locator('[data-testid=message]').textContent()).includes(email), 'the message names the address');
  });

  await step('the verification mail is in Korean and carries a link', async () => {
    const outbox = path.join(server.dataDir, 'outbox');
    const deadline = Date.now() + MAIL_TIMEOUT_MS;
    let mail = null;
    let seen = 'no .eml file';
    while (!mail) {
      const names = (await fs.readdir(outbox).catch(() => [])).filter((n) => n.endsWith('.eml'));
      for (const name of names) {
        const raw = await fs.readFile(path.join(outbox, name), 'utf8').catch(() => '');
        const parsed = parseEml(raw);
        if (!parsed?.headers.to?.toLowerCase().includes(email)) continue;
        // A file still being written may not decode yet, or lack the link: read it again next round.
        try {
          const body = decodeBody(parsed.headers, parsed.body);
          if (VERIFY_LINK.test(body)) {
            mail = { name, headers: parsed.headers, body };
            break;
          }
          seen = `${name} has no verification link yet:\n${body}`;
        } catch (error) {
          seen = `${name} does not decode (${error.message}):\n${raw.slice(0, 2000)}`;
        }
      }
      if (!mail) {
        assert.ok(Date.now() < deadline, `no complete mail to ${email} in ${outbox} within ${MAIL_TIMEOUT_MS / 1000} s (files: ${names.join(', ') || 'none'})\n${seen}\n${serverLog()}`);
        await sleep(200);
      }
    }
    assert.match(mail.headers['content-type'] ?? '', /^text\/plain;\s*charset="?utf-8"?$/i, `mail ${mail.name}: ${JSON.stringify(mail.headers)}`);
    assert.match(decodeEncodedWords(mail.headers.subject ?? ''), /[가-힣]/, `a Korean subject: ${mail.headers.subject}`);
    assert.ok(mail.body.includes('안녕하세요'), `the mail is in Korean:\n${mail.body}`);
    assert.ok(mail.body.includes('김민수'), `the mail greets the student by name:\n${mail.body}`);
    verifyLink = mail.body.match(VERIFY_LINK)[0];
    assert.equal(new URL(verifyLink).origin, server.base, 'the link points at this portal');
  });

  await step('opening the link verifies the address', async () => {
    const response = await page.goto(verifyLink);
    assert.equal(response.status(), 200);
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    const message = await page.locator('[data-testid=message]').textContent();
    assert.ok(message.includes('인증'), `Korean success text, got: ${message}`);
  });

  await step('a wrong password is refused, the right one opens the dashboard', async () => {
    let response = await page.goto(url('/login'));
    assert.equal(response.status(), 200);
    const form = page.locator('form[action="/login"]');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill('not the password at all');
    response = await submit(page, form.locator('button[type=submit]'));
    assert.ok(response.status() >= 400, `a wrong password must not succeed (status ${response.status()})`);
    assert.ok(await page.locator('[data-testid=error]').isVisible(), 'the login error is shown');
    assert.equal(await page.locator('[data-testid=logout]').count(), 0, 'not logged in after a wrong password');

    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    response = await submit(page, form.locator('button[type=submit]'));
    assert.equal(response.status(), 200);
    assert.equal(pathname(), '/dashboard');
    const greeting = await page.locator('[data-testid=greeting]').textContent();
    assert.ok(greeting.includes('김민수'), `greeting: ${greeting}`);
  });

  await step('the profile saves a new name, student number and language (English)', async () => {
    const response = await page.goto(url('/profile'));
    assert.equal(response.status(), 200);
    assert.equal((await page.locator('[data-testid=email]').textContent()).trim(), email);
    const form = page.locator('[data-testid=profile-form]');
    assert.equal(await form.locator('input[name=display_name]').inputValue(), '김민수');
    assert.equal(await form.locator('input[name=student_number]').inputValue(), '202312345');
    assert.equal(await form.locator('select[name=language]').inputValue(), 'ko', 'the language chosen at sign-up');

    await form.locator('input[name=display_name]').fill('김민수 (Kim Minsu)');
    await form.locator('input[name=student_number]').fill('202399999');
    await form.locator('select[name=language]').selectOption('en');
    const saved = await submit(page, form.locator('button[type=submit]'));
    assert.equal(saved.status(), 200);
    assert.equal(pathname(), '/profile');
    assert.ok(await page.locator('.flash').isVisible(), 'the "saved" flash is shown');
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(await form.locator('input[name=display_name]').inputValue(), '김민수 (Kim Minsu)');
    assert.equal(await form.locator('input[name=student_number]').inputValue(), '202399999');
    assert.equal(await form.locator('select[name=language]').inputValue(), 'en');

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`profile screenshot: ${SCREENSHOT}`);

    await page.reload();
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.equal(await form.locator('input[name=display_name]').inputValue(), '김민수 (Kim Minsu)');
    assert.equal(await form.locator('input[name=student_number]').inputValue(), '202399999');
    assert.equal(await form.locator('select[name=language]').inputValue(), 'en');
    assert.equal(await page.locator('.flash').count(), 0, 'the flash is shown once only');
  });

  await step('the header language switch turns the page Korean again', async () => {
    const button = page.locator('header form[action="/language"] button[type=submit]');
    assert.equal((await button.textContent()).trim(), '한국어');
    const response = await submit(page, button);
    assert.equal(response.status(), 200);
    assert.equal(pathname(), '/profile', 'the switch comes back to the same page');
    assert.equal(await page.getAttribute('html', 'lang'), 'ko');
    assert.equal((await page.locator('main h1').first().textContent()).trim(), '내 프로필');
    assert.equal((await button.textContent()).trim(), 'English');
    assert.equal(await page.locator('[data-testid=profile-form] select[name=language]').inputValue(), 'ko', 'the switch is saved to the profile too');
  });

  await step('logging out ends the session', async () => {
    await submit(page, page.locator('[data-testid=logout]'));
    assert.equal(await page.locator('[data-testid=logout]').count(), 0, 'no logout button once logged out');
    const response = await page.goto(url('/dashboard'));
    assert.equal(response.status(), 200);
    assert.equal(pathname(), '/login', `/dashboard must redirect to /login, ended at ${page.url()}`);
  });
});
