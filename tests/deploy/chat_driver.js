// The chat page (fastsockjs chat) as people use it, in headless Chromium: Debian's
// /usr/bin/chromium driven by playwright-core (tests/realclient/node_modules).
//
// usage: node chat_driver.js CHROMIUM_PATH   (stdin: one JSON command a line)
// Each page gets its own browser context (as separate browsers would). Commands, each
// answered by one JSON line ({"ok": true, ...} or {"error": ..., "log": [...]}):
//   {"op": "open", "name": N, "url": U, "width": 1280, "height": 800}
//        load the page; waits until it says it is connected (body[data-state=open])
//   {"op": "say", "name": N, "text": T}        type T into #input and press Enter
//   {"op": "wait_texts", "name": N, "texts": [...]}   every text is in a #messages li
//   {"op": "wait_people", "name": N, "people": [...]} #people lists exactly these
//   {"op": "wait_state", "name": N, "state": S}        body[data-state=S]
//   {"op": "snapshot", "name": N}     the page as the user sees it (see snapshot())
//   {"op": "screenshot", "name": N, "path": P, "width": W, "height": H}
//   {"op": "close", "name": N}        close the page's context (the tab goes away)
//   {"op": "log", "name": N}          what the pages logged so far (console, failed requests)
// Every wait is bounded by "timeout" of the first command (default 20000 ms).
// CHROMIUM_EXTRA_ARGS (a JSON list) adds command-line switches to Chromium's.
'use strict';
process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1';
const {chromium} = require('playwright-core');
const readline = require('readline');

const executablePath = process.argv[2] || '/usr/bin/chromium';
const log = [];
const pages = new Map();
let browser = null;
let timeout = 20000;

function snapshot(page) {
  return page.evaluate(() => ({
    state: document.body.dataset.state,
    status: document.getElementById('status').textContent,
    problem: document.getElementById('problem').textContent,
    worker: document.body.dataset.worker,
    transport: document.body.dataset.transport,
    nick: document.body.dataset.nick,
    people: Array.from(document.querySelectorAll('#people li')).map((li) => li.textContent),
    me: Array.from(document.querySelectorAll('#people li.me')).map((li) => li.textContent),
    messages: Array.from(document.querySelectorAll('#messages li.msg')).map((li) => ({
      line: li.textContent,
      nick: li.querySelector('.nick').textContent,
      text: li.querySelector('.text').textContent,
      time: li.querySelector('time').getAttribute('datetime'),
      mine: li.classList.contains('mine'),
      worker: li.dataset.worker,
    })),
    notices: Array.from(document.querySelectorAll('#messages li.notice')).map(
      (li) => ({text: li.textContent, cls: li.className})),
    items: document.querySelectorAll('#messages li').length,
    markup: Array.from(document.querySelectorAll('#messages li .text')).map((s) => s.children.length)
      .reduce((a, b) => a + b, 0),
  }));
}

async function run(cmd) {
  if (cmd.timeout) timeout = cmd.timeout;
  if (!browser) {
    browser = await chromium.launch({
      executablePath, headless: true, timeout: 60000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync',
             '--disable-dev-shm-usage',
             ...JSON.parse(process.env.CHROMIUM_EXTRA_ARGS || '[]')],
    });
  }
  const entry = pages.get(cmd.name);
  const page = entry && entry.page;
  if (cmd.op !== 'open' && !page) throw new Error('no page ' + cmd.name);
  switch (cmd.op) {
    case 'open': {
      const context = await browser.newContext({
        viewport: {width: cmd.width || 1280, height: cmd.height || 800},
      });
      const p = await context.newPage();
      p.setDefaultTimeout(timeout);
      p.on('console', (m) => log.push(cmd.name + ' console.' + m.type() + ': ' + m.text()));
      p.on('pageerror', (e) => log.push(cmd.name + ' pageerror: ' + e));
      p.on('requestfailed', (r) => log.push(cmd.name + ' requestfailed: ' + r.url()));
      pages.set(cmd.name, {context, page: p});
      await p.goto(cmd.url);
      await p.waitForSelector('body[data-state="' + (cmd.state || 'open') + '"]');
      return snapshot(p);
    }
    case 'say':
      await page.fill('#input', cmd.text);
      await page.press('#input', 'Enter');
      return {};
    case 'wait_texts':
      await page.waitForFunction((want) => {
        const got = Array.from(document.querySelectorAll('#messages li.msg .text')).map(
          (s) => s.textContent);
        return want.every((t) => got.includes(t));
      }, cmd.texts);
      return snapshot(page);
    case 'wait_people':
      await page.waitForFunction((want) => {
        const got = Array.from(document.querySelectorAll('#people li')).map((li) => li.textContent);
        return JSON.stringify(got.slice().sort()) === JSON.stringify(want.slice().sort());
      }, cmd.people);
      return snapshot(page);
    case 'wait_state':
      await page.waitForSelector('body[data-state="' + cmd.state + '"]');
      return snapshot(page);
    case 'snapshot':
      return snapshot(page);
    case 'log':
      return {log: log.slice()};
    case 'screenshot':
      await page.setViewportSize({width: cmd.width, height: cmd.height});
      await page.waitForTimeout(200);
      await page.screenshot({path: cmd.path});
      return snapshot(page);
    case 'close':
      await entry.context.close();
      pages.delete(cmd.name);
      return {};
    default:
      throw new Error('unknown op ' + cmd.op);
  }
}

async function main() {
  const rl = readline.createInterface({input: process.stdin});
  for await (const line of rl) {
    if (!line.trim()) continue;
    let out;
    try {
      const cmd = JSON.parse(line);
      out = Object.assign({ok: true}, await run(cmd));
    } catch (e) {
      out = {error: String(e && e.stack || e), log: log.slice(-60)};
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  }
  if (browser) await browser.close().catch(() => {});
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({error: String(e && e.stack || e)}) + '\n');
  process.exit(1);
});
