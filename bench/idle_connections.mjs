// Measures pigeond's resident memory per idle connection: N WebSocket connections, each
// CONNECTed and SUBSCRIBEd to its queue, then idle. Reads VmRSS of the server from
// /proc/<pid>/status after a warm-up and after all N connections, and reports the difference
// per connection. Run from tests/node (where the ws package is installed):
//
//   node bench/idle_connections.mjs --server http://127.0.0.1:8080 --pid <pigeond pid> \
//        --connections 10000 --users 100 --sources 8
//
// The server should run with --password-cost min --rate-limit 0 so that the N logins are quick
// (neither changes what a connection costs).
import { readFileSync } from 'node:fs';
// ws comes from the test suite's npm install (make test, or npm ci in tests/node).
const { default: WebSocket } = await import(new URL('../tests/node/node_modules/ws/wrapper.mjs', import.meta.url));

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const server = args.server ?? 'http://127.0.0.1:8080';
const pid = Number(args.pid);
const total = Number(args.connections ?? 10000);
const users = Number(args.users ?? 100);
const sources = Number(args.sources ?? 8);
const warmup = Math.min(200, Math.floor(total / 10));
const wsUrl = server.replace(/^http/, 'ws') + '/ws';

function rssKiB() {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

async function api(method, path, body) {
  const res = await fetch(server + path, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function token(i) {
  const user = `idle${i % users}`;
  const res = await api('POST', '/api/v1/sessions', { username: user, password: 'password123', device: `d${Math.floor(i / users)}` });
  if (res.status !== 200) throw new Error(`login ${user}: ${res.status}`);
  return { user, token: res.body.token };
}

function connect(i, cred) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl, ['v12.stomp'], { localAddress: `127.0.0.${2 + (i % sources)}`, perMessageDeflate: false });
    let buf = '';
    ws.on('open', () => {
      ws.send(`CONNECT\naccept-version:1.2\nheart-beat:0,0\nlogin:${cred.user}\npasscode:${cred.token}\n\n\0`);
      ws.send(`SUBSCRIBE\nid:0\ndestination:/user/queue/messages\nack:client\nreceipt:s\n\n\0`);
    });
    ws.on('message', (data) => {
      buf += data.toString();
      if (buf.includes('ERROR')) reject(new Error(buf));
      if (buf.includes('RECEIPT')) resolve(ws);
    });
    ws.on('error', reject);
  });
}

for (let u = 0; u < users; u++) {
  const r = await api('POST', '/api/v1/users', { username: `idle${u}`, password: 'password123' });
  if (r.status !== 201 && r.status !== 409) throw new Error(`register: ${r.status}`);
}
const creds = [];
for (let i = 0; i < total; i += 100) {
  creds.push(...await Promise.all(Array.from({ length: Math.min(100, total - i) }, (_, k) => token(i + k))));
}
const sockets = [];
const started = Date.now();
for (let i = 0; i < warmup; i++) sockets.push(await connect(i, creds[i]));
await new Promise((r) => setTimeout(r, 1000));  // let the warm-up settle before the baseline
const base = rssKiB();
for (let i = warmup; i < total; i += 200) {
  sockets.push(...await Promise.all(Array.from({ length: Math.min(200, total - i) }, (_, k) => connect(i + k, creds[i + k]))));
}
const connectSeconds = (Date.now() - started) / 1000;
await new Promise((r) => setTimeout(r, 2000));  // idle
const after = rssKiB();
const perConn = ((after - base) * 1024) / (total - warmup);
const result = { scenario: 'idle', connections: sockets.length, rss_before_kib: base, rss_after_kib: after,
  bytes_per_connection: Math.round(perConn), connect_rate_per_s: Math.round(total / connectSeconds) };
console.log(JSON.stringify(result));
for (const s of sockets) s.terminate();
