// Shared helpers for the Node integration tests: run the real pigeond on port 0, use its HTTP
// API, and connect with @stomp/stompjs (the reference third-party client) or with a raw
// WebSocket to send frames a well-behaved client never would.
import { startPigeond, waitFor } from '../support/pigeond.mjs';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

export { waitFor };

const PIGEOND = process.env.PIGEOND;
if (!PIGEOND) throw new Error('set PIGEOND to the pigeond binary');

export async function startServer(extraArgs = []) {
  const server = await startPigeond(PIGEOND, extraArgs, { tmpPrefix: 'pigeon-node-' });
  Object.assign(server, {
    // Registers `name` and logs it in on `device`; returns { name, token, userId, device }.
    async user(name, device = 'phone') {
      const reg = await server.api('POST', '/api/v1/users', { username: name, password: 'password123' });
      if (reg.status !== 201 && reg.status !== 409) throw new Error(`register ${name}: ${reg.status}`);
      return server.login(name, device);
    },
    async login(name, device = 'phone') {
      const res = await server.api('POST', '/api/v1/sessions', { username: name, password: 'password123', device });
      if (res.status !== 200) throw new Error(`login ${name}: ${res.status}`);
      return { name, device, token: res.body.token, userId: res.body.user_id, gateway: res.body.gateway };
    },
    async inbox(user) {
      const res = await server.api('GET', '/api/v1/sync?after=0&limit=500', undefined, user.token);
      return res.body.messages;
    },
    async metric(name) {
      const text = await (await fetch(server.base + '/metrics')).text();
      const line = text.split('\n').find((l) => l.startsWith(name + ' '));
      return line ? Number(line.split(' ')[1]) : 0;
    },
  });
  return server;
}

// A connected @stomp/stompjs client. Resolves once CONNECTED arrives.
export async function stomp(server, user, { heartbeat = 0, connectHeaders = {} } = {}) {
  const errors = [];
  const closed = { value: false };
  const client = new Client({
    webSocketFactory: () => new WebSocket(server.wsUrl, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    connectHeaders: { login: user.name, passcode: user.token, ...connectHeaders },
    heartbeatIncoming: heartbeat,
    heartbeatOutgoing: heartbeat,
    reconnectDelay: 0,
    debug: () => {},
  });
  client.errors = errors;
  client.closed = closed;
  await new Promise((resolve, reject) => {
    client.onConnect = (frame) => { client.connectedFrame = frame; resolve(); };
    client.onStompError = (frame) => { errors.push(frame); reject(new Error(frame.headers.message)); };
    client.onWebSocketClose = () => { closed.value = true; };
    client.onWebSocketError = (e) => reject(e);
    client.activate();
  });
  client.onStompError = (frame) => errors.push(frame);
  return client;
}

// Subscribes to the user's queue and collects MESSAGE frames.
export function collect(client, { ack = 'auto', since, id = 'sub-0' } = {}) {
  const got = [];
  const headers = { ack };
  if (since !== undefined) headers.since = String(since);
  const sub = client.subscribe('/user/queue/messages', (m) => got.push(m), { id, ...headers });
  got.subscription = sub;
  return got;
}

// Publishes with a receipt and resolves with the RECEIPT frame.
export function sendWithReceipt(client, destination, body, headers = {}) {
  const receipt = `r-${Math.random().toString(36).slice(2)}`;
  return new Promise((resolve) => {
    client.watchForReceipt(receipt, resolve);
    client.publish({ destination, body, headers: { receipt, ...headers } });
  });
}

export async function disconnect(client) {
  await client.deactivate();
}

// A raw WebSocket speaking STOMP by hand, for frames no real client sends.
export async function raw(server, { protocols = ['v12.stomp'], headers = {} } = {}) {
  const ws = new WebSocket(server.wsUrl, protocols, { headers });
  const frames = [];
  let buffer = '';
  let closed = false;
  ws.on('message', (data) => {
    buffer += data.toString('utf8');
    for (;;) {
      buffer = buffer.replace(/^\n+/, '');  // heart-beats
      const nul = buffer.indexOf('\0');
      if (nul < 0) break;
      frames.push(parseFrame(buffer.slice(0, nul)));
      buffer = buffer.slice(nul + 1);
    }
  });
  ws.on('close', () => { closed = true; });
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  return {
    ws,
    frames,
    isClosed: () => closed,
    send: (text) => ws.send(text),
    frame: (command, hdrs = {}, body = '') => {
      let out = command + '\n';
      for (const [k, v] of Object.entries(hdrs)) out += `${k}:${v}\n`;
      return out + '\n' + body + '\0';
    },
    async next(command, ms = 10000) {
      return waitFor(() => frames.find((f) => f.command === command), ms, `a ${command} frame`);
    },
    async waitClosed(ms = 10000) { return waitFor(() => closed, ms, 'the connection to close'); },
  };
}

function parseFrame(text) {
  const [head, ...rest] = text.split('\n\n');
  const lines = head.split('\n');
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i);
    if (!(name in headers)) headers[name] = line.slice(i + 1).replace(/\\c/g, ':').replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
  }
  return { command: lines[0], headers, body: rest.join('\n\n') };
}

// Connects a raw client and completes CONNECT for `user`.
export async function rawConnected(server, user, extra = {}) {
  const c = await raw(server);
  c.send(c.frame('CONNECT', { 'accept-version': '1.2', host: 'pigeon', login: user.name, passcode: user.token, ...extra }));
  await c.next('CONNECTED');
  return c;
}
