'use strict';
// sockjs-node 0.3.24 for tests/client: the services the client tests need.
// Usage: node server.js PORT   (prints "READY <port>" once listening)
//   /echo                 every message back
//   /close                closes each session at once with 3000 "Go away!"
//   /cookie_needed_echo   echo with jsessionid: true
//   /heartbeat            echo with a 200 ms heartbeat_delay
const http = require('http');
const sockjs = require('sockjs');

const port = parseInt(process.argv[2] || '0', 10);
const quiet = function () {};

function echo(options) {
  const service = sockjs.createServer(Object.assign({ log: quiet }, options));
  service.on('connection', function (conn) {
    conn.on('data', function (message) { conn.write(message); });
  });
  return service;
}

const close = sockjs.createServer({ log: quiet });
close.on('connection', function (conn) { conn.close(3000, 'Go away!'); });

const server = http.createServer(function (req, res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('404\n');
});
echo({}).installHandlers(server, { prefix: '/echo' });
close.installHandlers(server, { prefix: '/close' });
echo({ jsessionid: true }).installHandlers(server, { prefix: '/cookie_needed_echo' });
echo({ heartbeat_delay: 200 }).installHandlers(server, { prefix: '/heartbeat' });
server.listen(port, '127.0.0.1', function () {
  process.stdout.write('READY ' + server.address().port + '\n');
});
process.on('SIGTERM', function () { process.exit(0); });
