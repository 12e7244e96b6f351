// End-to-end: a console quiz (examples/console-quiz, Python with input()) deployed over the API is
// played in headless Chromium through the web terminal at http://NAME.localhost:PORT/: the page
// loads xterm.js, the program's Korean prompt appears, an answer in Korean is typed through an IME
// composition (as a Korean keyboard would produce it) and the reply is read from the screen.
// Runs against its own `slipway up`. Run with `node --test`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  ALLOWED_DOMAIN, HEALTH_TIMEOUT_MS, REPO_ROOT, VERIFY_LINK,
  launchBrowser, newContext, startSlipway, stepper, stopSlipway, waitForMail,
} from './harness.mjs';

const PASSWORD = 'correct horse battery';
const EXAMPLE = path.join(REPO_ROOT, 'examples/console-quiz');
const SCREENSHOT = path.join(os.tmpdir(), 'slipway-browser-console.png');
const PROJECT = 'quiz';

let server;
let browser;
let page;
let workDir;

before(async () => {
  workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-browser-console-files-'));
  server = await startSlipway({ prefix: 'slipway-browser-console-' });
  browser = await launchBrowser();
  const context = await newContext(browser, { locale: 'ko-KR', viewport: { width: 1000, height: 700 } });
  page = await context.newPage();
}, { timeout: HEALTH_TIMEOUT_MS + 45_000 });

after(async () => {
  await browser?.close().catch((error) => console.error(`closing the browser: ${error.message}`));
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  await stopSlipway(server);
}, { timeout: 60_000 });

/** JSON API call; returns { status, body }. */
async function api(method, route, { token, json, body, type } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  if (type) headers['content-type'] = type;
  const response = await fetch(`${server.base}${route}`, { method, headers, body: json !== undefined ? JSON.stringify(json) : body });
  const text = await response.text();
  let parsed = null;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: response.status, body: parsed };
}

/** Every line of the terminal's screen and scrollback, as text. */
function screen() {
  return page.evaluate(() => {
    const buffer = window.slipwayTerminal.buffer.active;
    const lines = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i).translateToString(true));
    return lines.join('\n');
  });
}

/** Waits until the terminal shows `needle`; fails with the screen and the server log otherwise. */
async function waitForScreen(needle, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let last = '';
  for (;;) {
    last = await screen().catch((error) => `(${error.message})`);
    if (last.includes(needle)) return last;
    assert.ok(Date.now() < deadline, `the terminal did not show ${JSON.stringify(needle)} within ${timeout / 1000} s; screen:\n${last}\n${server.log()}`);
    await sleep(100);
  }
}

/** Types `text` as a Korean IME does: a composition that grows, then is committed. */
async function typeWithIme(cdp, text) {
  for (let end = 1; end <= text.length; end++) {
    await cdp.send('Input.imeSetComposition', { text: text.slice(0, end), selectionStart: end, selectionEnd: end });
  }
  await cdp.send('Input.insertText', { text });
}

test('a console quiz plays in the web terminal, answered in Korean', { timeout: 240_000 }, async (t) => {
  const step = stepper(t);
  let token;

  await step('sign up, verify and get an API token', async () => {
    const email = `console-${Date.now()}@${ALLOWED_DOMAIN}`;
    const signUp = await api('POST', '/api/v1/accounts', { json: { email, password: PASSWORD, display_name: 'Console Tester' } });
    assert.ok(signUp.status < 300, JSON.stringify(signUp));
    const mail = await waitForMail(server, email);
    const verified = await fetch(mail.body.match(VERIFY_LINK)[0]);
    assert.equal(verified.status, 200);
    const created = await api('POST', '/api/v1/tokens', { json: { email, password: PASSWORD, name: 'browser test' } });
    assert.equal(created.status, 201, JSON.stringify(created));
    token = created.body.token;
  });

  await step('create a console project and deploy the quiz ZIP until it is live', async () => {
    const created = await api('POST', '/api/v1/projects', { token, json: { name: PROJECT, template: 'console' } });
    assert.equal(created.status, 201, JSON.stringify(created));
    const zip = path.join(workDir, 'console-quiz');
    execFileSync('python3', ['-c', 'import shutil,sys; shutil.make_archive(sys.argv[1], "zip", sys.argv[2])', zip, EXAMPLE]);
    const queued = await api('POST', `/api/v1/projects/${PROJECT}/deployments`, { token, body: await fs.readFile(`${zip}.zip`), type: 'application/zip' });
    assert.equal(queued.status, 202, JSON.stringify(queued));
    const deadline = Date.now() + 120_000;
    for (;;) {
      const listing = await api('GET', `/api/v1/projects/${PROJECT}/revisions`, { token });
      const revision = listing.body.revisions?.find((r) => r.number === queued.body.number);
      if (revision?.status === 'live') break;
      assert.notEqual(revision?.status, 'failed', JSON.stringify(revision));
      assert.ok(Date.now() < deadline, `the revision did not go live: ${JSON.stringify(listing.body)}\n${server.log()}`);
      await sleep(300);
    }
  });

  await step('open the app: the terminal shows the first question', async () => {
    const response = await page.goto(`http://${PROJECT}.localhost:${server.gatewayPort}/`);
    assert.equal(response.status(), 200);
    await page.waitForFunction(() => document.body.dataset.state === 'running');
    await waitForScreen('퀴즈를 시작합니다!');
    await waitForScreen('1. 대한민국의 수도는 어디일까요?');
  });

  await step('answer in Korean through an IME composition and read the reply', async () => {
    await page.locator('#terminal').click();
    const cdp = await page.context().newCDPSession(page);
    await typeWithIme(cdp, '서울');
    // The terminal echoes what it received: the whole syllables, once each.
    await waitForScreen('> 서울');
    await page.keyboard.press('Enter');
    await waitForScreen('정답입니다! / Correct!');
    await waitForScreen('2. 7 × 8');
    await page.keyboard.type('56');
    await page.keyboard.press('Enter');
    const text = await waitForScreen('점수 / Score: 2/2');
    assert.ok(!text.includes('서서울'), `the composition was sent more than once:\n${text}`);
    await page.screenshot({ path: SCREENSHOT });
  });

  await step('the program ended: the page says so and offers to run it again', async () => {
    await page.waitForFunction(() => document.body.dataset.state === 'ended');
    assert.equal(await page.locator('#status-text').textContent(), 'The program ended.');
    await page.locator('#restart').click();
    await waitForScreen('1. 대한민국의 수도는 어디일까요?');
  });
});
