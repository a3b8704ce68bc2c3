// Dashboard benchmark (not a test): how the browser copes with many busy devices.
//
//  1. The overview with each fleet of BENCH_FLEETS ("200x10 10000x1": N devices at R readings/s
//     each), a hub started for each. The devices are real WebSocket connections from
//     `iothub-bench-live` in a process of its own (10,000 loopback connections need 20,000
//     descriptors, more than one process may hold here). Over a measuring period: the page's state
//     updates per second (the stream is coalesced into at most one update per 100 ms),
//     animation frames per second, and long tasks (> 50 ms) as Chromium reports them, over
//     BENCH_DASHBOARD_RUNS (3) runs: medians, and the long tasks of the worst run. The page
//     shows 48 cards whatever the fleet; the stream carries theirs and the fleet's counts.
//  2. Device page with a 1,000-point live series: the time plotters (compiled to wasm) takes to
//     draw each chart, as the page records it on the figure (data-render-ms), while the device
//     sends 10 readings/s.
//
// Run by scripts/bench-dashboard.sh. Prints figures (and `phase=… key=value` lines that
// scripts/bench.sh reads); asserts nothing.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startServer, launchBrowser, signIn, ADMIN_PASSWORD } from './harness.mjs';

const fleets = (process.env.BENCH_FLEETS ?? '200x10 10000x1').trim().split(/\s+/).map((f) => f.split('x').map(Number));
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const runs = Number(process.env.BENCH_DASHBOARD_RUNS ?? 3);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The overview's page size (app::model::PAGE_SIZE).
const PAGE_SIZE = 48;

// Built beside the server by scripts/bench-dashboard.sh.
const benchLive = path.join(path.dirname(process.env.IOTHUB_BIN), 'iothub-bench-live');

async function measureOverview(browser, devices, rate) {
  const server = await startServer(['--recent-readings', '1000', '--max-readings-per-sec', '100000'], { tokenless: true });
  // Sends for longer than the page is measured; stopped when it is.
  const fleet = spawn(benchLive, [
    '--base', `${server.baseUrl}/`, '--devices', String(devices), '--rate', String(rate),
    '--duration', String(seconds + 120), '--warmup', '0', '--pages', '0', '--password', ADMIN_PASSWORD,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    await signIn(context, server.baseUrl);
    const page = await context.newPage();
    await page.goto(server.baseUrl);
    await page.waitForSelector('main[data-hydrated="true"]');
    await page.waitForFunction((n) => document.querySelectorAll('li.card').length >= n,
      Math.min(devices, PAGE_SIZE), { timeout: 60_000 });
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
    await context.close();
    return overview;
  } finally {
    fleet.kill('SIGTERM');
    await server.stop();
  }
}

const browser = await launchBrowser();
try {
  for (const [devices, rate] of fleets) {
    const results = [];
    for (let run = 0; run < runs; run++) results.push(await measureOverview(browser, devices, rate));
    const median = (key) => {
      const xs = results.map((r) => r[key]).sort((a, b) => a - b);
      return xs[Math.floor(xs.length / 2)];
    };
    // Frame rate and updates: medians of the runs; long tasks: the worst run.
    const worst = results.reduce((a, b) => (b.longTaskMs > a.longTaskMs ? b : a));
    console.log(`phase=browser devices=${devices} rate=${rate} runs=${runs} seconds=${seconds} cards=${median('cards')} ` +
      `updates_per_s=${median('updatesPerSecond').toFixed(1)} fps=${median('framesPerSecond').toFixed(1)} ` +
      `long_tasks=${worst.longTasks} long_task_ms=${worst.longTaskMs.toFixed(0)}`);
  }

  const server = await startServer(['--recent-readings', '1000', '--max-readings-per-sec', '100000']);
  try {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    await signIn(context, server.baseUrl);
    const page = await context.newPage();
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
    console.log(`phase=chart points=${points} samples=${samples.length} median_ms=${pick(0.5).toFixed(2)} p95_ms=${pick(0.95).toFixed(2)} max_ms=${samples.at(-1).toFixed(2)}`);
    device.close();
    await context.close();
  } finally {
    await server.stop();
  }
} finally {
  await browser.close();
}
