// Alarms from the dashboard alone: an admin adds a rule on the Alarms page, a device crosses
// its threshold, the alarm appears live at the top of the overview with a red card, the device
// page marks the chart and draws the threshold, the alarm is acknowledged, the device cools
// down, and the history shows it cleared. The rule's name is device-supplied-like text: shown
// as text, never as markup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, openPage, saveScreenshot, sidewaysOverflow, until, VIEWPORTS } from './harness.mjs';

const env = serverAndBrowser();

for (const [size, viewport] of Object.entries(VIEWPORTS)) {
  test(`${size}: a rule made on the Alarms page raises an alarm live, it is acknowledged and clears`, async () => {
    const id = `kitchen-${size}`;
    const device = await env.server.device(id);
    await device.send(`${id},1,20`);
    const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, viewport, '/alarms');
    await page.waitForSelector('main[data-hydrated="true"]');

    const name = `<i>too hot</i> ${size}`;
    await page.fill('.rule-form input[name="name"]', name);
    await page.fill('.rule-form input[name="devices"]', id);
    await page.selectOption('.rule-form select[name="kind"]', 'above');
    await page.fill('.rule-form input[name="field"]', 'temp');
    // A threshold that is not a number is refused here, before anything is sent.
    await page.fill('.rule-form input[name="threshold"]', 'warm');
    await page.click('.rule-form button[type="submit"]');
    await page.waitForSelector('.rules .form-error:has-text("must be a number")');
    await page.fill('.rule-form input[name="threshold"]', '50');
    await page.click('.rule-form button[type="submit"]');
    const ruleRow = page.locator('.rule-list li', { hasText: name });
    await ruleRow.waitFor();
    assert.equal(await page.locator('.rule-list i').count(), 0, 'the name is text, not markup');
    assert.match(await ruleRow.innerText(), /temp above 50/);

    // Edited: the form takes the rule, and saving changes it in place.
    await ruleRow.locator('button.edit').click();
    assert.equal(await page.inputValue('.rule-form input[name="threshold"]'), '50');
    await page.fill('.rule-form input[name="threshold"]', '30');
    await page.fill('.rule-form input[name="clear"]', '28');
    await page.click('.rule-form button[type="submit"]:has-text("Save rule")');
    await page.waitForSelector('.rule-list li:has-text("temp above 30 (clears at 28)")');
    assert.equal(await page.locator('.rule-list li', { hasText: name }).count(), 1, 'changed, not added');

    // Over the threshold: the overview shows the alarm live and the card in red.
    await page.goto(`${env.server.baseUrl}/`);
    await page.waitForSelector('main[data-hydrated="true"]');
    await device.send(`${id},2,31.5`);
    const up = page.locator('.alarms-up li.alarm', { hasText: id });
    await up.waitFor();
    assert.match(await up.innerText(), /too hot/);
    assert.match(await up.innerText(), /at 31\.5/);
    await page.waitForSelector(`li.card.alarm[data-device-id="${id}"]`);
    await page.waitForSelector('.alarms-link.up');
    assert.ok(await sidewaysOverflow(page) <= 0, "nothing sticks out sideways");
    await saveScreenshot(page, `alarm-overview-${size}.png`);

    // The device page: the alarm on top, the temp chart framed red with its threshold line.
    await page.click(`li.card[data-device-id="${id}"] a`);
    await page.waitForURL(`**/devices/${id}`);
    await page.waitForSelector('main[data-hydrated="true"]');
    await page.waitForSelector('.alarms-up li.alarm');
    const chart = page.locator('figure.chart[data-field="temp"]');
    await chart.waitFor();
    assert.equal(await chart.evaluate((f) => f.classList.contains('alarm')), true, 'the chart is marked');
    const svg = (await chart.innerHTML()).toLowerCase();
    assert.ok(svg.includes('#dc2626'), 'the threshold is drawn as a red line');
    await saveScreenshot(page, `alarm-device-${size}.png`);

    // Acknowledged: who and when, live; the button goes.
    await page.click('.alarms-up button.ack');
    await page.waitForSelector('.alarms-up .acked-by:has-text("acknowledged by admin")');
    assert.equal(await page.locator('.alarms-up button.ack').count(), 0);

    // Cooled down below the clear value: the alarm is gone from the page, and cleared in the history.
    await device.send(`${id},3,27`);
    await page.waitForSelector('.alarms-up', { state: 'detached' });
    await page.goto(`${env.server.baseUrl}/alarms`);
    await page.waitForSelector('main[data-hydrated="true"]');
    await page.fill('.alarm-history input[name="history_device"]', id);
    await page.press('.alarm-history input[name="history_device"]', 'Enter');
    const row = page.locator(`.alarm-history tr[data-cleared="true"]`, { hasText: id });
    await row.waitFor();
    assert.match(await row.innerText(), /admin/);
    assert.ok(await sidewaysOverflow(page) <= 0, "nothing sticks out sideways");
    await saveScreenshot(page, `alarms-page-${size}.png`);

    // Deleted: the rule leaves the list.
    await ruleRowDelete(page, name);
    device.close();
    assert.deepEqual(errors, []);
    await context.close();
  });
}

async function ruleRowDelete(page, name) {
  const row = page.locator('.rule-list li', { hasText: name });
  await row.locator('button.delete').click();
  await until('the rule deleted', async () => (await row.count()) === 0);
}
