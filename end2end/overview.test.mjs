// The overview in a real browser, at a phone and a desktop size: devices that connect appear as
// cards live (no reload), counts follow, filter and sort work, hostile names stay text, and the
// server-rendered HTML already has the devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverAndBrowser, openPage, saveScreenshot, sidewaysOverflow, until, VIEWPORTS, fetchSignedIn,
} from './harness.mjs';

const env = serverAndBrowser();

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: devices appear as live cards; counts, filter and sort follow`, async () => {
    const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, viewport);
    await page.waitForSelector('.link-badge[data-status="live"]');
    // Survives only if the page is never reloaded.
    await page.evaluate(() => { window.__noReload = true; });

    const tag = size; // each size has its own devices, on the same server
    const kitchen = await env.server.device(`k-${tag}`);
    await kitchen.send(JSON.stringify({
      register: { name: `Kitchen ${tag}`, fields: [{ name: 'temp', unit: '°C' }] },
      id: `k-${tag}`,
    }));
    await kitchen.send(`id=k-${tag},counter=1,temp=21.5`);
    const attic = await env.server.device(`a-${tag}`);
    await attic.send(`a-${tag},1,30`);

    const card = page.locator(`li.card[data-device-id="k-${tag}"]`);
    await card.waitFor({ timeout: 5_000 });
    // The card may appear a moment before the registration that names it.
    await card.locator('.device-name', { hasText: `Kitchen ${tag}` }).waitFor();
    await until('temp 21.5 °C on the card', async () => /temp\s*21\.5 °C/.test(await card.locator('.latest').innerText()));
    assert.equal(await card.locator('.badge').innerText(), 'online');

    // A new value reaches the card and its sparkline without a reload.
    await kitchen.send(`id=k-${tag},counter=2,temp=22.25`);
    await until('temp 22.25 °C on the card', async () => /temp\s*22\.25 °C/.test(await card.locator('.latest').innerText()));
    const points = await card.locator('.sparkline polyline').getAttribute('points');
    assert.equal(points.trim().split(/\s+/).length, 2, `sparkline points: ${points}`);
    assert.match(await card.locator('.last-seen').innerText(), /last seen (just now|\d+ s ago)/);
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page must not reload');

    // Filter by name (case-insensitive) and by id.
    const filter = page.getByLabel('Filter devices by id or name');
    await filter.fill(`kitchen ${tag}`);
    await until('one card for the name filter', async () => (await page.locator('li.card').count()) === 1);
    await filter.fill(`a-${tag}`);
    await until('one card for the id filter', async () => (await page.locator('li.card').count()) === 1);
    await page.locator(`li.card[data-device-id="a-${tag}"]`).waitFor();
    await filter.fill('no such device');
    await page.getByText('No device matches the filter.').waitFor();
    await filter.fill(tag);

    // The attic goes offline: the counts follow, and "offline first" puts it on top.
    attic.close();
    await page.waitForSelector(`li.card[data-device-id="a-${tag}"] .badge.offline`, { timeout: 5_000 });
    await page.selectOption('select[name="sort"]', 'offline-first');
    await until('the offline device first', async () => (await page.locator('li.card').first().getAttribute('data-device-id')) === `a-${tag}`);
    await page.selectOption('select[name="sort"]', 'name');
    await until('the offline device first by name', async () => (await page.locator('li.card').first().getAttribute('data-device-id')) === `a-${tag}`);
    const counts = await page.locator('[data-testid="device-counts"]').textContent();
    assert.match(counts, /\d+ online · [1-9]\d* offline/);

    await filter.fill('');
    assert.ok(await sidewaysOverflow(page) <= 0, 'the page must not scroll sideways');
    if (size === 'phone') {
      const box = await page.locator('.devices').boundingBox();
      assert.ok(box.width > viewport.width * 0.9, `cards take the phone's width (${box.width}px)`);
    }
    await saveScreenshot(page, `overview-${size}.png`);

    kitchen.close();
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('hostile device names and units are shown as text, never run', async () => {
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.phone);
  // The page's data travels in a script element of its head: a name that closes one must
  // stay text there too.
  const hostile = '</script><img src=x onerror="window.__pwned=1">';
  const named = await env.server.device('evil');
  await named.send(JSON.stringify({ register: { name: hostile, fields: [{ name: 'hum', unit: '<b>%</b>' }] } }));
  await named.send(JSON.stringify({ hum: 40 }));
  const byId = await env.server.device(hostile);
  await byId.send(JSON.stringify({ id: hostile, temp: 21.5 }));

  const card = page.locator('li.card[data-device-id="evil"]');
  await card.locator('.device-name', { hasText: hostile }).waitFor({ timeout: 5_000 });
  await page.locator(`li.card[data-device-id='${hostile}'] .device-name`).waitFor();
  await card.locator('a').click();
  await page.waitForURL('**/devices/evil');
  await page.waitForSelector('main[data-hydrated="true"]');
  await page.waitForSelector('figure[data-field="hum"] svg');
  assert.equal(await page.locator('[data-testid="device-title"]').innerText(), hostile);
  assert.match(await page.locator('figure[data-field="hum"] .chart-svg').innerHTML(), /&lt;b&gt;%&lt;\/b&gt;/);
  assert.equal(await page.locator('img, main b').count(), 0, 'no element was injected');
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script ran');
  // The device whose id is hostile has its own page too.
  await page.goto(`${env.server.baseUrl}/devices/${encodeURIComponent(hostile)}`);
  await page.waitForSelector('main[data-hydrated="true"]');
  assert.equal(await page.locator('[data-testid="device-title"]').innerText(), hostile);
  await page.waitForSelector('figure[data-field="temp"] svg');
  assert.equal(await page.locator('img, main b').count(), 0, 'no element was injected');
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script ran');
  named.close();
  byId.close();

  // A 64-character id with nothing to break at: its card heading gives it the card's width.
  const longId = 'greenhouse-north-wing-soil-moisture-sensor-bed-7-probe-a-0123456';
  const long = await env.server.device(longId);
  await long.send(`${longId},1,20`);
  await page.goto(`${env.server.baseUrl}/?q=${longId}`);
  const longCard = page.locator(`li.card[data-device-id="${longId}"]`);
  await longCard.waitFor({ timeout: 5_000 });
  const cardBox = await longCard.boundingBox();
  const nameBox = await longCard.locator('.device-name').boundingBox();
  assert.ok(nameBox.width > cardBox.width * 0.75, `the name wraps in the card's width (${nameBox.width} of ${cardBox.width} px)`);
  assert.ok(await sidewaysOverflow(page) <= 0, 'the page must not scroll sideways');
  long.close();
  assert.deepEqual(errors, []);
  await context.close();
});

