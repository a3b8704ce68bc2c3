// Reading a chart in a real browser: pointing at it (a mouse, a finger, the arrow keys) shows
// the time and value of the nearest point; dragging across it zooms into that stretch, which
// becomes the page's address (with a mouse, and with a finger on a phone); two fields picked
// are drawn together with a legend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, saveScreenshot, sidewaysOverflow, until, VIEWPORTS, signIn } from './harness.mjs';

const env = serverAndBrowser();

// Ten readings a few hundred ms apart: temp 20..29 °C, hum 40..49 %.
async function deviceWithTwoFields(id) {
  const device = await env.server.device(id);
  await device.send(JSON.stringify({
    register: { fields: [{ name: 'temp', unit: '°C' }, { name: 'hum', unit: '%' }] },
  }));
  for (let i = 0; i < 10; i++) {
    await device.send(`temp=${20 + i},hum=${40 + i}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  return device;
}

async function openDevicePage(viewport, id, options = {}) {
  const context = await env.browser.newContext({ viewport, timezoneId: 'UTC', ...options });
  await signIn(context, env.server.baseUrl);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  await page.goto(`${env.server.baseUrl}/devices/${id}`);
  await page.waitForSelector('main[data-hydrated="true"]');
  await page.waitForSelector('figure[data-field="temp"][data-points="10"] svg');
  return { context, page, errors };
}

// Where the plot area of a chart is on the screen: the drawing's axes are plotters' own, so
// the test finds them from the drawn line's first and last points.
async function plotBox(figure) {
  return figure.evaluate((el) => {
    const svg = el.querySelector('.chart-svg svg');
    const line = [...svg.querySelectorAll('polyline')].find((p) => /2563eb/i.test(p.getAttribute('stroke')));
    const xs = line.getAttribute('points').trim().split(/\s+/).map((p) => Number(p.split(',')[0]));
    const box = svg.getBoundingClientRect();
    const scale = box.width / Number(svg.getAttribute('width'));
    return {
      left: box.left + Math.min(...xs) * scale,
      right: box.left + Math.max(...xs) * scale,
      middleY: box.top + box.height / 2,
    };
  });
}

const tipText = async (page) => (await page.locator('[data-testid="chart-tip"]').innerText()).replace(/\s+/g, ' ');

test('desktop: the arrow keys keep stepping through a live chart as readings arrive', async () => {
  const id = 'chart-keys';
  const device = await deviceWithTwoFields(id);
  const { context, page, errors } = await openDevicePage(VIEWPORTS.desktop, id);
  await page.locator('figure[data-field="temp"]').focus();
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowLeft');
  assert.match(await tipText(page), / 28 °C$/);
  // A reading arrives and the chart is drawn anew: the new drawing has the focus and the
  // crosshair where it was, and the next key steps on from there.
  await device.send('temp=30,hum=50');
  await page.waitForSelector('figure[data-field="temp"][data-points="11"]');
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.field), 'temp');
  assert.match(await tipText(page), / 28 °C$/);
  await page.keyboard.press('ArrowLeft');
  assert.match(await tipText(page), / 27 °C$/);
  assert.deepEqual(errors, []);
  device.close();
  await context.close();
});

test('desktop: the crosshair reads the nearest point, the keys step, a drag zooms into a bookmarkable window', async () => {
  const id = 'chart-desk';
  const device = await deviceWithTwoFields(id);
  const { context, page, errors } = await openDevicePage(VIEWPORTS.desktop, id);
  await page.evaluate(() => { window.__noReload = true; });
  const figure = page.locator('figure[data-field="temp"]');
  const plot = await plotBox(figure);

  // At the left end of the line: the first reading.
  await page.mouse.move(plot.left + 1, plot.middleY);
  await page.waitForSelector('[data-testid="chart-tip"]');
  assert.match(await tipText(page), /^\d\d:\d\d:\d\d 20 °C$/);
  // At the right end: the last.
  await page.mouse.move(plot.right - 1, plot.middleY);
  await until('the tip follows the pointer', async () => / 29 °C$/.test(await tipText(page)));
  await saveScreenshot(page, 'chart-crosshair-desktop.png');
  await page.mouse.move(5, 5);
  await until('the tip goes with the pointer', async () => (await page.locator('[data-testid="chart-tip"]').count()) === 0);

  // The keyboard: focus starts at the newest point, the left arrow steps back.
  await figure.focus();
  await page.keyboard.press('ArrowRight');
  assert.match(await tipText(page), / 29 °C$/);
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('ArrowLeft');
  assert.match(await tipText(page), / 27 °C$/);
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('[data-testid="chart-tip"]').count(), 0);

  // Drag across the middle half: the page loads that window of stored history.
  const width = plot.right - plot.left;
  await page.mouse.move(plot.left + width * 0.25, plot.middleY);
  await page.mouse.down();
  await page.mouse.move(plot.left + width * 0.5, plot.middleY, { steps: 5 });
  assert.equal(await page.locator('.chart-zoom').count(), 1, 'the band shows what is picked');
  await page.mouse.move(plot.left + width * 0.75, plot.middleY, { steps: 5 });
  await page.mouse.up();
  await page.waitForURL(/\/devices\/chart-desk\?from=\d+&to=\d+$/);
  const url = new URL(page.url());
  const [from, to] = ['from', 'to'].map((k) => Number(url.searchParams.get(k)));
  // Ten readings over ~1.35 s; the middle half is about 0.7 s, widened to the 1 s minimum.
  assert.ok(to - from >= 1000 && to - from < 1500, `window ${to - from} ms`);
  await page.waitForSelector('main[data-hydrated="true"]');
  const zoomed = page.locator('figure[data-field="temp"][data-window="range"]');
  await zoomed.waitFor({ timeout: 10_000 });
  const points = Number(await zoomed.getAttribute('data-points'));
  assert.ok(points >= 3 && points <= 10, `${points} points in the zoomed window`);
  assert.equal(await page.locator('.window-picker [aria-current="page"]').innerText(), 'Zoomed');
  // The address is the window: loading it again (a bookmark) shows the same.
  await page.reload();
  await page.waitForSelector('figure[data-field="temp"][data-window="range"]');
  assert.equal(Number(await page.locator('figure[data-field="temp"]').getAttribute('data-points')), points);

  device.close();
  assert.deepEqual(errors, []);
  await context.close();
});

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: two fields picked are drawn on one chart with a legend, and a tap reads both`, async () => {
    const id = `together-${size}`;
    const device = await deviceWithTwoFields(id);
    const { context, page, errors } = await openDevicePage(viewport, id, { hasTouch: size === 'phone' });

    const picker = page.locator('[data-testid="field-picker"]');
    await picker.locator('input[value="hum"]').check();
    await picker.locator('input[value="temp"]').check();
    await picker.locator('button[type="submit"]').click();
    await page.waitForURL(/field=temp&field=hum|field=hum&field=temp/);
    await page.waitForSelector('main[data-hydrated="true"]');
    const combined = page.locator('figure.combined');
    await combined.waitFor();
    assert.equal(await page.locator('figure.chart').count(), 1, 'one chart for the two fields');
    const fields = await combined.getAttribute('data-field');
    assert.ok(['temp,hum', 'hum,temp'].includes(fields), fields);
    const svg = await combined.locator('.chart-svg').innerHTML();
    assert.match(svg, /stroke="#2563EB"/i);
    assert.match(svg, /stroke="#EA580C"/i);
    const legend = await combined.locator('.chart-legend li').allInnerTexts();
    assert.deepEqual(legend.map((t) => t.trim()).sort(), ['hum (%)', 'temp (°C)']);

    // Pointing at it (a tap on a phone) reads both lines at that time.
    const plot = await plotBox(combined);
    if (size === 'phone') {
      await page.touchscreen.tap(plot.right - 1, plot.middleY);
    } else {
      await page.mouse.move(plot.right - 1, plot.middleY);
    }
    await page.waitForSelector('[data-testid="chart-tip"]');
    const tip = await tipText(page);
    assert.match(tip, /temp: 29 °C/);
    assert.match(tip, /hum: 49 %/);
    assert.ok(await sidewaysOverflow(page) <= 0, 'the page must not scroll sideways');
    await saveScreenshot(page, `chart-together-${size}.png`);

    if (size === 'phone') {
      // A finger dragged sideways across the chart zooms too, keeping the fields together.
      // (Playwright has no touch drag; Chromium's own touch input does what a finger does.)
      const cdp = await context.newCDPSession(page);
      const touch = (type, x) => cdp.send('Input.dispatchTouchEvent', {
        type, touchPoints: type === 'touchEnd' ? [] : [{ x, y: plot.middleY }],
      });
      const width = plot.right - plot.left;
      await touch('touchStart', plot.left + width * 0.2);
      for (let i = 1; i <= 6; i++) await touch('touchMove', plot.left + width * (0.2 + i * 0.1));
      await touch('touchEnd');
      await page.waitForURL(/\?from=\d+&to=\d+&field=\w+&field=\w+$/);
      await page.waitForSelector('main[data-hydrated="true"]');
      await page.waitForSelector('figure.combined[data-window="range"]');
    }

    // And back to one chart each, the window kept.
    await page.locator('[data-testid="separate"]').click();
    await page.waitForSelector('main[data-hydrated="true"]');
    await page.waitForSelector('figure[data-field="hum"]');
    assert.equal(await page.locator('figure.combined').count(), 0);

    device.close();
    assert.deepEqual(errors, []);
    await context.close();
  });
}
