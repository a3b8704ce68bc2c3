// Shared set-up for browser tests: start the real server binary on a free port with a fresh
// data folder, launch Debian's chromium headless, and act as devices over real WebSockets.
import { before, after } from 'node:test';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

export const root = path.resolve(import.meta.dirname, '..');
export const screenshots = path.join(root, 'target', 'screenshots');

const serverBin = path.resolve(root, process.env.IOTHUB_BIN ?? 'target/debug/iothub');

/** The first user's password on every test server (`admin`). */
export const ADMIN_PASSWORD = 'e2e admin password';

export const VIEWPORTS = {
  phone: { width: 390, height: 844 },
  desktop: { width: 1440, height: 900 },
};

/**
 * Starts `iothub serve` with a fresh data folder and resolves once it prints where it listens.
 * `halt()` and `start()` stop it and start it again on the same port with the same data.
 * Devices connect with tokens (`device(id)` makes one with `iothub token create`, as a person
 * would); `tokenless: true` starts it with `--allow-tokenless-devices` instead.
 */
export async function startServer(moreArgs = [], { tokenless = false } = {}) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'iothub-e2e-'));
  const extraArgs = ['--admin-password', ADMIN_PASSWORD, ...(tokenless ? ['--allow-tokenless-devices'] : []), ...moreArgs];
  let run = await spawnServer(dataDir, '127.0.0.1:0', extraArgs);
  const baseUrl = run.baseUrl;
  return {
    baseUrl,
    wsUrl: baseUrl.replace('http://', 'ws://') + '/ws/device',
    log: () => run.log(),
    /** A device connected as `id`, with a token of its own. */
    async device(id) {
      const token = await createToken(dataDir, id);
      return connectDevice(`${baseUrl.replace('http://', 'ws://')}/ws/device?token=${token}`);
    },
    /** Runs the `iothub` command line on this server's data folder; resolves with stdout. */
    cli(args, stdin = '') { return runCli(dataDir, args, stdin); },
    /** Graceful stop (SIGTERM), keeping the data folder. */
    async halt() { await run.stop(); },
    async start() { run = await spawnServer(dataDir, new URL(baseUrl).host, extraArgs); },
    async stop() {
      await run.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** `iothub token create <id>` on the server's data folder (the server may be running). */
function createToken(dataDir, id) {
  return new Promise((resolve, reject) => {
    execFile(serverBin, ['token', 'create', id, '--data-dir', dataDir], (err, stdout, stderr) => {
      if (err) reject(new Error(`token create failed: ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

function runCli(dataDir, args, stdin) {
  return new Promise((resolve, reject) => {
    const child = execFile(serverBin, [...args, '--data-dir', dataDir], (err, stdout, stderr) => {
      if (err) reject(new Error(`iothub ${args.join(' ')} failed: ${stderr}`));
      else resolve(stdout.trim());
    });
    child.stdin.end(stdin);
  });
}

/** Signs a browser context in as `user` through the login form's POST. */
export async function signInAs(context, baseUrl, user, password) {
  const res = await context.request.post(`${baseUrl}/login`, {
    form: { user, password, next: '/' },
    maxRedirects: 0,
  });
  if (res.status() !== 303) throw new Error(`signing in as ${user} failed: ${res.status()}`);
}

async function spawnServer(dataDir, bind, extraArgs) {
  const child = spawn(
    serverBin,
    ['serve', '--bind', bind, '--data-dir', dataDir, '--site-root', path.join(root, 'target/site'), ...extraArgs],
    { env: { ...process.env, RUST_LOG: 'info,sqlx=warn', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const baseUrl = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 30_000);
    const onData = (chunk) => {
      log += chunk;
      const m = log.match(/listening on (http:\/\/[0-9.]+:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${log}`)); });
  });
  child.removeAllListeners('exit');
  return {
    baseUrl,
    log: () => log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // Playwright gives every launch a fresh, temporary profile (user data dir).
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** Signs the browser context in as `admin` (the form's POST, as the login page sends it). */
export async function signIn(context, baseUrl) {
  const res = await context.request.post(`${baseUrl}/login`, {
    form: { user: 'admin', password: ADMIN_PASSWORD, next: '/' },
    maxRedirects: 0,
  });
  if (res.status() !== 303 || !(await context.cookies(baseUrl)).some((c) => c.name === 'iothub_session')) {
    throw new Error(`signing in failed: ${res.status()}`);
  }
}

const sessions = new Map();

/** `fetch` as a signed-in browser would, but without one (for raw server-rendered HTML). */
export async function fetchSignedIn(baseUrl, route) {
  if (!sessions.has(baseUrl)) {
    const res = await fetch(`${baseUrl}/login`, {
      method: 'POST',
      body: new URLSearchParams({ user: 'admin', password: ADMIN_PASSWORD }),
      redirect: 'manual',
    });
    const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
    if (!cookie.startsWith('iothub_session=')) throw new Error(`signing in failed: ${res.status}`);
    sessions.set(baseUrl, cookie);
  }
  return fetch(baseUrl + route, { headers: { cookie: sessions.get(baseUrl) } });
}

/**
 * A signed-in page at `route` that records every uncaught error: a hydration failure shows up
 * only there.
 */
export async function openPage(browser, baseUrl, viewport, route = '/') {
  const context = await browser.newContext({ viewport });
  await signIn(context, baseUrl);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(err.message));
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  await page.goto(baseUrl + route);
  await page.waitForSelector('main[data-hydrated="true"]', { timeout: 15_000 });
  return { page, errors, context };
}

/** Polls `check` until it returns something truthy. */
export async function until(what, check, timeout = 5_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Fails if the page scrolls sideways (the phone layout must fit the screen). */
export async function sidewaysOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

/** A device on a real WebSocket connection. */
export async function connectDevice(wsUrl) {
  const ws = new WebSocket(wsUrl);
  const received = [];
  ws.on('message', (data) => received.push(data.toString()));
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  return {
    ws,
    received,
    send: (line) => new Promise((resolve, reject) => ws.send(line, (err) => (err ? reject(err) : resolve()))),
    close: () => ws.close(),
  };
}

export function saveScreenshot(page, name) {
  fs.mkdirSync(screenshots, { recursive: true });
  return page.screenshot({ path: path.join(screenshots, name), fullPage: true });
}

/**
 * Registers set-up and tear-down for a test file: one server and one browser for all its
 * tests. The returned object gets `server` and `browser` once `before` has run.
 */
export function serverAndBrowser(extraArgs = [], options = {}) {
  const env = {};
  before(async () => {
    env.server = await startServer(extraArgs, options);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}
