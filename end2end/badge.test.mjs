// The connection badge: it shows the stream dropping when the server stops, reconnects by
// itself when the server is back, and the page catches up without a reload.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, openPage, saveScreenshot, VIEWPORTS } from './harness.mjs';

const env = serverAndBrowser();

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: the badge follows a server stop and restart, and the page catches up`, async () => {
    const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, viewport);
    await page.waitForSelector('.link-badge[data-status="live"]');
    await page.evaluate(() => { window.__noReload = true; });

    await env.server.halt();
    await page.waitForSelector('.link-badge[data-status="reconnecting"]', { timeout: 10_000 });
    await saveScreenshot(page, `reconnecting-${size}.png`);

    await env.server.start();
    // A device that speaks before the page is back shows up: the stream starts over with a
    // snapshot.
    const device = await env.server.device(`after-restart-${size}`);
    await device.send(`after-restart-${size},1,5`);
    await page.waitForSelector('.link-badge[data-status="live"]', { timeout: 20_000 });
    await page.waitForSelector(`li.card[data-device-id="after-restart-${size}"]`, { timeout: 5_000 });
    assert.equal(await page.evaluate(() => window.__noReload), true, 'the page must not reload');
    device.close();
    // The failed requests while the server was down are logged by the browser as errors;
    // anything else (a panic, a hydration error) is not expected.
    assert.deepEqual(errors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED|Failed to fetch/.test(e)), []);
    await context.close();
  });
}
