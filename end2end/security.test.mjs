// Signing in and device tokens, as a person does it in the browser: the login page (wrong
// password, right password, back to where they were going), the session cookie's flags,
// creating a token for a device (with a hostile label), the device connecting with it,
// revoking it (the device is cut off), signing out, and the session expiring mid-page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverAndBrowser, startServer, openPage, connectDevice, saveScreenshot, sidewaysOverflow,
  until, VIEWPORTS, ADMIN_PASSWORD,
} from './harness.mjs';
import WebSocket from 'ws';

const env = serverAndBrowser();

/** Opens a WebSocket as a device; resolves with the HTTP status if the handshake is refused. */
function tryConnect(url) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
    ws.once('error', () => resolve({ status: 0 }));
  });
}

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: sign in, create a device token, the device connects, revoke it, sign out`, async () => {
    const context = await env.browser.newContext({ viewport });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));

    // A page load without a session lands on the login page, remembering where it was going.
    await page.goto(`${env.server.baseUrl}/tokens`);
    assert.match(page.url(), /\/login\?next=%2Ftokens$/);
    await saveScreenshot(page, `login-${size}.png`);
    assert.ok(await sidewaysOverflow(page) <= 0, 'the login page fits the screen');

    await page.fill('input[name="user"]', 'admin');
    await page.fill('input[name="password"]', 'not the password');
    await page.click('button[type="submit"]');
    await page.waitForSelector('[data-testid="login-failed"]');
    assert.match(page.url(), /failed=1/);

    await page.fill('input[name="user"]', 'admin');
    await page.fill('input[name="password"]', ADMIN_PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${env.server.baseUrl}/tokens`);
    await page.waitForSelector('main[data-hydrated="true"]');
    await until('the user in the top bar', async () => (await page.innerText('[data-testid="user"]')) === 'admin');
    const [cookie] = (await context.cookies()).filter((c) => c.name === 'iothub_session');
    assert.equal(cookie.httpOnly, true, 'scripts cannot read the session');
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie), '', 'not visible to the page');
    assert.equal(await page.locator('[data-testid="tokenless-warning"]').count(), 0);

    // A token for a new device, labelled with markup that must stay text.
    const id = `kitchen-${size}`;
    const label = '<img src=x onerror="window.__pwned=1">';
    await page.fill('input[name="device_id"]', id);
    await page.fill('input[name="label"]', label);
    await page.click('.token-form button[type="submit"]');
    const secret = await (await page.waitForSelector('[data-testid="new-token"]')).innerText();
    assert.match(secret, /^iot_[0-9a-f]{64}$/);
    const row = page.locator('tr', { hasText: id });
    await row.waitFor();
    assert.equal(await row.locator('td').nth(2).innerText(), label, 'the label is shown as text');
    assert.equal(await page.locator('.token-list img').count(), 0);
    await saveScreenshot(page, `tokens-${size}.png`);
    assert.ok(await sidewaysOverflow(page) <= 0, 'the tokens page fits the screen');

    // Without the token the device is refused; with it, it connects and its reading shows.
    assert.equal((await tryConnect(`${env.server.wsUrl}?id=${id}`)).status, 401);
    const device = await connectDevice(`${env.server.wsUrl}?token=${secret}`);
    await device.send(`${id},1,21.5`);
    const overview = await openPage(env.browser, env.server.baseUrl, viewport);
    await overview.page.waitForSelector(`li.card[data-device-id="${id}"]`);
    await overview.context.close();

    // Revoking it from the page cuts the device off, and it cannot come back with it.
    const closed = new Promise((resolve) => device.ws.once('close', (code, reason) => resolve([code, reason.toString()])));
    await row.locator('button.revoke').click();
    await page.locator(`tr[data-revoked="true"]`, { hasText: id }).waitFor();
    assert.deepEqual(await closed, [1008, 'device token revoked']);
    assert.equal((await tryConnect(`${env.server.wsUrl}?token=${secret}`)).status, 401);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no script ran');

    // Signing out ends the session: the next page load asks to sign in again.
    // On a phone, signing out is behind the top bar's menu button.
    if (size === 'phone') await page.click('button.menu-button');
    await page.click('text=Sign out');
    await page.waitForURL(/\/login$/);
    await page.goto(`${env.server.baseUrl}/`);
    assert.match(page.url(), /\/login\?next=%2F$/);
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('a page whose session ends elsewhere goes to the login page by itself', async () => {
  const { page, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.desktop, '/devices/7');
  await page.waitForSelector('.link-badge[data-status="live"]');
  // End the session from elsewhere, as signing out in another tab does. The open stream
  // notices within seconds (the server checks it every 5 s) and ends; the page's reconnect
  // is refused and it goes to the login page. Nothing else happens to the page.
  const [cookie] = (await context.cookies()).filter((c) => c.name === 'iothub_session');
  const out = await fetch(`${env.server.baseUrl}/logout`, {
    method: 'POST', headers: { cookie: `iothub_session=${cookie.value}` }, redirect: 'manual',
  });
  assert.equal(out.status, 303);
  await page.waitForURL(/\/login\?next=%2Fdevices%2F7$/, { timeout: 20_000 });
  await context.close();
});

test('with tokenless devices allowed, every page warns', async () => {
  const server = await startServer([], { tokenless: true });
  try {
    const { page, context } = await openPage(env.browser, server.baseUrl, VIEWPORTS.phone);
    const warning = await page.waitForSelector('[data-testid="tokenless-warning"]');
    assert.match(await warning.innerText(), /without a token/);
    await saveScreenshot(page, 'tokenless-warning-phone.png');
    await context.close();
  } finally {
    await server.stop();
  }
});
