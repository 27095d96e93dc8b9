// Drives the real sockjs-client in headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core; nothing downloads a browser build).
//
// usage: node browser_driver.js CHROMIUM_PATH
// Launches one browser, prints {"ready": true, "version": ...} and then answers
// requests, one JSON object a line on stdin:
//   {"id": N, "url": PAGE_URL, "base": SOCKJS_BASE, "transport": NAME,
//    "messages": [...], "timeout": MS}
// with one JSON line on stdout: {"id": N, "result": {...}} or {"id": N, "error": "...",
// "log": [...]}. Each request gets a fresh page (and context). The browser closes when
// stdin ends, on SIGTERM/SIGINT, or after an overall watchdog.
'use strict';
const readline = require('readline');

process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1';
const {chromium} = require('playwright-core');

const executablePath = process.argv[2] || '/usr/bin/chromium';
const WATCHDOG_MS = Number(process.env.BROWSER_DRIVER_WATCHDOG_MS || 15 * 60 * 1000);

function emit(obj) {
  // U+2028/2029 are valid raw in JSON but some line readers split on them.
  const line = JSON.stringify(obj).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
  return new Promise((resolve) => process.stdout.write(line + '\n', resolve));
}

let browser = null;
let exiting = false;

async function shutdown(code) {
  if (exiting) return;
  exiting = true;
  const hard = setTimeout(() => process.exit(code || 1), 10000);
  hard.unref();
  try {
    if (browser) await browser.close();
  } catch (e) {
    process.stderr.write('browser.close failed: ' + e + '\n');
  }
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
setTimeout(() => {
  process.stderr.write('browser_driver: watchdog expired\n');
  shutdown(2);
}, WATCHDOG_MS).unref();

async function runOne(req) {
  const log = [];
  const page = await browser.newPage();
  page.on('console', (m) => log.push('console.' + m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => log.push('pageerror: ' + e));
  page.on('requestfailed', (r) => {
    const f = r.failure();
    log.push('requestfailed: ' + r.method() + ' ' + r.url() + ' ' + (f && f.errorText));
  });
  page.on('response', (r) => {
    if (r.status() >= 400) log.push('response: ' + r.status() + ' ' + r.url());
  });
  page.on('framenavigated', (f) => log.push('frame: ' + f.url()));
  try {
    const timeout = req.timeout || 20000;
    page.setDefaultTimeout(timeout);
    await page.goto(req.url, {timeout});
    // Two stages (echo, close) each bounded by `timeout` inside the page.
    const result = await page.evaluate(
      ([base, transport, messages, ms]) => window.runTest(base, transport, messages, ms),
      [req.base, req.transport, req.messages, timeout],
    );
    return {id: req.id, result, log};
  } catch (e) {
    return {id: req.id, error: String(e && e.message || e), log};
  } finally {
    await page.context().close().catch(() => {});
  }
}

(async () => {
  // launch() gives Chromium a fresh, empty --user-data-dir (and removes it afterwards).
  // The flags a root user on a closed network needs:
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 60000,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  browser.on('disconnected', () => {
    if (!exiting) {
      process.stderr.write('browser_driver: browser disconnected\n');
      process.exit(3);
    }
  });
  await emit({ready: true, version: browser.version()});

  const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
  // One request at a time, in order.
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    if (!line.trim()) return;
    chain = chain.then(async () => {
      let req;
      try {
        req = JSON.parse(line);
      } catch (e) {
        await emit({id: null, error: 'bad request: ' + e});
        return;
      }
      await emit(await runOne(req));
    });
  });
  rl.on('close', () => chain.then(() => shutdown(0)));
})().catch(async (e) => {
  await emit({ready: false, error: String(e && e.stack || e)});
  shutdown(1);
});
