// Roles and API tokens as people meet them: a viewer signed in on a phone and a desktop sees
// the devices but no command form, no console input and no Tokens page; an admin makes an API
// token on the Tokens page, sees it once, and a program uses it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverAndBrowser, openPage, saveScreenshot, sidewaysOverflow, signInAs, until, VIEWPORTS,
} from './harness.mjs';

const env = serverAndBrowser();
const VIEWER_PASSWORD = 'vera has a long password';

test('a viewer sees devices but nothing that changes them, at phone and desktop sizes', async () => {
  await env.server.cli(['user', 'add', 'vera', '--role', 'viewer'], `${VIEWER_PASSWORD}\n`);
  const device = await env.server.device('porch');
  await device.send(JSON.stringify({ register: { commands: [{ name: 'LED', min: 0, max: 1 }] } }));
  await device.send('porch,1,19.5');
  for (const [size, viewport] of Object.entries(VIEWPORTS)) {
    const context = await env.browser.newContext({ viewport });
    await signInAs(context, env.server.baseUrl, 'vera', VIEWER_PASSWORD);
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${env.server.baseUrl}/`);
    await page.waitForSelector('main[data-hydrated="true"]');
    await page.waitForSelector('.card', { timeout: 10_000 });
    assert.equal(await page.innerText('[data-testid="user"]'), 'vera');
    assert.equal(await page.locator('.command-form').count(), 0, 'no command form');
    assert.equal(await page.locator('a[href="/tokens"]').count(), 0, 'no Tokens link');

    await page.goto(`${env.server.baseUrl}/devices/porch`);
    await page.waitForSelector('main[data-hydrated="true"]');
    await page.waitForSelector('.console');
    assert.equal(await page.locator('.command-form').count(), 0, 'no command form');
    assert.equal(await page.locator('.console-send').count(), 0, 'no console input');
    assert.equal(await page.locator('.remove-device').count(), 0, 'no remove form');
    assert.equal(await page.locator('.controls').count(), 0, 'no switch for the declared LED');
    assert.ok(await sidewaysOverflow(page) <= 0, 'the page fits the screen');
    await saveScreenshot(page, `viewer-device-${size}.png`);

    const refused = await page.goto(`${env.server.baseUrl}/tokens`);
    assert.equal(refused.status(), 403);
    assert.match(await page.innerText('body'), /does not allow/);
    assert.deepEqual(errors, []);
    await context.close();
  }
  device.close();
});

test('an admin makes an API token on the Tokens page and a program uses it', async () => {
  const { page, errors, context } = await openPage(
    env.browser, env.server.baseUrl, VIEWPORTS.desktop, '/tokens',
  );
  await page.fill('input[name="api_label"]', 'Home Assistant');
  await page.selectOption('select[name="scope"]', 'operator');
  await page.fill('input[name="expires_days"]', '30');
  await page.click('section[aria-label="New API token"] button[type="submit"]');
  const secret = await (await page.waitForSelector('[data-testid="new-api-token"]')).innerText();
  assert.match(secret, /^iothub_api_[0-9a-f]{64}$/);
  const row = page.locator('tr[data-api-token-id]', { hasText: 'Home Assistant' });
  await row.waitFor();
  assert.match(await row.innerText(), /operator/);
  await saveScreenshot(page, 'tokens-api-desktop.png');

  // The program: the REST API with the token, and the reference page linked from here.
  const devices = await fetch(`${env.server.baseUrl}/api/v1/devices`, {
    headers: { authorization: `Bearer ${secret}` },
  });
  assert.equal(devices.status, 200);
  assert.ok(Array.isArray(await devices.json()));
  const docsLink = await page.getAttribute('a[href="/api/v1/docs"]', 'href');
  const docs = await context.newPage();
  await docs.goto(env.server.baseUrl + docsLink);
  assert.equal(await docs.title(), 'IoT hub API');
  assert.match(await docs.innerText('body'), /POST \/api\/v1\/commands/);
  await docs.close();

  // Revoked on the page: the program is refused from then on.
  await row.locator('button.revoke').click();
  await until('the token revoked', async () => (await row.getAttribute('data-revoked')) === 'true');
  const refused = await fetch(`${env.server.baseUrl}/api/v1/devices`, {
    headers: { authorization: `Bearer ${secret}` },
  });
  assert.equal(refused.status, 401);
  assert.deepEqual(errors, []);
  await context.close();
});
