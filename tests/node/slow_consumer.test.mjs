// A client that stops reading cannot make the server's memory grow: its queue stays bounded,
// it is closed, and its device resyncs everything from its cursor on reconnect.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, stomp, collect, disconnect, waitFor, rawConnected } from './support.mjs';

const LIMIT = 256 * 1024;
let server;
before(async () => {
  server = await startServer(['--max-outbound-bytes', String(LIMIT), '--write-timeout-ms', '1000', '--rate-limit', '0']);
});
after(async () => { await server.stop(); });

test('a consumer that stops reading is closed; memory stays bounded; it resyncs after', async () => {
  const alice = await server.user('alice');
  const slow = await server.user('slow');
  const fast = await server.user('fast');
  const group = await server.api('POST', '/api/v1/groups', { name: 'news', members: ['slow', 'fast'] }, alice.token);
  const gid = group.body.group_id;

  const stalled = await rawConnected(server, slow);
  stalled.send(stalled.frame('SUBSCRIBE', { id: '0', destination: '/user/queue/messages', ack: 'client' }));
  stalled.ws._socket.pause();  // stop reading: the kernel buffers fill, then the server's queue
  const healthy = await stomp(server, fast);
  const got = collect(healthy);

  const COUNT = 300;
  const body = 'x'.repeat(60 * 1024);
  let peak = 0;
  for (let i = 0; i < COUNT; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, k) => server.api('POST', '/api/v1/messages',
      { to_group: gid, body: `${i + k}:${body}`, client_msg_id: `n${i + k}` }, alice.token)));
    peak = Math.max(peak, await server.metric('pigeon_gateway_outbound_bytes'));
  }
  await waitFor(() => got.length === COUNT, 30000, 'the healthy consumer to get everything').catch((e) => { console.log('got', got.length, 'closed', healthy.closed.value); throw e; });
  await waitFor(async () => (await server.metric('pigeon_gateway_slow_consumers_total')) >= 1, 15000, 'the slow consumer to be closed');
  // Bounded: never more than the limit per session (two sessions here) plus one batch.
  assert.ok(peak <= 2 * LIMIT + 256 * 1024, `peak outbound ${peak}`);
  await waitFor(async () => (await server.metric('pigeon_gateway_outbound_bytes')) === 0, 10000, 'queues to drain');

  // The slow device reconnects and gets everything, in order, from its cursor.
  stalled.ws.terminate();
  const again = await stomp(server, await server.login('slow', 'phone'));
  const resynced = collect(again, { ack: 'client' });
  await waitFor(() => resynced.length === COUNT, 30000, 'the resync');
  const first = Number(resynced[0].headers.seq);
  assert.deepEqual(resynced.map((m) => Number(m.headers.seq)), Array.from({ length: COUNT }, (_, i) => first + i));
  assert.equal(new Set(resynced.map((m) => m.body.split(':')[0])).size, COUNT);
  await disconnect(again);
  await disconnect(healthy);
});
