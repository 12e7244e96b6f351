// End-to-end: an admin (created with `slipway admin create-user`) logs in, opens the monitor and
// sees the host charts drawn with data (the sampler runs every second here), the components up,
// and the audit log listing their login. Runs against its own `slipway up` (private PostgreSQL
// and Redis, portal and gateway on free ports). Run with `node --test`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  HEALTH_TIMEOUT_MS, hermeticEnv, launchBrowser, newContext, slipwayBinary, startSlipway, stepper, stopSlipway, submit,
} from './harness.mjs';

const PASSWORD = 'correct horse battery';
const ADMIN = 'ops-admin@pusan.ac.kr';
const SCREENSHOT = path.join(os.tmpdir(), 'slipway-browser-monitor.png');
const SAMPLER_ENV = { SLIPWAY_MONITOR__INTERVAL: '1s' };

let server;
let browser;
let context;
let page;

before(async () => {
  server = await startSlipway({ prefix: 'slipway-browser-monitor-', env: SAMPLER_ENV });
  browser = await launchBrowser();
  context = await newContext(browser, { locale: 'en-US', viewport: { width: 1280, height: 1000 } });
  page = await context.newPage();
}, { timeout: HEALTH_TIMEOUT_MS + 45_000 });

after(async () => {
  await browser?.close().catch((error) => console.error(`closing the browser: ${error.message}`));
  await stopSlipway(server);
}, { timeout: 60_000 });

const url = (p) => `${server.base}${p}`;

test('an admin sees live charts and the audit trail', { timeout: 120_000 }, async (t) => {
  const step = stepper(t);

  await step('the first admin is created on the command line', async () => {
    const output = execFileSync(slipwayBinary(), ['admin', 'create-user', ADMIN, '--role', 'admin', '--password-stdin', '--data-dir', server.dataDir], {
      input: `${PASSWORD}\n`, env: hermeticEnv(SAMPLER_ENV), cwd: server.dataDir, encoding: 'utf8', timeout: 60_000,
    });
    assert.match(output, /created ops-admin@pusan\.ac\.kr .* role admin/);
  });

  await step('the admin logs in', async () => {
    await page.goto(url('/login'));
    const form = page.locator('form[action="/login"]');
    await form.locator('input[name=email]').fill(ADMIN);
    await form.locator('input[name=password]').fill(PASSWORD);
    await submit(page, form.locator('button[type=submit]'));
    assert.equal(await page.locator('[data-testid=logout]').count(), 1, 'logged in');
  });

  await step('the monitor draws the host charts with data', async () => {
    // The sampler takes one sample a second; CPU and network need two, so wait for a few.
    const deadline = Date.now() + 30_000;
    let points = {};
    for (;;) {
      const response = await page.goto(url('/admin/monitor'));
      assert.equal(response.status(), 200);
      points = {};
      for (const chart of ['host-cpu', 'host-memory', 'host-disk', 'host-net-rx']) {
        points[chart] = Number(await page.locator(`svg[data-chart="${chart}"]`).getAttribute('data-points'));
      }
      if (Object.values(points).every((n) => n >= 3)) break;
      assert.ok(Date.now() < deadline, `the charts did not fill within 30 s: ${JSON.stringify(points)}\n${server.log()}`);
      await sleep(1_000);
    }
    for (const chart of ['host-cpu', 'host-memory', 'host-disk', 'host-net-rx']) {
      const svg = page.locator(`svg[data-chart="${chart}"]`);
      const box = await svg.boundingBox();
      assert.ok(box && box.width > 200 && box.height > 60, `${chart} is drawn at a readable size: ${JSON.stringify(box)}`);
      const line = svg.locator('polyline.line').first();
      const coordinates = (await line.getAttribute('points')).trim().split(/\s+/);
      assert.ok(coordinates.length >= 2, `${chart} has a line through its points: ${coordinates}`);
      const lineBox = await line.boundingBox();
      assert.ok(lineBox && lineBox.width > 0, `${chart}'s line is visible`);
    }
    const memory = await page.locator('svg[data-chart="host-memory"] .title').textContent();
    assert.match(memory, /Memory/);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`monitor screenshot: ${SCREENSHOT}`);
  });

  await step('the components are up and the ranges switch', async () => {
    for (const component of ['postgresql', 'redis']) {
      const row = page.locator(`[data-testid=components] tr[data-component="${component}"]`);
      assert.match(await row.textContent(), /up/, `${component} is up`);
    }
    assert.equal(await page.locator('[data-testid=no-alerts]').count(), 1, 'no open alerts');
    await page.locator('.ranges a', { hasText: '24 hours' }).click();
    await page.waitForURL(/range=24h/);
    assert.equal(await page.locator('svg[data-chart="host-cpu"]').count(), 1, 'the day chart is there too');
  });

  await step('the audit log lists the login and exports it', async () => {
    await page.goto(url('/admin/audit?action=account.login'));
    const table = page.locator('[data-testid=audit-table]');
    const listed = await table.textContent();
    assert.match(listed, /ops-admin@pusan\.ac\.kr/, 'the login names the admin');
    assert.match(listed, /account\.login/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-testid=audit-csv]').click()]);
    assert.match(download.suggestedFilename(), /^slipway-audit-\d{4}-\d{2}-\d{2}\.csv$/);
  });
});
