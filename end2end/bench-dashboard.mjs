// Dashboard benchmark (not a test): how the browser copes with many busy devices.
//
//  1. Overview with N simulated devices at R readings/s each (default 200 at 10 Hz): over a
//     measuring period, the page's state updates per second (the stream is coalesced into at
//     most one update per 100 ms), animation frames per second, and long tasks (> 50 ms) as
//     Chromium reports them.
//  2. Device page with a 1,000-point live series: the time plotters (compiled to wasm) takes to
//     draw each chart, as the page records it on the figure (data-render-ms), while the device
//     sends 10 readings/s.
//
// Run by scripts/bench-dashboard.sh (release build). Prints figures; asserts nothing.
import { startServer, launchBrowser, signIn } from './harness.mjs';

const devices = Number(process.env.BENCH_DEVICES ?? 200);
const rate = Number(process.env.BENCH_RATE ?? 10);
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const server = await startServer([
  '--simulate', String(devices), '--simulate-rate', String(rate), '--recent-readings', '1000', '--max-readings-per-sec', '100000',
]);
const browser = await launchBrowser();
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await signIn(context, server.baseUrl);
  const page = await context.newPage();
  await page.goto(server.baseUrl);
  await page.waitForSelector('main[data-hydrated="true"]');
  await page.waitForFunction((n) => document.querySelectorAll('li.card').length >= n, devices, { timeout: 30_000 });
  await sleep(2_000); // warm-up
  const overview = await page.evaluate(async (ms) => {
    const main = document.querySelector('main');
    const flushes0 = Number(main.dataset.flushes);
    let frames = 0;
    let longTasks = 0;
    let longTaskMs = 0;
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) { longTasks += 1; longTaskMs += entry.duration; }
    });
    observer.observe({ entryTypes: ['longtask'] });
    const start = performance.now();
    await new Promise((resolve) => {
      const tick = () => { frames += 1; if (performance.now() - start < ms) requestAnimationFrame(tick); else resolve(); };
      requestAnimationFrame(tick);
    });
    observer.disconnect();
    const elapsed = (performance.now() - start) / 1000;
    return {
      updatesPerSecond: (Number(main.dataset.flushes) - flushes0) / elapsed,
      framesPerSecond: frames / elapsed,
      longTasks,
      longTaskMs,
      cards: document.querySelectorAll('li.card').length,
    };
  }, seconds * 1000);
  console.log(`overview, ${devices} devices at ${rate} Hz (${devices * rate} readings/s) over ${seconds} s:`);
  console.log(`  ${overview.cards} cards, ${overview.updatesPerSecond.toFixed(1)} state updates/s, ` +
    `${overview.framesPerSecond.toFixed(1)} frames/s, ${overview.longTasks} long tasks (${overview.longTaskMs.toFixed(0)} ms in all)`);

  // A device with 1,000 points in memory: sent as fast as the server takes them.
  const device = await server.device('bench-1000');
  for (let batch = 0; batch < 10; batch++) {
    const lines = [];
    for (let i = 0; i < 100; i++) {
      const n = batch * 100 + i;
      lines.push(`bench-1000,${n},${(20 + 5 * Math.sin(n / 50)).toFixed(2)}`);
    }
    await device.send(lines.join('\n'));
  }
  await sleep(500);
  await page.goto(`${server.baseUrl}/devices/bench-1000`);
  await page.waitForSelector('main[data-hydrated="true"]');
  await page.waitForSelector('figure[data-field="temp"][data-points="1000"]', { timeout: 15_000 });
  const samples = [];
  let n = 1000;
  const started = Date.now();
  while (Date.now() - started < seconds * 1000) {
    await device.send(`bench-1000,${n},${(20 + 5 * Math.sin(n / 50)).toFixed(2)}`);
    n += 1;
    await sleep(1000 / 10);
    samples.push(Number(await page.locator('figure[data-field="temp"]').getAttribute('data-render-ms')));
  }
  samples.sort((a, b) => a - b);
  const pick = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  const points = await page.locator('figure[data-field="temp"]').getAttribute('data-points');
  console.log(`device page, ${points}-point series redrawn live (plotters → SVG in wasm), ${samples.length} samples:`);
  console.log(`  render time median ${pick(0.5).toFixed(2)} ms, p95 ${pick(0.95).toFixed(2)} ms, max ${samples.at(-1).toFixed(2)} ms`);
  device.close();
  await context.close();
} finally {
  await browser.close();
  await server.stop();
}
