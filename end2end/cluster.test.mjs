// Several hubs as one (--cluster-nats), in a real browser: a device connected to hub A is live
// on hub B's device page (its chart gains points as A receives them; the page says which hub
// holds it), a command sent from B's page reaches it and shows acked there, and it goes offline
// on B when it leaves A. Needs the NATS server that
// scripts/test.sh starts (IOTHUB_TEST_NATS_URL); without it the test is skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, signIn, connectDevice, until, VIEWPORTS } from './harness.mjs';

const nats = process.env.IOTHUB_TEST_NATS_URL;

test('a device on hub A is live in a browser on hub B', { skip: !nats && 'IOTHUB_TEST_NATS_URL is not set' }, async () => {
  const prefix = `e2e${process.pid}_${Date.now()}`;
  const hub = (id) => startServer(
    ['--cluster-nats', nats, '--cluster-prefix', prefix, '--cluster-hub-id', id],
    { tokenless: true },
  );
  const a = await hub('hub-a');
  const b = await hub('hub-b');
  const browser = await launchBrowser();
  try {
    const id = 'cluster-7';
    const device = await connectDevice(`${a.wsUrl}?id=${id}`);
    await device.send(`${id},1,20.5`);

    const context = await browser.newContext({ viewport: VIEWPORTS.desktop });
    await signIn(context, b.baseUrl);
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await until('hub B knows the device', async () => {
      await page.goto(`${b.baseUrl}/devices/${id}`);
      return (await page.locator('.device-head .badge.online').count()) === 1;
    });
    await page.waitForSelector('main[data-hydrated="true"]');
    assert.match(await page.locator('main').innerText(), /via hub-a/, 'the page says which hub holds it');

    // Readings sent to A draw on B's chart, live.
    await page.waitForSelector('figure[data-field="temp"] svg');
    const before = Number(await page.locator('figure[data-field="temp"]').getAttribute('data-points'));
    for (let i = 2; i <= 6; i++) await device.send(`${id},${i},${20 + i}`);
    await page.waitForSelector(`figure[data-field="temp"][data-points="${before + 5}"]`, { timeout: 5_000 });

    // A command from B's page reaches the device on A (numbered by A, which sends it); the
    // device's ack, taken by A, shows on B's page.
    await page.fill('input[name="variable"]', 'LED');
    await page.fill('input[name="value"]', '1');
    await page.click('form.command-form button[type="submit"]');
    const line = await until('the command at the device', () => device.received.find((m) => m.startsWith('LED=1,seq=')));
    await device.send(`ack=${line.split('seq=')[1]}`);
    await page.waitForSelector(`li[data-device-id="${id}"][data-status="acked"]`, { timeout: 5_000 });

    // The device leaves A: B's page shows it offline.
    device.close();
    await page.waitForSelector('.device-head .badge.offline', { timeout: 5_000 });
    assert.deepEqual(errors, []);
    await context.close();
  } finally {
    await browser.close();
    await a.stop();
    await b.stop();
  }
});
