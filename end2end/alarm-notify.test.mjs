// The promise, from the dashboard alone: a person makes a rule on the Alarms page with a
// webhook, an email address and a command for the device; the device crosses the threshold;
// the webhook (signature checked) and the email arrive within 2 s, the device gets LED=1 and
// acknowledges it, and the Alarms page shows what was sent. The webhook receiver and the
// mail server are real sockets on 127.0.0.1, written here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { serverAndBrowser, openPage, saveScreenshot, until, VIEWPORTS } from './harness.mjs';

const SECRET = 'a webhook secret for the browser test';

/** Every POST: its event header, whether the signature is right, the body, and when. */
function webhookReceiver() {
  const hooks = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const expected = 'sha256=' + crypto.createHmac('sha256', SECRET).update(body).digest('hex');
      hooks.push({
        at: Date.now(),
        event: req.headers['x-iothub-event'],
        signed: req.headers['x-iothub-signature'] === expected,
        body: JSON.parse(body.toString()),
      });
      res.writeHead(200).end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, hooks, url: `http://127.0.0.1:${server.address().port}/hook` })));
}

/** Just enough SMTP to take mail from the hub (on this machine, so without STARTTLS). */
function smtpSink() {
  const mails = [];
  const server = net.createServer((socket) => {
    let data = null;
    let to = '';
    let buffer = '';
    socket.write('220 sink ESMTP\r\n');
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      for (;;) {
        if (data !== null) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          data += buffer.slice(0, end);
          buffer = buffer.slice(end + 5);
          mails.push({ at: Date.now(), to, text: data });
          data = null;
          socket.write('250 queued\r\n');
          continue;
        }
        const eol = buffer.indexOf('\r\n');
        if (eol < 0) return;
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') socket.write('250-sink\r\n250 8BITMIME\r\n');
        else if (verb === 'RCPT') { to = line.match(/<([^>]*)>/)?.[1] ?? ''; socket.write('250 ok\r\n'); }
        else if (verb === 'DATA') { data = ''; socket.write('354 go on\r\n'); }
        else if (verb === 'QUIT') { socket.end('221 bye\r\n'); return; }
        else socket.write('250 ok\r\n');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, mails, port: server.address().port })));
}

const receiver = await webhookReceiver();
const sink = await smtpSink();
const env = serverAndBrowser(['--smtp-url', `smtp://127.0.0.1:${sink.port}`, '--smtp-from', 'IoT hub <hub@example.org>']);

test('from the dashboard alone: a webhook and an email within 2 s, the LED switched, all in the history', async () => {
  const id = 'greenhouse';
  const device = await env.server.device(id);
  await device.send(`${id},1,20`);
  const { page, errors, context } = await openPage(env.browser, env.server.baseUrl, VIEWPORTS.desktop, '/alarms');
  await page.waitForSelector('main[data-hydrated="true"]');
  await page.fill('.rule-form input[name="name"]', 'greenhouse too hot');
  await page.fill('.rule-form input[name="devices"]', id);
  await page.fill('.rule-form input[name="field"]', 'temp');
  await page.fill('.rule-form input[name="threshold"]', '30');
  await page.fill('.rule-form input[name="webhook_url"]', receiver.url);
  await page.fill('.rule-form input[name="webhook_secret"]', SECRET);
  await page.fill('.rule-form input[name="email_to"]', 'grower@example.org');
  await page.fill('.rule-form input[name="on_raised"]', 'LED=1');
  await page.click('.rule-form button[type="submit"]');
  await page.waitForSelector('.rule-list li:has-text("greenhouse too hot")');

  await device.send(`${id},2,31`);
  const crossed = Date.now();
  const hook = await until('the webhook', () => receiver.hooks.find((h) => h.event === 'raised'), 10_000);
  const mail = await until('the email', () => sink.mails[0], 10_000);
  assert.ok(hook.signed, 'the signature verifies with the secret typed in the form');
  assert.equal(hook.body.alarm.device_id, id);
  assert.ok(hook.at - crossed < 2000, `webhook after ${hook.at - crossed} ms`);
  assert.ok(mail.at - crossed < 2000, `email after ${mail.at - crossed} ms`);
  assert.equal(mail.to, 'grower@example.org');
  assert.match(mail.text, /Subject: \[IoT hub\] raised: greenhouse too hot on greenhouse/);

  // The automation: LED=1 to the device, which acknowledges it.
  const line = await until('LED=1 at the device', () => device.received.find((m) => m.startsWith('LED=1,seq=')));
  await device.send(`ack=${line.split('seq=')[1]}`);

  // The alarm, live on the page, and in the history with both deliveries noted.
  await page.waitForSelector('.alarms-up li.alarm:has-text("greenhouse too hot")');
  await until('both deliveries in the history', async () => {
    await page.reload();
    await page.waitForSelector('main[data-hydrated="true"]');
    const row = page.locator('.alarm-history tr', { hasText: id });
    if ((await row.count()) === 0) return false;
    const text = await row.first().innerText();
    return text.includes('webhook raised: delivered') && text.includes('email raised: delivered');
  }, 10_000);
  // …and what the automation sent, acknowledged by the device.
  await page.waitForSelector('.run-list li:has-text("LED=1"):has-text("greenhouse acked")');
  await saveScreenshot(page, 'alarms-automation-desktop.png');
  device.close();
  assert.deepEqual(errors, []);
  await context.close();
  receiver.server.close();
  sink.server.close();
});
