// End-to-end: a student signs up from a Korean browser, verifies the mailed link, logs in,
// edits the profile, switches the language and logs out, against a real `slipway up` with its
// own private PostgreSQL and Redis in a temporary data dir. Run with `node --test` (README.md).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

import {
  ALLOWED_DOMAIN, HEALTH_TIMEOUT_MS, STOP_TIMEOUT_MS, VERIFY_LINK,
  decodeEncodedWords, launchBrowser, newContext, startSlipway, stepper, stopSlipway, submit, waitForMail,
} from './harness.mjs';

const PASSWORD = 'correct horse battery';
const SCREENSHOT = path.join(os.tmpdir(), 'slipway-browser-profile.png');

let server;
let browser;
let context;
let page;

before(async () => {
  server = await startSlipway({ prefix: 'slipway-browser-signup-' });
  browser = await launchBrowser();
  context = await newContext(browser, { locale: 'ko-KR', viewport: { width: 1100, height: 900 } });
  page = await context.newPage();
}, { timeout: HEALTH_TIMEOUT_MS + 45_000 });

after(async () => {
  await browser?.close().catch((error) => console.error(`closing the browser: ${error.message}`));
  await stopSlipway(server);
}, { timeout: STOP_TIMEOUT_MS + 15_000 });

test('a student signs up from a Korean page, verifies by mail, logs in, edits the profile and logs out', { timeout: 100_000 }, async (t) => {
  const email = `s${randomBytes(5).toString('hex')}@${ALLOWED_DOMAIN}`;
  const url = (p) => `${server.base}${p}`;
  const pathname = () => new URL(page.url()).pathname;
  let verifyLink;

  // Steps build on each other: once one fails, the later ones fail too (never skipped), naming the cause.
  const step = stepper(t);

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
    const mail = await waitForMail(server, email, VERIFY_LINK);
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
