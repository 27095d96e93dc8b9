// Drives the real sockjs-client in Node against a fastsockjs server.
// usage: node node_client.js BASE_URL TRANSPORT
// Prints one JSON line: {"echo": [...], "closeCode": N, "closeReason": "..."}.
'use strict';
const SockJS = require('sockjs-client');

const base = process.argv[2];
const transport = process.argv[3] || 'websocket';
const messages = [
  'hello', 'ąść €', '\u2028\u2029', '"quotes" and \\backslashes\\', '</script>', '%20 100%',
  '\ud83d\ude00', 'x'.repeat(65536), JSON.stringify({a: [1, 2, 3]}),
];

// process.exit() can cut off a piped stdout: exit only once it is written.
function finish(obj, code) {
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code));
}

function fail(why) {
  finish({error: why}, 1);
}
setTimeout(() => fail('timed out'), 20000).unref();

function echo() {
  return new Promise((resolve) => {
    const sock = new SockJS(base + '/echo', null, {transports: [transport]});
    const got = [];
    let used = null;
    sock.onopen = () => {
      used = sock.transport;
      for (const m of messages) sock.send(m);
    };
    sock.onmessage = (e) => {
      got.push(e.data);
      if (got.length === messages.length) sock.close(4000, 'done');
    };
    sock.onclose = (e) => resolve({echo: got, transport: used, code: e.code});
  });
}

function closed() {
  return new Promise((resolve) => {
    const sock = new SockJS(base + '/close', null, {transports: [transport]});
    sock.onclose = (e) => resolve({closeCode: e.code, closeReason: e.reason});
  });
}

(async () => {
  const a = await echo();
  const b = await closed();
  finish({...a, ...b, sent: messages}, 0);
})().catch((e) => fail(String(e)));
