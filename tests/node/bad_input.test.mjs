// Every kind of bad input on the STOMP gateway gets an ERROR frame with a clear message header
// and a closed connection; nothing is stored for a rejected frame; everyone else is unaffected.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startServer, stomp, collect, sendWithReceipt, disconnect, waitFor, raw, rawConnected } from './support.mjs';

let server, bystander, bystanderClient, bystanderGot, sender, senderClient;
before(async () => {
  server = await startServer(['--heartbeat-ms', '500', '--connect-timeout-ms', '1000',
    '--frame-rate', '20', '--frame-burst', '30', '--max-frame-bytes', '4096']);
  bystander = await server.user('bystander');
  sender = await server.user('sender');
  bystanderClient = await stomp(server, bystander);
  bystanderGot = collect(bystanderClient);
  senderClient = await stomp(server, sender);
});
after(async () => {
  // Everyone else was served throughout: the bystander still gets messages.
  const before = bystanderGot.length;
  await sendWithReceipt(senderClient, '/app/p2p/bystander', 'still here');
  await waitFor(() => bystanderGot.length === before + 1, 10000, 'the bystander to be served');
  assert.ok(!bystanderClient.closed.value);
  await disconnect(bystanderClient);
  await disconnect(senderClient);
  await server.stop();
});

let n = 0;
const unique = (base) => `${base}${++n}`;

// Sends `text` on a fresh connection (after CONNECT unless `connect` is false) and checks the
// ERROR and the close.
async function expectError(user, text, message, { connect = true } = {}) {
  const c = connect ? await rawConnected(server, user) : await raw(server);
  c.send(text);
  const error = await c.next('ERROR');
  assert.equal(error.headers.message, message, `ERROR body: ${error.body}`);
  await c.waitClosed();
  return error;
}

test('a malformed frame', async () => {
  const u = await server.user(unique('mal'));
  const error = await expectError(u, 'SEND\nno colon here\n\nx\0', 'malformed frame');
  assert.match(error.body, /header/);
});

test('an undefined header escape', async () => {
  const u = await server.user(unique('mal'));
  await expectError(u, 'SEND\ndestination:/app/p2p/bystander\\t\n\nx\0', 'malformed frame');
});

test('an unknown command', async () => {
  const u = await server.user(unique('mal'));
  await expectError(u, 'LAUNCH\n\n\0', 'unknown command');
});

test('a frame over the limit stores nothing', async () => {
  const u = await server.user(unique('big'));
  const target = await server.user(unique('tgt'));
  await expectError(u, `SEND\ndestination:/app/p2p/${target.name}\n\n${'x'.repeat(5000)}\0`, 'frame too large');
  assert.equal((await server.inbox(target)).length, 0);
});

test('SEND before CONNECT stores nothing', async () => {
  const target = await server.user(unique('tgt'));
  await expectError(null, `SEND\ndestination:/app/p2p/${target.name}\n\nsneaky\0`, 'not connected', { connect: false });
  assert.equal((await server.inbox(target)).length, 0);
});

test('CONNECT with a forged token, or a login that is not the token\'s user', async () => {
  const c = await raw(server);
  c.send(c.frame('CONNECT', { 'accept-version': '1.2', passcode: 'forged' }));
  assert.equal((await c.next('ERROR')).headers.message, 'authentication failed');
  await c.waitClosed();
  const u = await server.user(unique('who'));
  const d = await raw(server);
  d.send(d.frame('CONNECT', { 'accept-version': '1.2', login: 'bystander', passcode: u.token }));
  assert.equal((await d.next('ERROR')).headers.message, 'authentication failed');
  await d.waitClosed();
});

test('CONNECT without STOMP 1.2', async () => {
  const u = await server.user(unique('old'));
  const c = await raw(server);
  c.send(c.frame('CONNECT', { 'accept-version': '1.0,1.1', passcode: u.token }));
  const error = await c.next('ERROR');
  assert.equal(error.headers.message, 'unsupported protocol version');
  assert.equal(error.headers.version, '1.2');
  await c.waitClosed();
});

test('SUBSCRIBE to another user\'s queue', async () => {
  const u = await server.user(unique('spy'));
  await expectError(u, 'SUBSCRIBE\nid:0\ndestination:/user/bystander/queue/messages\n\n\0', 'forbidden');
});

test('SEND to a group the user is not in stores nothing', async () => {
  const owner = await server.user(unique('owner'));
  const outsider = await server.user(unique('outsider'));
  const g = await server.api('POST', '/api/v1/groups', { name: 'closed' }, owner.token);
  const error = await expectError(outsider, `SEND\ndestination:/app/group/${g.body.group_id}\n\nlet me in\0`, 'forbidden');
  assert.match(error.body, /not a member/);
  const history = await server.api('GET', `/api/v1/conversations/g:${g.body.group_id}/messages`, undefined, owner.token);
  assert.equal(history.body.messages.length, 0);
});

test('SEND to a user who does not exist', async () => {
  const u = await server.user(unique('lonely'));
  const error = await expectError(u, 'SEND\ndestination:/app/p2p/nobody-at-all\nreceipt:r1\n\nhello?\0', 'no such recipient');
  assert.equal(error.headers['receipt-id'], 'r1');
});

test('SENDs pipelined behind a failing one are not stored', async () => {
  const u = await server.user(unique('pipe'));
  const target = await server.user(unique('tgt'));
  const c = await rawConnected(server, u);
  let frames = c.frame('SEND', { destination: '/app/p2p/nobody-here' }, 'first fails');
  for (let i = 0; i < 10; i++) frames += c.frame('SEND', { destination: `/app/p2p/${target.name}` }, `after ${i}`);
  c.send(frames);
  assert.equal((await c.next('ERROR')).headers.message, 'no such recipient');
  await c.waitClosed();
  assert.equal((await server.inbox(target)).length, 0);
});

