// Installable on a phone: the web app manifest and its icons are served to anyone (no data in
// them), every page links them, the service worker installs, and with the hub unreachable a
// page load shows the offline page instead of the browser's error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, openPage, saveScreenshot, until, VIEWPORTS } from './harness.mjs';

const env = serverAndBrowser();

test('the manifest and icons make the dashboard installable', async () => {
  const res = await fetch(`${env.server.baseUrl}/manifest.webmanifest`);
  assert.equal(res.status, 200, 'public, like the login page');
  const manifest = await res.json();
  assert.equal(manifest.display, 'standalone');
  assert.equal(manifest.start_url, '/');
  assert.match(manifest.theme_color, /^#[0-9a-f]{6}$/);
  for (const size of ['192x192', '512x512']) {
    const icon = manifest.icons.find((i) => i.sizes === size);
    assert.ok(icon, `a ${size} icon`);
    const png = await fetch(`${env.server.baseUrl}${icon.src}`);
    assert.equal(png.status, 200);
    assert.equal(png.headers.get('content-type'), 'image/png');
    const bytes = Buffer.from(await png.arrayBuffer());
    const [width, height] = [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
    assert.equal(`${width}x${height}`, size, 'the PNG is the size the manifest says');
  }
});

test('the bundle is sent gzipped, and revalidated rather than kept', async () => {
  const { request } = await import('node:http');
  // node's fetch would decompress and hide the size on the wire: a raw request instead.
  const get = (path, headers) => new Promise((resolve, reject) => {
    request(`${env.server.baseUrl}${path}`, { headers }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => { bytes += chunk.length; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes }));
    }).on('error', reject).end();
  });
  const plain = await get('/pkg/iothub_bg.wasm', {});
  const zipped = await get('/pkg/iothub_bg.wasm', { 'accept-encoding': 'gzip, deflate, br' });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(zipped.headers['content-encoding'], 'gzip');
  assert.equal(zipped.headers['cache-control'], 'no-cache');
  assert.ok(zipped.bytes < plain.bytes / 2, `gzip ${zipped.bytes} B of ${plain.bytes} B`);
  for (const path of ['/pkg/iothub.js', '/pkg/iothub.css']) {
    assert.equal((await get(path, { 'accept-encoding': 'gzip' })).headers['content-encoding'], 'gzip', path);
  }
  // Unchanged: a 304, nothing sent again.
  const again = await get('/pkg/iothub_bg.wasm', { 'accept-encoding': 'gzip', 'if-modified-since': zipped.headers['last-modified'] });
  assert.equal(again.status, 304);
});

test('phone: with the hub unreachable a page load shows the offline page', async () => {
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.phone);
  assert.equal(await page.getAttribute('link[rel="manifest"]', 'href'), '/manifest.webmanifest');
  assert.ok(await page.getAttribute('meta[name="theme-color"]', 'content'));
  // The service worker installs and takes over the page.
  await page.evaluate(() => navigator.serviceWorker.ready);
  await until('the worker controls the page', async () => {
    await page.reload();
    await page.waitForSelector('main[data-hydrated="true"]');
    return page.evaluate(() => navigator.serviceWorker.controller !== null);
  }, 10_000);

  await context.setOffline(true);
  await page.goto(`${env.server.baseUrl}/devices/anything`);
  await page.waitForSelector('[data-testid="offline"]');
  assert.match(await page.innerText('h1'), /cannot be reached/);
  await saveScreenshot(page, 'offline-phone.png');
  await context.setOffline(false);

  // Back online, pages come from the hub again (never from the worker's cache).
  await page.goto(`${env.server.baseUrl}/`);
  await page.waitForSelector('main[data-hydrated="true"]');
  assert.deepEqual(errors, []);
  await context.close();
});
