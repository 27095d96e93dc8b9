// The chat page (fastsockjs chat, served through haproxy) in headless Chromium:
// Debian's /usr/bin/chromium driven by playwright-core (tests/realclient/node_modules).
//
// usage: node chat_driver.js CHROMIUM_PATH   (stdin: JSON lines)
//   {"pages": [{"name": "a", "url": "http://127.0.0.1:P/?room=r&server=012"}, ...],
//    "timeout": MS, "rounds": ["hello", "again"]}
// Opens every page in its own browser context (as separate browsers would be). Each
// round: wait until every page says it is connected (body[data-state=open]), then each
// page in turn types "ROUND from NAME" and sends it; every page must show every message.
// After each round but the last it prints {"round": R, "pages": [...]} and waits for a
// line on stdin (the test breaks something meanwhile). At the end it prints
// {"pages": [{"name", "worker", "transport", "hellos", "messages": [...]}]}; on failure
// {"error", "log"}.
'use strict';
process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1';
const {chromium} = require('playwright-core');

const executablePath = process.argv[2] || '/usr/bin/chromium';

const readline = require('readline');
const lines = [];
let waiting = null;
readline.createInterface({input: process.stdin}).on('line', (line) => {
  if (waiting) { const w = waiting; waiting = null; w(line); } else lines.push(line);
});
function nextLine() {
  return new Promise((resolve) => {
    if (lines.length) resolve(lines.shift()); else waiting = resolve;
  });
}

function snapshot(pages) {
  return Promise.all(pages.map(({spec: p, page}) => page.evaluate((name) => ({
    name,
    worker: document.body.dataset.worker,
    transport: document.body.dataset.transport,
    status: document.getElementById('status').textContent,
    hellos: Array.from(document.querySelectorAll('#log li.sys')).map((li) => li.textContent)
      .filter((t) => t.startsWith('connected to worker')).length,
    messages: Array.from(document.querySelectorAll('#log li.msg')).map((li) => ({
      text: li.lastChild.textContent, who: li.querySelector('.who').textContent,
      mine: li.classList.contains('mine'),
    })),
  }), p.name)));
}

async function main() {
  const spec = JSON.parse(await nextLine());
  const timeout = spec.timeout || 20000;
  const rounds = spec.rounds || ['hello'];
  const log = [];
  const browser = await chromium.launch({
    executablePath, headless: true, timeout: 60000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-dev-shm-usage'],
  });
  const watchdog = setTimeout(() => {
    process.stdout.write(JSON.stringify({error: 'watchdog expired', log}) + '\n');
    process.exit(2);
  }, timeout * (3 + 2 * rounds.length));
  try {
    const pages = [];
    for (const p of spec.pages) {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.setDefaultTimeout(timeout);
      page.on('console', (m) => log.push(p.name + ' console.' + m.type() + ': ' + m.text()));
      page.on('pageerror', (e) => log.push(p.name + ' pageerror: ' + e));
      page.on('requestfailed', (r) => log.push(p.name + ' requestfailed: ' + r.url()));
      await page.goto(p.url);
      pages.push({spec: p, page});
    }
    for (let r = 0; r < rounds.length; r++) {
      for (const {page} of pages) {
        await page.waitForSelector('body[data-state="open"]');
      }
      const texts = [];
      for (const {spec: p, page} of pages) {
        const text = rounds[r] + ' from ' + p.name;
        texts.push(text);
        await page.fill('#msg', text);
        await page.press('#msg', 'Enter');
      }
      for (const {page} of pages) {
        await page.waitForFunction((want) => {
          const got = Array.from(document.querySelectorAll('#log li.msg')).map(
            (li) => li.lastChild.textContent);
          return want.every((t) => got.includes(t));
        }, texts);
      }
      if (r < rounds.length - 1) {
        process.stdout.write(JSON.stringify({round: r, pages: await snapshot(pages)}) + '\n');
        await nextLine();
      }
    }
    const out = await snapshot(pages);
    process.stdout.write(JSON.stringify({pages: out, version: browser.version()}) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({error: String(e && e.stack || e), log}) + '\n');
  } finally {
    clearTimeout(watchdog);
    await browser.close().catch(() => {});
  }
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({error: String(e && e.stack || e)}) + '\n');
  process.exit(1);
});
