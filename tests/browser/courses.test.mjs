// End-to-end: a whole assignment cycle in the browser. A professor (made with `slipway admin
// create-user --role professor`) creates a course, imports a Moodle roster (UTF-8 with BOM, a
// Korean name) through the preview and confirm step, and creates an assignment with a due time
// typed in Seoul time; a student (whose project was deployed over the API) submits it from the
// assignment page; the professor grades it on the grading page (autosaved), releases the grades,
// and downloads the Canvas-shaped CSV, which is checked column by column. Run with `node --test`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  ALLOWED_DOMAIN, HEALTH_TIMEOUT_MS, STOP_TIMEOUT_MS,
  hermeticEnv, launchBrowser, newContext, slipwayBinary, startSlipway, stepper, stopSlipway, submit,
} from './harness.mjs';

const PASSWORD = 'correct horse battery';
const BUILD_TIMEOUT_MS = 60_000;

let server;
let browser;
let workDir;

before(async () => {
  workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'slipway-browser-courses-files-'));
  server = await startSlipway({ prefix: 'slipway-browser-courses-' });
  browser = await launchBrowser();
}, { timeout: HEALTH_TIMEOUT_MS + 45_000 });

after(async () => {
  await browser?.close().catch((error) => console.error(`closing the browser: ${error.message}`));
  if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  await stopSlipway(server);
}, { timeout: STOP_TIMEOUT_MS + 15_000 });

/** A verified account with `role`, made by the CLI against the running server's database. */
function createUser(email, role) {
  execFileSync(slipwayBinary(), ['admin', 'create-user', email, '--role', role, '--password-stdin', '--data-dir', server.dataDir], {
    input: PASSWORD, env: hermeticEnv(), cwd: server.dataDir, stdio: ['pipe', 'pipe', 'pipe'],
  });
}

async function api(token, method, p, body, contentType = 'application/json') {
  const response = await fetch(`${server.base}${p}`, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), 'Content-Type': contentType },
    body: body === undefined ? undefined : (contentType === 'application/json' ? JSON.stringify(body) : body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: response.status, json, text };
}

async function logIn(page, email) {
  let response = await page.goto(`${server.base}/login`);
  assert.equal(response.status(), 200);
  const login = page.locator('form[action="/login"]');
  await login.locator('input[name=email]').fill(email);
  await login.locator('input[name=password]').fill(PASSWORD);
  response = await submit(page, login.locator('button[type=submit]'));
  assert.equal(response.status(), 200);
}