test('in one burst, the SENDs before a failing one are stored and those after are not', async () => {
  const u = await server.user(unique('burst'));
  const target = await server.user(unique('tgt'));
  const c = await rawConnected(server, u);
  let frames = '';
  for (let i = 0; i < 10; i++) frames += c.frame('SEND', { destination: `/app/p2p/${target.name}` }, `before ${i}`);
  frames += c.frame('SEND', { destination: '/app/p2p/nobody-here', receipt: 'bad' }, 'fails');
  for (let i = 0; i < 10; i++) frames += c.frame('SEND', { destination: `/app/p2p/${target.name}` }, `after ${i}`);
  c.send(frames);  // one WebSocket message: the sends are checked in batches
  const error = await c.next('ERROR');
  assert.equal(error.headers.message, 'no such recipient');
  assert.equal(error.headers['receipt-id'], 'bad');
  await c.waitClosed();
  // The ERROR may overtake the group commit of the sends before it: wait for them.
  let stored = [];
  await waitFor(async () => (stored = (await server.inbox(target)).map((m) => m.body)).length >= 10,
    5000, 'the sends before the failing one');
  assert.deepEqual(stored, Array.from({ length: 10 }, (_, i) => `before ${i}`));
});

test('SUBSCRIBE since a seq past the end of the inbox', async () => {
  const u = await server.user(unique('future'));
  const error = await expectError(u, 'SUBSCRIBE\nid:0\ndestination:/user/queue/messages\nsince:1000\n\n\0', 'invalid since');
  assert.match(error.body, /past the end/);
});

test('an unknown destination', async () => {
  const u = await server.user(unique('lost'));
  await expectError(u, 'SEND\ndestination:/queue/elsewhere\n\nx\0', 'unknown destination');
  const v = await server.user(unique('lost'));
  await expectError(v, 'SUBSCRIBE\nid:0\ndestination:/topic/everything\n\n\0', 'unknown destination');
});

test('a flood above the per-connection rate', async () => {
  const u = await server.user(unique('flood'));
  const target = await server.user(unique('tgt'));
  const c = await rawConnected(server, u);
  let frames = '';
  for (let i = 0; i < 100; i++) frames += c.frame('SEND', { destination: `/app/p2p/${target.name}`, 'client-msg-id': `f${i}` }, `f${i}`);
  c.send(frames);
  const error = await c.next('ERROR');
  assert.equal(error.headers.message, 'rate limit exceeded');
  await c.waitClosed();
  // What came before the limit was accepted; nothing after it.
  const stored = (await server.inbox(target)).length;
  assert.ok(stored <= 31, `stored ${stored}`);
});

test('no CONNECT within the connect timeout', async () => {
  const c = await raw(server);
  const error = await c.next('ERROR', 5000);
  assert.equal(error.headers.message, 'connect timeout');
  await c.waitClosed();
});

test('a client that stops sending heart-beats is closed after twice the interval', async () => {
  const u = await server.user(unique('quiet'));
  const before = await server.metric('pigeon_gateway_heartbeat_timeouts_total');
  const c = await rawConnected(server, u, { 'heart-beat': '500,0' });
  const connected = c.frames.find((f) => f.command === 'CONNECTED');
  assert.equal(connected.headers['heart-beat'], '500,500');
  const start = Date.now();
  await c.waitClosed(5000);
  assert.ok(Date.now() - start >= 900, 'not before twice the interval');
  assert.equal(await server.metric('pigeon_gateway_heartbeat_timeouts_total'), before + 1);
});

test('a client that does send heart-beats stays connected', async () => {
  const u = await server.user(unique('beating'));
  const c = await rawConnected(server, u, { 'heart-beat': '500,500' });
  const deadline = Date.now() + 2000;
  let beats = 0;
  c.ws.on('message', (data) => { if (data.toString() === '\n') beats++; });
  await waitFor(async () => {
    c.send('\n');
    return Date.now() > deadline;
  }, 5000, 'two seconds of heart-beats');
  assert.ok(!c.isClosed());
  assert.ok(beats >= 2, `server sent ${beats} heart-beats`);
  c.ws.close();
});

test('a WebSocket protocol violation closes the connection with 1002', async () => {
  const u = await server.user(unique('wsv'));
  const c = await rawConnected(server, u);
  const code = new Promise((resolve) => c.ws.on('close', (status) => resolve(status)));
  c.ws._socket.write(Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]));  // unmasked
  await c.waitClosed();
  assert.equal(await code, 1002);  // protocol error, as docs/protocol.md says
});

test('a WebSocket message over the limit closes the connection with 1009', async () => {
  const u = await server.user(unique('wsbig'));
  const c = await rawConnected(server, u);
  const code = new Promise((resolve) => c.ws.on('close', (status) => resolve(status)));
  c.send('x'.repeat(4 * 4096 + 1));  // over 4 × --max-frame-bytes, the message limit
  await c.waitClosed();
  assert.equal(await code, 1009);  // message too big
});

test('an upgrade without a proper WebSocket handshake is refused', async () => {
  const res = await fetch(`${server.base}/ws`);
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.equal(body.error.code, 'bad_request');
  // A POST with every upgrade header is still not a WebSocket handshake.
  const answer = await new Promise((resolve, reject) => {
    const sock = connect(server.port, '127.0.0.1', () => sock.write('POST /ws HTTP/1.1\r\nHost: x\r\n' +
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n'));
    let text = '';
    sock.on('data', (d) => { text += d; });
    sock.on('close', () => resolve(text));
    sock.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 400 /);
});
