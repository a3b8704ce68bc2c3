// Controls from declared commands, as a person uses them on a phone and a desktop: a device
// that declares LED (0–1) and DIM (0–100 %, step 5) gets a switch and a slider on its card and
// its page; toggling the switch sends LED=1, shows it waiting until the device acknowledges,
// then settled; a command the device never acknowledges rolls the switch back, visibly; the
// slider works from the keyboard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverAndBrowser, openPage, saveScreenshot, sidewaysOverflow, until, VIEWPORTS,
} from './harness.mjs';

// A short acknowledgement timeout, so the roll-back shows quickly.
const env = serverAndBrowser(['--command-timeout-ms', '1500']);

const REGISTRATION = JSON.stringify({
  register: {
    name: 'Lamp',
    commands: [
      { name: 'LED', min: 0, max: 1 },
      { name: 'DIM', min: 0, max: 100, step: 5, unit: '%' },
    ],
  },
});

/** The next line the device receives that sets `variable`: { value, seq }. */
async function nextCommand(device, variable) {
  const line = await until(`a ${variable} command`, () =>
    device.received.find((l) => l.startsWith(`${variable}=`)));
  device.received.splice(device.received.indexOf(line), 1);
  const [, value, seq] = line.match(/^\w+=([-\d.]+),seq=(\d+)/);
  return { value: Number(value), seq: Number(seq) };
}

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: a switch and a slider drive a device and wait for its acknowledgement`, async () => {
    const id = `lamp-${size}`;
    const device = await env.server.device(id);
    await device.send(REGISTRATION);
    await device.send(`${id},1,20`);

    // On the overview the card has the switch.
    const overview = await openPage(env.browser, env.server.baseUrl, viewport);
    const cardSwitch = overview.page.locator(`.card[data-device-id="${id}"] button[role="switch"]`);
    await cardSwitch.waitFor();
    assert.equal(await cardSwitch.getAttribute('aria-label'), 'LED');
    await overview.context.close();

    const { page, errors, context } = await openPage(
      env.browser, env.server.baseUrl, viewport, `/devices/${id}`,
    );
    const led = page.locator('.side .control[data-control="LED"]');
    const sw = led.locator('button[role="switch"]');
    await sw.waitFor();
    assert.equal(await sw.getAttribute('aria-checked'), 'false');

    // Click: LED=1 goes out, the switch shows on and waiting, the ack settles it.
    await sw.click();
    const on = await nextCommand(device, 'LED');
    assert.equal(on.value, 1);
    await until('the switch waiting', async () => (await sw.getAttribute('aria-busy')) === 'true');
    assert.equal(await sw.getAttribute('aria-checked'), 'true');
    assert.match(await led.locator('.control-status').innerText(), /waiting/);
    await saveScreenshot(page, `controls-waiting-${size}.png`);
    await device.send(`ack=${on.seq}`);
    await until('the switch settled', async () => (await sw.getAttribute('aria-busy')) === 'false');
    assert.equal(await sw.getAttribute('aria-checked'), 'true');

    // From the keyboard: Space turns it off; no ack comes, so it goes back to on and says why.
    await sw.focus();
    await page.keyboard.press('Space');
    const off = await nextCommand(device, 'LED');
    assert.equal(off.value, 0);
    await until('the roll-back', async () =>
      (await sw.getAttribute('aria-checked')) === 'true'
      && /not confirmed/.test(await led.locator('.control-status').innerText()), 10_000);

    // The slider, from the keyboard: one step right sends DIM=5, with its unit read out.
    const slider = page.locator('.side .control[data-control="DIM"] input[type="range"]');
    assert.equal(await slider.getAttribute('step'), '5');
    await slider.focus();
    await page.keyboard.press('ArrowRight');
    const dim = await nextCommand(device, 'DIM');
    assert.equal(dim.value, 5);
    await device.send(`ack=${dim.seq}`);
    await until('the slider settled', async () => (await slider.getAttribute('aria-valuetext')) === '5 %');

    assert.ok(await sidewaysOverflow(page) <= 0, 'the page fits the screen');
    await saveScreenshot(page, `controls-${size}.png`);
    assert.deepEqual(errors, []);
    await context.close();
    device.close();
  });
}
