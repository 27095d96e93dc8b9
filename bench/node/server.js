'use strict';
// sockjs-node 0.3.24 echo + broadcast server for `python -m bench.load`.
// Usage: node server.js PORT [--ssl-certfile CERT --ssl-keyfile KEY]
//        (prints "READY <port>" once listening; with a certificate and key it
//        serves https and wss from https.createServer, as sockjs-node's users do)
// Mounts /echo (every message back to its sender) and /broadcast (every
// message to every open session, the sender included), default options.
const fs = require('fs');
const http = require('http');
const https = require('https');
const sockjs = require('sockjs');

const port = parseInt(process.argv[2] || '0', 10);
function flag(name) {
  const i = process.argv.indexOf(name);
  return i > 2 && i + 1 < process.argv.length ? process.argv[i + 1] : null;
}
const certfile = flag('--ssl-certfile');
const keyfile = flag('--ssl-keyfile');
const quiet = { log: function () {} };

const echo = sockjs.createServer(quiet);
echo.on('connection', function (conn) {
  conn.on('data', function (message) {
    conn.write(message);
  });
});

const broadcast = sockjs.createServer(quiet);
const members = new Map();
broadcast.on('connection', function (conn) {
  members.set(conn.id, conn);
  conn.on('close', function () {
    members.delete(conn.id);
  });
  conn.on('data', function (message) {
    for (const member of members.values()) member.write(message);
  });
});

function notFound(req, res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('404\n');
}
const server = certfile
  ? https.createServer(
      { cert: fs.readFileSync(certfile), key: fs.readFileSync(keyfile || certfile) },
      notFound
    )
  : http.createServer(notFound);
echo.installHandlers(server, { prefix: '/echo' });
broadcast.installHandlers(server, { prefix: '/broadcast' });
server.listen(port, '127.0.0.1', 1024, function () {
  process.stdout.write('READY ' + server.address().port + '\n');
});
process.on('SIGTERM', function () {
  process.exit(0);
});