test('a professor runs an assignment cycle: roster, assignment, submission, grading, export', { timeout: 200_000 }, async (t) => {
  const suffix = randomBytes(3).toString('hex');
  const profEmail = `p${suffix}@${ALLOWED_DOMAIN}`;
  const studentEmail = `s${suffix}@${ALLOWED_DOMAIN}`;
  const project = `site-${suffix}`;
  const step = stepper(t);
  let prof;
  let student;
  let coursePath;
  let assignmentPath;
  let assignmentId;

  await step('the professor and the student exist; the student has a live project', async () => {
    createUser(profEmail, 'professor');
    createUser(studentEmail, 'student');
    const token = await api(null, 'POST', '/api/v1/tokens', { email: studentEmail, password: PASSWORD, name: 'browser' });
    assert.equal(token.status, 201, token.text);
    const secret = token.json.token;
    const created = await api(secret, 'POST', '/api/v1/projects', { name: project, template: 'static' });
    assert.equal(created.status, 201, created.text);
    const dir = path.join(workDir, 'site');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'index.html'), '<h1>my portfolio</h1>');
    execFileSync('python3', ['-c', 'import shutil,sys; shutil.make_archive(sys.argv[1], "zip", sys.argv[2])', dir, dir]);
    const upload = await api(secret, 'POST', `/api/v1/projects/${project}/deployments`, await fs.readFile(`${dir}.zip`), 'application/zip');
    assert.equal(upload.status, 202, upload.text);
    const deadline = Date.now() + BUILD_TIMEOUT_MS;
    for (;;) {
      const listing = await api(secret, 'GET', `/api/v1/projects/${project}/revisions`);
      const status = listing.json?.revisions?.[0]?.status;
      if (status === 'live') break;
      assert.notEqual(status, 'failed', listing.text);
      assert.ok(Date.now() < deadline, `the project did not go live: ${listing.text}\n${server.log()}`);
      await sleep(300);
    }
  });

  await step('the professor creates a course and imports a Moodle roster through the preview', async () => {
    const context = await newContext(browser, { locale: 'en-US', timezoneId: 'Asia/Seoul', acceptDownloads: true });
    prof = await context.newPage();
    prof.on('pageerror', (error) => console.log(`page error: ${error.message}`));
    await logIn(prof, profEmail);
    let response = await prof.goto(`${server.base}/courses`);
    assert.equal(response.status(), 200);
    const form = prof.locator('form[data-testid=create-course]');
    await form.locator('input[name=code]').fill('WEB101');
    await form.locator('input[name=title]').fill('웹 프로그래밍');
    await form.locator('input[name=term]').fill('2026-2');
    response = await submit(prof, form.locator('button[type=submit]'));
    assert.equal(response.status(), 200);
    coursePath = new URL(prof.url()).pathname;
    assert.match(coursePath, /^\/courses\/\d+$/);

    const roster = path.join(workDir, 'moodle.csv');
    await fs.writeFile(roster, `\uFEFFFirst name,Surname,ID number,Email address\n민지,김,202412345,${studentEmail}\n잘못,된,1,not-an-address\n`);
    const rosterForm = prof.locator('form[data-testid=roster-form]');
    await rosterForm.locator('input[type=file]').setInputFiles(roster);
    // The page's script reads the file into the form; wait until it has.
    await prof.waitForFunction(() => document.querySelector('form[data-roster-form] input[name=file_b64]').value.length > 0);
    response = await submit(prof, rosterForm.locator('button[type=submit]'));
    assert.equal(response.status(), 200);
    const preview = prof.locator('[data-testid=roster-preview]');
    assert.match(await preview.textContent(), /Moodle, UTF-8/);
    assert.equal(await preview.locator('[data-outcome=matched]').count(), 1);
    assert.equal(await preview.locator('[data-outcome=invalid]').count(), 1);
    assert.equal(await prof.locator('[data-testid=students] tbody tr').count(), 0, 'the preview imported nothing');
    response = await submit(prof, prof.locator('[data-testid=roster-confirm]'));
    assert.equal(response.status(), 200);
    assert.match(await prof.locator('[data-testid=students]').textContent(), /김 민지|민지 김/);
  });

  await step('the professor creates an assignment with the due time typed in Seoul time', async () => {
    const form = prof.locator('form[data-testid=assignment-form]');
    await form.locator('input[name=title]').fill('Portfolio');
    await form.locator('input[name=due_at]').fill('2030-06-01T23:59');
    await form.locator('textarea[name=rubric]').fill('Works: 6\nStyle: 4');
    const response = await submit(prof, form.locator('button[type=submit]'));
    assert.equal(response.status(), 200);
    assignmentPath = new URL(prof.url()).pathname;
    assignmentId = assignmentPath.split('/').pop();
    // Stored in UTC (23:59 in Seoul is 14:59 UTC), shown again in the browser's zone.
    const due = prof.locator('time[data-local]').first();
    assert.equal(new Date(await due.getAttribute('datetime')).toISOString(), '2030-06-01T14:59:00.000Z');
    assert.match(await due.textContent(), /11:59/);
    // The edit form shows the stored time in the browser's zone again, ready to change.
    assert.equal(await prof.locator('form[data-testid=edit-form] input[name=due_at]').inputValue(), '2030-06-01T23:59');
  });

  await step('the student submits the project from the assignment page', async () => {
    const context = await newContext(browser, { locale: 'ko-KR' });
    student = await context.newPage();
    await logIn(student, studentEmail);
    let response = await student.goto(`${server.base}${assignmentPath}`);
    assert.equal(response.status(), 200);
    const form = student.locator('form[data-testid=submit-form]');
    await form.locator('select[name=project]').selectOption(project);
    response = await submit(student, form.locator('button[type=submit]'));
    assert.equal(response.status(), 200);
    const mine = student.locator('[data-testid=my-submission]');
    assert.match(await mine.textContent(), new RegExp(`${project}--a${assignmentId}`));
    assert.equal(await student.locator('[data-testid=my-grade]').count(), 0);
    // fetch() may not set Host; node:http may.
    const status = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: server.gatewayPort, path: '/', headers: { Host: `${project}--a${assignmentId}.localhost` } }, (res) => {
        res.resume();
        resolve(res.statusCode);
      }).on('error', reject);
    });
    assert.equal(status, 302, 'an anonymous visitor is sent to log in: the snapshot is for staff and the submitter only');
  });

  await step('the professor grades on the grading page (autosaved) and releases the grades', async () => {
    let response = await prof.goto(`${server.base}${assignmentPath}`);
    assert.equal(response.status(), 200);
    response = await submit(prof, prof.locator('[data-testid=grade-link]').first());
    assert.equal(response.status(), 200);
    assert.match(await prof.locator('[data-testid=snapshot-link]').getAttribute('href'), new RegExp(`${project}--a${assignmentId}`));
    const form = prof.locator('form[data-testid=grade-form]');
    const saved = prof.waitForResponse((r) => r.url().endsWith('/grade') && r.request().method() === 'POST' && r.status() === 200);
    await form.locator('input[name=score]').nth(0).fill('6');
    await form.locator('input[name=score]').nth(1).fill('3.5');
    await form.locator('textarea[name=feedback]').fill('잘했어요');
    await saved;
    for (let i = 0; i < 50 && (await form.locator('[data-total]').textContent()).trim() !== '9.5'; i++) await sleep(200);
    assert.equal((await form.locator('[data-total]').textContent()).trim(), '9.5');
    response = await prof.goto(`${server.base}${assignmentPath}`);
    response = await submit(prof, prof.locator('form[data-testid=release-form] button[type=submit]'));
    assert.equal(response.status(), 200);
    response = await student.goto(`${server.base}${assignmentPath}`);
    assert.match(await student.locator('[data-testid=my-grade]').textContent(), /9\.5/);
  });

  await step('the professor downloads the Canvas CSV: BOM, columns and the Korean name', async () => {
    const response = await prof.goto(`${server.base}${coursePath}`);
    assert.equal(response.status(), 200);
    const [download] = await Promise.all([prof.waitForEvent('download'), prof.locator('[data-testid=export-links] a', { hasText: 'Canvas' }).click()]);
    const bytes = await fs.readFile(await download.path());
    assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 BOM first');
    const lines = bytes.subarray(3).toString('utf8').trim().split(/\r?\n/);
    assert.equal(lines[0], `Student,ID,SIS User ID,SIS Login ID,Section,Portfolio (${assignmentId})`);
    assert.equal(lines[1], `민지 김,,202412345,${studentEmail},,9.5`);
    assert.equal(lines.length, 2);
  });
});
