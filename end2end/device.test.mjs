// The device page in a real browser, at a phone and a desktop size: a chart per field gains
// points live, axes carry the registered unit and the browser's time zone, the window picker
// loads stored history, and the console pauses, clears and follows the newest line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverAndBrowser, openPage, saveScreenshot, sidewaysOverflow, until, VIEWPORTS, signIn,
} from './harness.mjs';

const env = serverAndBrowser();

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: live charts, history windows and the console`, async () => {
    const id = `dev-${size}`;
    const device = await env.server.device(id);
    await device.send(JSON.stringify({
      register: {
        name: `Greenhouse ${size}`,
        fields: [{ name: 'counter' }, { name: 'temp', unit: '°C' }],
        commands: [{ name: 'LED', min: 0, max: 1 }],
      },
    }));
    await device.send(`${id},1,20.5`);

    // A browser in Berlin: the time axis says so.
    const context = await env.browser.newContext({ viewport, timezoneId: 'Europe/Berlin' });
    await signIn(context, env.server.baseUrl);
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
    await page.goto(`${env.server.baseUrl}/`);
    await page.waitForSelector('main[data-hydrated="true"]');
    // Into the device page by its card (a page load: the server renders every page).
    await page.locator(`li.card[data-device-id="${id}"] a`).click();
    await page.waitForURL(`**/devices/${id}`);
    await page.waitForSelector('main[data-hydrated="true"]');
    // Survives only if the page is never reloaded from here on.
    await page.evaluate(() => { window.__noReload = true; });
    assert.equal(await page.locator('[data-testid="device-title"]').innerText(), `Greenhouse ${size}`);
    await page.waitForSelector('figure[data-field="temp"][data-points="1"] svg');

    // Live: new readings extend the chart.
    for (let i = 2; i <= 4; i++) await device.send(`${id},${i},${20 + i}`);
    await page.waitForSelector('figure[data-field="temp"][data-points="4"]', { timeout: 5_000 });
    const svg = await page.locator('figure[data-field="temp"] .chart-svg').innerHTML();
    assert.match(svg, /<polyline[^>]*stroke="#2563EB"/i);
    assert.match(svg, /°C/, 'the value axis names the unit');
    assert.match(svg, /time \(UTC\+0[12]:00\)/, 'the time axis is in the browser zone');
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page must not reload');
    assert.match(await page.locator('[data-testid="registered-fields"]').innerText(), /temp \(°C\)/);

    // Charts are drawn for the width they get: their labels stay readable on a phone.
    const heights = await page.$$eval('figure[data-field="temp"] svg text', (texts) =>
      texts.filter((t) => t.textContent.trim()).map((t) => t.getBoundingClientRect().height));
    assert.ok(heights.length > 4 && Math.min(...heights) >= 12, `chart label heights ${heights}`);
    if (size === 'phone') {
      // Under the charts come the command form, then the console.
      const top = async (selector) => (await page.locator(selector).boundingBox()).y;
      assert.ok(await top('.command-form') < await top('.console'), 'the command form before the console');
      assert.ok(await top('.charts') < await top('.command-form'), 'the charts first');
      // One row of top bar.
      const bar = await page.locator('header.topbar').boundingBox();
      assert.ok(bar.height < 70, `the top bar is one row (${bar.height} px)`);
    }

    // The console: newest at the bottom, pause holds the view, clear empties it.
    const consoleLines = page.locator('.console-lines li');
    await until('console lines', async () => (await consoleLines.count()) >= 4);
    assert.match(await consoleLines.last().innerText(), new RegExp(`${id},4,24`));
    await page.click('.console-pause');
    const frozen = await consoleLines.count();
    await device.send(`${id},5,25`);
    await page.waitForSelector('figure[data-field="temp"][data-points="5"]');
    assert.equal(await consoleLines.count(), frozen, 'a paused console does not move');
    await page.click('.console-pause');
    await until('the new line after resume', async () => /,5,25/.test(await consoleLines.last().innerText()));
    await page.click('.console-clear');
    await until('an empty console', async () => (await consoleLines.count()) === 0);
    await device.send(`${id},6,26`);
    await until('a line after clear', async () => (await consoleLines.count()) === 1);
    // Many lines: the list follows the newest one.
    for (let i = 7; i < 47; i++) await device.send(`${id},${i},20`);
    await until('the console scrolled to the newest line', () => page.evaluate(() => {
      const list = document.querySelector('.console-lines');
      return list.scrollHeight > list.clientHeight
        && list.scrollTop + list.clientHeight >= list.scrollHeight - 2
        && list.lastElementChild?.textContent.includes(',46,20');
    }));
    await saveScreenshot(page, `device-${size}.png`);

    // History: the 5 min window comes from the store, spanning the whole window.
    await page.click('.window-picker a[data-window="5m"]');
    await page.waitForURL(`**/devices/${id}?window=5m`);
    await page.waitForSelector('main[data-hydrated="true"]');
    const history = page.locator('figure[data-field="temp"][data-window="5m"]');
    await history.waitFor({ timeout: 10_000 });
    assert.ok(Number(await history.getAttribute('data-points')) >= 1);
    assert.match(await history.locator('.chart-svg').innerHTML(), /°C/);
    assert.equal(await page.locator('.window-picker a[aria-current="page"]').innerText(), '5 min');
    const csv = await page.locator('.csv-link', { hasText: 'this window' }).getAttribute('href');
    const body = await (await page.request.get(env.server.baseUrl + csv)).text();
    assert.match(body, /^time_utc,device_time_utc,counter,temp\n/);
    assert.ok(body.trim().split('\n').length >= 40, 'the window holds the readings sent');
    await saveScreenshot(page, `device-history-${size}.png`);
    await page.click('.window-picker a[data-window="live"]');
    await page.waitForSelector('main[data-hydrated="true"]');
    await page.waitForSelector('figure[data-field="temp"][data-window="live"]');

    assert.ok(await sidewaysOverflow(page) <= 0, 'the page must not scroll sideways');
    if (size === 'phone') {
      // One column, charts before the command form.
      const charts = await page.locator('.charts').boundingBox();
      const form = await page.locator('form.command-form').boundingBox();
      assert.ok(charts.y < form.y, 'charts come first on a phone');
      assert.ok(charts.width > viewport.width * 0.85, `charts take the width (${charts.width}px)`);
    }

    device.close();
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('a device page for a device the server has not seen says so', async () => {
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.desktop, '/devices/ghost');
  await page.waitForSelector('[data-testid="unknown-device"]');
  await page.click('.window-picker a[data-window="1h"]');
  await page.waitForSelector('[data-testid="no-history"]');
  const missing = await page.request.get(`${env.server.baseUrl}/no/such/page`);
  assert.equal(missing.status(), 404);
  assert.match(await missing.text(), /Page not found/);
  assert.deepEqual(errors, []);
  await context.close();
});
