// Chat over STOMP with the real @stomp/stompjs client: receipts, groups, ack modes, resync
// after a disconnect, multi-device and kick, presence.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stomp, collect, sendWithReceipt, disconnect, waitFor, rawConnected } from './support.mjs';

let server;
before(async () => { server = await startServer(['--heartbeat-ms', '1000']); });
after(async () => { await server.stop(); });

let n = 0;
const unique = (base) => `${base}${++n}`;

test('the upgrade answers v12.stomp and CONNECTED carries the negotiated headers', async () => {
  const alice = await server.user(unique('alice'));
  assert.equal(alice.gateway.ws, `ws://127.0.0.1:${server.port}/ws`);
  const client = await stomp(server, alice, { heartbeat: 2000 });
  const h = client.connectedFrame.headers;
  assert.equal(h.version, '1.2');
  assert.equal(h['heart-beat'], '1000,1000');
  assert.ok(h.session);
  assert.match(h.server, /^pigeon\//);
  assert.equal(h['user-id'], alice.userId);
  await disconnect(client);
});

test('two users chat with receipts sent only once the message is stored', async () => {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const a = await stomp(server, alice);
  const b = await stomp(server, bob);
  const got = collect(b);
  await waitFor(async () => (await server.api('GET', '/api/v1/users/online', undefined, bob.token)).body.users.some((u) => u.username === alice.name));
  const receipt = await sendWithReceipt(a, `/app/p2p/${bob.name}`, 'hello bob', { 'client-msg-id': 'c1', 'content-type': 'text/plain' });
  assert.ok(receipt.headers['msg-id']);
  assert.equal(receipt.headers['conv-seq'], '1');
  assert.equal(receipt.headers.seq, '1');
  // The RECEIPT means durable: the store already has it.
  const stored = await server.inbox(bob);
  assert.equal(stored.length, 1);
  assert.equal(stored[0].msg_id, receipt.headers['msg-id']);

  await waitFor(() => got.length === 1, 10000, 'bob to get the message');
  const m = got[0];
  assert.equal(m.body, 'hello bob');
  assert.equal(m.headers.from, alice.name);
  assert.equal(m.headers['msg-id'], receipt.headers['msg-id']);
  assert.equal(m.headers.seq, '1');
  assert.equal(m.headers['conv-seq'], '1');
  assert.equal(m.headers.conversation, receipt.headers.conversation);
  assert.equal(m.headers['content-type'], 'text/plain');
  assert.equal(m.headers.subscription, 'sub-0');
  assert.equal(m.headers['client-msg-id'], 'c1');
  assert.ok(m.headers['message-id']);
  assert.ok(Number(m.headers['sent-at']) > 0);

  // The same client-msg-id again: the same receipt, no second message.
  const again = await sendWithReceipt(a, `/app/p2p/${bob.name}`, 'hello bob', { 'client-msg-id': 'c1' });
  assert.equal(again.headers['msg-id'], receipt.headers['msg-id']);
  assert.equal(again.headers.duplicate, 'true');
  const reply = await sendWithReceipt(b, `/app/p2p/${alice.name}`, 'hi alice', { 'client-msg-id': 'c1' });
  assert.equal(reply.headers['conv-seq'], '2');
  assert.equal((await server.inbox(bob)).length, 2);
  await disconnect(a);
  await disconnect(b);
});

test('a group of three: every member gets each message once, in order', async () => {
  const users = await Promise.all([unique('g1'), unique('g2'), unique('g3')].map((u) => server.user(u)));
  const created = await server.api('POST', '/api/v1/groups', { name: 'trio', members: [users[1].name, users[2].name] }, users[0].token);
  assert.equal(created.status, 201);
  const gid = created.body.group_id;
  const clients = await Promise.all(users.map((u) => stomp(server, u)));
  const inboxes = clients.map((c) => collect(c));
  for (let i = 0; i < 3; i++) {
    await sendWithReceipt(clients[i], `/app/group/${gid}`, `from ${users[i].name}`);
  }
  for (const got of inboxes) {
    await waitFor(() => got.length === 3, 10000, 'three group messages');
    assert.deepEqual(got.map((m) => m.headers['conv-seq']), ['1', '2', '3']);
    assert.deepEqual(got.map((m) => m.body), users.map((u) => `from ${u.name}`));
    assert.equal(got[0].headers.conversation, `g:${gid}`);
  }
  await Promise.all(clients.map(disconnect));
});

test('offline messages arrive on the next subscribe, in order, with nothing missing or doubled', async () => {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const a = await stomp(server, alice);
  let b = await stomp(server, bob);
  let got = collect(b, { ack: 'client' });
  for (let i = 1; i <= 5; i++) await sendWithReceipt(a, `/app/p2p/${bob.name}`, `m${i}`);
  await waitFor(() => got.length === 5, 10000, 'five messages');
  got[2].ack();  // cumulative: m1..m3
  await waitFor(async () => (await server.api('GET', '/api/v1/sync', undefined, (await server.login(bob.name, 'phone')).token)).body.messages.length === 2, 10000, 'the cursor to reach 3');
  await disconnect(b);

  for (let i = 6; i <= 205; i++) await sendWithReceipt(a, `/app/p2p/${bob.name}`, `m${i}`);
  b = await stomp(server, bob);
  got = collect(b, { ack: 'client' });
  // Live messages racing the resync must not be doubled or jump ahead.
  const live = (async () => { for (let i = 206; i <= 215; i++) await sendWithReceipt(a, `/app/p2p/${bob.name}`, `m${i}`); })();
  await live;
  await waitFor(() => got.length === 212, 20000, 'm4..m215');
  assert.deepEqual(got.map((m) => m.body), Array.from({ length: 212 }, (_, i) => `m${i + 4}`));
  assert.deepEqual(got.map((m) => Number(m.headers.seq)), Array.from({ length: 212 }, (_, i) => i + 4));
  await disconnect(a);
  await disconnect(b);
});

// Alice sends m1..m3 to a new bob, who subscribes with `ack` and receives them.
async function threeMessagesFor(ack) {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const a = await stomp(server, alice);
  for (let i = 1; i <= 3; i++) await sendWithReceipt(a, `/app/p2p/${bob.name}`, `m${i}`);
  const b = await stomp(server, bob);
  const got = collect(b, { ack });
  await waitFor(() => got.length === 3, 10000, 'three messages');
  return { bob, a, b, got };
}

test('ack:client-individual and NACK hand back only what was not acknowledged', async () => {
  const { bob, a, b, got } = await threeMessagesFor('client-individual');
  got[0].ack();
  got[2].ack();
  got[1].nack();  // m2 comes back; m1 and m3 were acknowledged
  await waitFor(() => got.length === 4, 10000, 'the NACKed message again');
  assert.equal(got[3].body, 'm2');
  got[3].ack();
  await waitFor(async () => (await server.api('GET', '/api/v1/sync', undefined, bob.token)).body.messages.length === 0, 10000, 'the cursor to reach 3');
  await disconnect(a);
  await disconnect(b);
});

test('NACK resends what is unacknowledged; acknowledging after a NACK is no error', async () => {
  const { bob, a, b, got } = await threeMessagesFor('client-individual');
  got[2].ack();
  got[0].nack();  // m3 is acknowledged: only m1 and m2 come back
  await waitFor(() => got.length >= 5, 10000, 'm1 and m2 again');
  assert.deepEqual(got.slice(3).map((m) => m.body), ['m1', 'm2']);
  // A NACK, then at once an ACK of a message delivered before it (the redelivery may or may
  // not have happened yet): accepted either way.
  got[3].nack();
  got[4].ack();
  await waitFor(() => got.length >= 6, 10000, 'm1 once more');
  for (const m of got.slice(5)) m.ack();
  await waitFor(async () => (await server.api('GET', '/api/v1/sync', undefined, bob.token)).body.messages.length === 0, 10000, 'the cursor to reach 3');
  assert.equal(b.errors.length, 0);
  assert.ok(!b.closed.value);
  await disconnect(a);
  await disconnect(b);
});

test('ack:auto acknowledges what was written: a reconnect gets nothing again', async () => {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const a = await stomp(server, alice);
  const b = await stomp(server, bob);
  const got = collect(b);
  for (let i = 1; i <= 3; i++) await sendWithReceipt(a, `/app/p2p/${bob.name}`, `m${i}`);
  await waitFor(() => got.length === 3, 10000, 'three messages');
  await waitFor(async () => (await server.api('GET', '/api/v1/sync', undefined, bob.token)).body.messages.length === 0, 10000, 'the cursor to move');
  await disconnect(b);
  const b2 = await stomp(server, bob);
  const again = collect(b2);
  await sendWithReceipt(a, `/app/p2p/${bob.name}`, 'm4');
  await waitFor(() => again.length === 1, 10000, 'only the new message');
  assert.equal(again[0].body, 'm4');
  await disconnect(a);
  await disconnect(b2);
});

test('since: a client can ask for everything after a seq it holds', async () => {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const a = await stomp(server, alice);
  for (let i = 1; i <= 4; i++) await sendWithReceipt(a, `/app/p2p/${bob.name}`, `m${i}`);
  const b = await stomp(server, bob);
  const got = collect(b, { since: 2 });
  await waitFor(() => got.length === 2, 10000, 'm3 and m4');
  assert.deepEqual(got.map((m) => m.body), ['m3', 'm4']);
  await disconnect(a);
  await disconnect(b);
});

test('every device of a user gets every message, the sender\'s other devices included', async () => {
  const alice = await server.user(unique('alice'), 'phone');
  const aliceWeb = await server.login(alice.name, 'web');
  const bob = await server.user(unique('bob'));
  const phone = await stomp(server, alice);
  const web = await stomp(server, aliceWeb);
  const b = await stomp(server, bob);
  const onWeb = collect(web);
  const onBob = collect(b);
  await sendWithReceipt(phone, `/app/p2p/${bob.name}`, 'sent from my phone');
  await waitFor(() => onWeb.length === 1 && onBob.length === 1, 10000, 'both deliveries');
  assert.equal(onWeb[0].body, 'sent from my phone');
  await Promise.all([phone, web, b].map(disconnect));
});

test('on the sending connection the RECEIPT comes before the echo of the message', async () => {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const c = await rawConnected(server, alice);
  c.send(c.frame('SUBSCRIBE', { id: 'mine', destination: '/user/queue/messages', receipt: 'sub' }));
  await waitFor(() => c.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'sub'), 10000, 'the subscription');
  for (let i = 0; i < 5; i++) {
    c.send(c.frame('SEND', { destination: `/app/p2p/${bob.name}`, 'client-msg-id': `e${i}`, receipt: `r${i}` }, `echo ${i}`));
  }
  await waitFor(() => c.frames.filter((f) => f.command === 'MESSAGE').length === 5, 10000, 'five echoes');
  for (let i = 0; i < 5; i++) {
    const receiptAt = c.frames.findIndex((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === `r${i}`);
    const echoAt = c.frames.findIndex((f) => f.command === 'MESSAGE' && f.headers['client-msg-id'] === `e${i}`);
    assert.ok(receiptAt >= 0 && echoAt > receiptAt, `send ${i}: receipt at ${receiptAt}, echo at ${echoAt}`);
  }
  c.ws.close();
});

test('a second connection for the same device kicks the first', async () => {
  const alice = await server.user(unique('alice'));
  const first = await rawConnected(server, alice);
  const again = await server.login(alice.name, 'phone');
  const second = await stomp(server, again);
  const error = await first.next('ERROR');
  assert.equal(error.headers.message, 'kicked');
  await first.waitClosed();
  // The new connection is the one that gets messages.
  const got = collect(second);
  const bob = await server.user(unique('bob'));
  const b = await stomp(server, bob);
  await sendWithReceipt(b, `/app/p2p/${alice.name}`, 'still there?');
  await waitFor(() => got.length === 1, 10000, 'delivery to the new connection');
  await Promise.all([second, b].map(disconnect));
});

test('presence: online users and a contact\'s online/offline stream', async () => {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const created = await server.api('POST', '/api/v1/groups', { name: 'pair', members: [bob.name] }, alice.token);
  assert.equal(created.status, 201);
  const a = await stomp(server, alice);
  const events = [];
  a.subscribe('/topic/presence', (m) => events.push(JSON.parse(m.body)), { id: 'presence' });
  const b = await stomp(server, bob);
  await waitFor(() => events.some((e) => e.username === bob.name && e.online), 10000, 'bob online');
  const online = await server.api('GET', '/api/v1/users/online', undefined, alice.token);
  assert.equal(online.status, 200);
  const names = online.body.users.map((u) => u.username);
  assert.ok(names.includes(alice.name) && names.includes(bob.name));
  await disconnect(b);
  await waitFor(() => events.at(-1).username === bob.name && events.at(-1).online === false, 10000, 'bob offline');
  const after = await server.api('GET', '/api/v1/users/online', undefined, alice.token);
  assert.ok(!after.body.users.some((u) => u.username === bob.name));
  await disconnect(a);
});

test('DISCONNECT with a receipt is answered after earlier sends are stored', async () => {
  const alice = await server.user(unique('alice'));
  const bob = await server.user(unique('bob'));
  const c = await rawConnected(server, alice);
  for (let i = 0; i < 20; i++) c.send(c.frame('SEND', { destination: `/app/p2p/${bob.name}`, 'client-msg-id': `d${i}` }, `m${i}`));
  c.send(c.frame('DISCONNECT', { receipt: 'bye' }));
  await waitFor(() => c.frames.some((f) => f.command === 'RECEIPT' && f.headers['receipt-id'] === 'bye'), 10000, 'the DISCONNECT receipt');
  assert.equal((await server.inbox(bob)).length, 20);
  await c.waitClosed();
});
