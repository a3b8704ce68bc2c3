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

test('each page loads its own bundle by content-hashed names, sent compressed and kept for good', async () => {
  const { request } = await import('node:http');
  // node's fetch would decompress and hide the size on the wire: a raw request instead.
  const get = (path, headers) => new Promise((resolve, reject) => {
    request(`${env.server.baseUrl}${path}`, { headers }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => { bytes += chunk.length; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes }));
    }).on('error', reject).end();
  });
  // What the browser fetches from /pkg/ on the overview, then on a device page: each page its
  // own module and nothing of the other's.
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.desktop);
  const fetched = [];
  page.on('request', (r) => { const path = new URL(r.url()).pathname; if (path.startsWith('/pkg/')) fetched.push(path); });
  await page.reload();
  await page.waitForSelector('main[data-hydrated="true"]');
  const overview = [...new Set(fetched)];
  const named = (paths, page, ext) => {
    const found = paths.filter((p) => /^\/pkg\/iothub(-[a-z]+)?\.[0-9a-f]{16}\.[a-z]+$/.test(p) && p.endsWith(`.${ext}`));
    assert.equal(found.length, 1, `one hashed .${ext} in ${paths}`);
    if (page) assert.ok(found[0].startsWith(`/pkg/iothub-${page}.`), `${found[0]} is the ${page} page's`);
    return found[0];
  };
  const [wasm, js, css] = [named(overview, 'overview', 'wasm'), named(overview, 'overview', 'js'), named(overview, null, 'css')];
  fetched.length = 0;
  await page.goto(`${env.server.baseUrl}/devices/some-device`);
  await page.waitForSelector('main[data-hydrated="true"]');
  named([...new Set(fetched)], 'device', 'wasm');
  assert.deepEqual(errors, []);
  await context.close();
  // Signing in is a plain form: that page loads no code at all.
  const login = await (await fetch(`${env.server.baseUrl}/login`)).text();
  assert.ok(login.includes(css), 'the sign-in page has the stylesheet');
  assert.doesNotMatch(login, /\.wasm|<script type="module"/);
  const plain = await get(wasm, {});
  const brotli = await get(wasm, { 'accept-encoding': 'gzip, deflate, br' });
  const zipped = await get(wasm, { 'accept-encoding': 'gzip' });
  assert.equal(plain.status, 200);
  assert.equal(plain.headers['content-encoding'], undefined);
  assert.equal(brotli.headers['content-encoding'], 'br');
  assert.equal(zipped.headers['content-encoding'], 'gzip');
  assert.equal(brotli.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.ok(brotli.bytes < zipped.bytes, `brotli ${brotli.bytes} B, gzip ${zipped.bytes} B`);
  assert.ok(zipped.bytes < plain.bytes / 2, `gzip ${zipped.bytes} B of ${plain.bytes} B`);
  for (const path of [js, css, '/pkg/iothub.css']) {
    assert.equal((await get(path, { 'accept-encoding': 'br' })).headers['content-encoding'], 'br', path);
  }
  // The offline page's stylesheet keeps its plain name, so it is revalidated: a 304 when unchanged.
  const sheet = await get('/pkg/iothub.css', { 'accept-encoding': 'br' });
  assert.equal(sheet.headers['cache-control'], 'no-cache');
  const again = await get('/pkg/iothub.css', { 'accept-encoding': 'br', 'if-modified-since': sheet.headers['last-modified'] });
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
