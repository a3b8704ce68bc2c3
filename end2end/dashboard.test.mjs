// The spine, end to end in a real browser: a device's line reaches the device list and a live
// plotters chart without a reload, after the page has hydrated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, openPage, connectDevice, saveScreenshot } from './harness.mjs';

const env = serverAndBrowser();

const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };

test('a device reading appears in the list and the live chart without a reload', async () => {
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, DESKTOP);
  await page.waitForSelector('.link-badge[data-status="live"]');
  await page.getByText('No devices yet').waitFor();
  // Survives only if the page is never reloaded.
  await page.evaluate(() => { window.__noReload = true; });

  const device = await connectDevice(env.server.wsUrl);
  await device.send('7,42,23.5');
  const row = page.locator('li[data-device-id="7"]');
  await row.waitFor({ timeout: 5_000 });
  assert.match(await row.locator('.latest').innerText(), /counter 42 · temp 23\.5/);
  assert.equal(await row.locator('.badge').innerText(), 'online');
  await page.waitForSelector('figure[data-field="temp"][data-points="1"] svg');

  await device.send('7,43,24.75');
  await page.waitForSelector('figure[data-field="temp"][data-points="2"]', { timeout: 5_000 });
  assert.match(await row.locator('.latest').innerText(), /temp 24\.75/);
  // The chart is a real plotters SVG: axes, caption and the series' polyline.
  const svg = await page.locator('figure[data-field="temp"] .chart-svg').innerHTML();
  assert.match(svg, /<polyline[^>]*stroke="#2563EB"/i);
  assert.match(svg, />\s*temp\s*</);
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page must not reload');

  await device.send('7,44,25.5');
  await page.waitForSelector('figure[data-field="temp"][data-points="3"]');
  await saveScreenshot(page, 'dashboard-desktop.png');

  device.close();
  await page.waitForSelector('li[data-device-id="7"] .badge.offline', { timeout: 5_000 });
  assert.deepEqual(errors, []);
  await context.close();
});

test('phone layout, and hostile device names are shown as text, never run', async () => {
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, PHONE);
  const hostile = '<img src=x onerror="window.__pwned=1">';
  const device = await connectDevice(env.server.wsUrl);
  await device.send(JSON.stringify({ id: hostile, temp: 21.5, hum: 40 }));
  await device.send(JSON.stringify({ id: hostile, temp: 21.75, hum: 41 }));

  const name = page.locator('.device-name', { hasText: hostile });
  await name.waitFor({ timeout: 5_000 });
  await name.click();
  await page.waitForSelector('figure[data-field="hum"][data-points="2"]');
  assert.equal(await page.locator('.devices img, .device-panel img').count(), 0, 'no element was injected');
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script ran');
  assert.equal(await page.locator('[data-testid="panel-title"]').innerText(), hostile);

  // A phone gets one column: the device list spans the viewport.
  const box = await page.locator('.devices').boundingBox();
  assert.ok(box.width > PHONE.width * 0.9, `device list is ${box.width}px wide on a ${PHONE.width}px phone`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px`);
  await saveScreenshot(page, 'dashboard-phone.png');

  device.close();
  assert.deepEqual(errors, []);
  await context.close();
});

test('the server-rendered page already shows devices before the wasm loads', async () => {
  const device = await connectDevice(env.server.wsUrl);
  await device.send('ssr-check,1,2');
  // Wait until the server holds the reading, then fetch the HTML without running any script.
  let html = '';
  for (let i = 0; i < 50 && !html.includes('ssr-check'); i++) {
    html = await (await fetch(env.server.baseUrl)).text();
    if (!html.includes('ssr-check')) await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(html, /data-device-id="ssr-check"/);
  assert.match(html, /<svg/);
  device.close();
});
