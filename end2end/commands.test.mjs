// Commands from the dashboard: to one device (arrives only there, shows acked), to all devices,
// an invalid value (error shown, nothing sent), and a raw console line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, openPage, saveScreenshot, until, VIEWPORTS } from './harness.mjs';

const env = serverAndBrowser();

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: commands reach one device or all, show their status, and bad values are refused`, async () => {
    const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, viewport);
    // Each size has its own devices; the other size's are gone (closed) by now.
    const [idA, idB] = [`a-${size}`, `b-${size}`];
    const a = await env.server.device(idA);
    const b = await env.server.device(idB);
    await a.send(`${idA},1,20`);
    await b.send(JSON.stringify({ id: idB, temp: 20 }));
    await page.waitForSelector(`li.card[data-device-id="${idB}"]`);

    // One device: only it receives the command, in its dialect; its ack shows in the list.
    await page.selectOption('select[name="target"]', `device:${idA}`);
    await page.fill('input[name="variable"]', 'LED');
    await page.fill('input[name="value"]', '1');
    await page.fill('input[name="duration"]', '500');
    await page.click('form.command-form button[type="submit"]');
    const line = await until('the command at device a', () => a.received.find((m) => m.startsWith('LED=')));
    const [, seq] = line.match(/^LED=1,seq=(\d+),dur=500$/) ?? assert.fail(`unexpected command line ${line}`);
    await page.waitForSelector(`li[data-seq="${seq}"][data-status="delivered"]`);
    await a.send(`ack=${seq}`);
    await page.waitForSelector(`li[data-seq="${seq}"][data-status="acked"]`);
    assert.deepEqual(b.received, [], 'device b must not receive a command for a');

    // All devices.
    await page.selectOption('select[name="target"]', 'all');
    await page.fill('input[name="value"]', '0');
    await page.fill('input[name="duration"]', '');
    await page.click('form.command-form button[type="submit"]');
    await until('LED=0 at a', () => a.received.some((m) => m.startsWith('LED=0,seq=')));
    const jsonCommand = await until('a JSON command at b', () => b.received.find((m) => m.startsWith('{')));
    assert.equal(JSON.parse(jsonCommand).cmd, 'LED');
    assert.equal(JSON.parse(jsonCommand).value, 0);

    // An invalid value: an error, and nothing is sent.
    const before = a.received.length + b.received.length;
    await page.fill('input[name="value"]', 'abc');
    await page.click('form.command-form button[type="submit"]');
    await page.waitForSelector('form.command-form .form-error:has-text("the value must be a number")');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(a.received.length + b.received.length, before, 'an invalid command must not be sent');

    await saveScreenshot(page, `commands-${size}.png`);

    // On a device page the form addresses that device; a raw console line reaches it too.
    await page.click(`li.card[data-device-id="${idA}"] a`);
    await page.waitForURL(`**/devices/${idA}`);
    await page.waitForSelector('main[data-hydrated="true"]');
    assert.equal(await page.inputValue('select[name="target"]'), `device:${idA}`);
    await page.fill('input[name="value"]', '0.5');
    await page.click('form.command-form button[type="submit"]');
    await until('LED=0.5 at a', () => a.received.some((m) => m.startsWith('LED=0.5,seq=')));
    await page.fill('.console-send input', 'hello device');
    await page.click('.console-send button');
    await until('the console line at a', () => a.received.includes('hello device'));
    await page.waitForSelector('.console-lines li.out:has-text("hello device")');
    assert.equal(b.received.filter((m) => m.includes('0.5') || m.includes('hello')).length, 0);

    a.close();
    b.close();
    assert.deepEqual(errors, []);
    await context.close();
  });
}

test('a device is removed from its page, its readings kept, and leaves the overview', async () => {
  const id = 'to-remove';
  const device = await env.server.device(id);
  await device.send(`${id},1,20`);
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.desktop, `/devices/${id}`);
  await page.waitForSelector('main[data-hydrated="true"]');
  await page.click('details.remove-device summary');
  await page.click('details.remove-device button[name="keep_readings"][value="true"]');
  await page.waitForURL((url) => new URL(url).pathname === '/');
  await page.waitForSelector('main[data-hydrated="true"]');
  assert.equal(await page.locator(`li.card[data-device-id="${id}"]`).count(), 0, 'the device is no longer listed');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a command for a sleeping device shows queued, goes out when it wakes, and shows acked', async () => {
  const id = 'sleepy';
  const first = await env.server.device(id);
  await first.send(`${id},1,20`);
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.phone, `/devices/${id}`);
  await page.waitForSelector('main[data-hydrated="true"]');
  first.close();
  await page.waitForSelector('.badge.offline');
  await page.fill('input[name="variable"]', 'LED');
  await page.fill('input[name="value"]', '1');
  await page.selectOption('select[name="queue"]', '3600000');
  await page.click('form.command-form button[type="submit"]');
  const queued = page.locator('li[data-status="queued"]');
  await queued.waitFor();
  const seq = await queued.getAttribute('data-seq');

  const woken = await env.server.device(id);
  const line = await until('the queued command at the device', () => woken.received.find((m) => m.startsWith('LED=')));
  assert.equal(line, `LED=1,seq=${seq}`);
  await woken.send(`ack=${seq}`);
  await page.waitForSelector(`li[data-seq="${seq}"][data-status="acked"]`);
  woken.close();
  assert.deepEqual(errors, []);
  await context.close();
});