test('the server-rendered pages already show devices before the wasm loads', async () => {
  const device = await env.server.device('ssr-check');
  await device.send('ssr-check,1,2');
  // Wait until the server holds the reading, then fetch the HTML without running any script.
  let html = '';
  for (let i = 0; i < 50 && !html.includes('ssr-check'); i++) {
    html = await (await fetchSignedIn(env.server.baseUrl, '/')).text();
    if (!html.includes('ssr-check')) await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(html, /data-device-id="ssr-check"/);
  assert.match(html, /<svg[^>]*class="sparkline"/);
  const devicePage = await (await fetchSignedIn(env.server.baseUrl, '/devices/ssr-check')).text();
  assert.match(devicePage, /data-testid="device-title"[^>]*>ssr-check</);
  assert.match(devicePage, /<figure data-field="temp"[^>]*class="chart"/);
  device.close();
});

test('a fleet larger than a page: the server lists one page, the pager and the address bar follow', async () => {
  // 50 devices: a page of 48 and two more.
  const ids = Array.from({ length: 50 }, (_, i) => `pg-${String(i).padStart(2, '0')}`);
  const devices = [];
  for (let i = 0; i < ids.length; i += 10) {
    devices.push(...await Promise.all(ids.slice(i, i + 10).map((id) => env.server.device(id))));
  }
  await Promise.all(devices.map((d, i) => d.send(`${ids[i]},1,20`)));

  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.desktop, '/?q=pg-');
  await page.evaluate(() => { window.__noReload = true; });
  const cards = page.locator('li.card');
  const summary = page.locator('[data-testid="page-summary"]');
  await until('a full first page', async () => (await cards.count()) === 48 && (await summary.innerText()) === 'Showing 1–48 of 50');
  assert.equal(await cards.first().getAttribute('data-device-id'), 'pg-00');
  const counts = await page.locator('[data-testid="device-counts"]').textContent();
  assert.ok(Number(counts.match(/(\d+) online/)[1]) >= 50, `the counts are the whole fleet's: ${counts}`);

  // The next page, without a reload; the address bar says where we are.
  await page.getByRole('link', { name: 'Next ›' }).click();
  await until('the second page', async () => (await summary.innerText()) === 'Showing 49–50 of 50');
  assert.deepEqual(await cards.evaluateAll((li) => li.map((l) => l.dataset.deviceId)), ['pg-48', 'pg-49']);
  assert.equal(new URL(page.url()).search, '?q=pg-&page=2');
  assert.equal(await page.getByRole('link', { name: 'Next ›' }).count(), 0, 'no page after the last');

  // A device that comes now and belongs on this page joins it.
  const late = await env.server.device('pg-50');
  await late.send('pg-50,1,20');
  await until('the newcomer on the page', async () => (await cards.count()) === 3);

  // Filtering starts again at the first page.
  await page.getByLabel('Filter devices by id or name').fill('PG-07');
  await until('one card for the filter', async () => (await cards.count()) === 1 && (await cards.first().getAttribute('data-device-id')) === 'pg-07');
  assert.equal(new URL(page.url()).search, '?q=PG-07');
  assert.equal(await page.evaluate(() => window.__noReload), true, 'the page must not reload');

  // Without the WebAssembly, the address alone gives the same page.
  const html = await (await fetchSignedIn(env.server.baseUrl, '/?q=pg-&page=2')).text();
  const listed = [...html.matchAll(/<li [^>]*data-device-id="([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(listed, ['pg-48', 'pg-49', 'pg-50']);
  assert.match(html, /Showing 49–51 of 51/);
  assert.match(html, /<input type="search" name="q"[^>]* value="pg-"/, 'the filter box says what it filters');

  for (const d of [...devices, late]) d.close();
  assert.deepEqual(errors, []);
  await context.close();
});
