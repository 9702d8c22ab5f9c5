// The long connection: STOMP 1.2 over WebSocket at /ws (docs/protocol.md), with automatic
// reconnect and resync.
//
// Each attempt uses a fresh @stomp/stompjs Client (its own reconnect loop is off), so a
// stale socket's late callbacks can be recognised and ignored. The inbox subscription uses
// ack:client and `since:<highest seq processed>`: after a reconnect the server sends exactly
// the messages after that seq (no gap), and anything at or below it is dropped here (no
// duplicate). Messages are acknowledged cumulatively after they were handed to the UI; if the
// UI throws on one, neither lastSeq nor the ACK moves past it and the connection is dropped
// and retried (with backoff) so that message comes again.
//
// The retry backoff is reset only once a connection has stayed up for STABLE_MS, so an error
// that comes right after CONNECTED (and closes the socket) cannot make a tight reconnect loop.
import { Client, type IFrame, type IMessage } from '@stomp/stompjs';

export type ConnState = 'connecting' | 'online' | 'reconnecting' | 'offline' | 'kicked' | 'closed';

export interface InboxMessage {
  seq: number; msgId: string; conversation: string; convSeq: number; from: string;
  sentAt: number; body: string; contentType: string;
  clientMsgId?: string;                  // set when the sender's SEND had one
}
export interface Receipt {
  receiptId: string; msgId: string; seq: number; conversation: string; convSeq: number;
  duplicate: boolean;
}
export interface Presence { user_id: string; username: string; online: boolean }

export interface ConnHandlers {
  state(s: ConnState, retryInMs?: number): void;
  connected(): void;                     // subscribed: flush the outbox now
  message(m: InboxMessage): void;        // every inbox message, exactly once, in seq order
  receipt(r: Receipt): void;
  presence(p: Presence): void;
  // An ERROR answering one of our SENDs: `message` is the ERROR's message header (what went
  // wrong, e.g. "forbidden"), `detail` its body.
  sendRejected(receiptId: string, message: string, detail: string): void;
  authFailed(): void;
  kicked(): void;
}

const HEARTBEAT_MS = 10000;
// A connection counts as healthy (and the backoff starts again at 0.5 s) after this long.
const STABLE_MS = 10000;
// ERRORs about the server's state rather than the frame: the SEND is retried, not failed.
const TRANSIENT_ERRORS = new Set(['rate limit exceeded', 'server unavailable', 'too many receipts pending']);

export class Connection {
  private client: Client | null = null;
  private gen = 0;
  private failures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private stableTimer: ReturnType<typeof setTimeout> | null = null;
  private ackPending: { gen: number; msg: IMessage } | null = null;
  private stopped = false;
  private everConnected = false;
  state: ConnState = 'connecting';

  constructor(
    private readonly username: string,
    private readonly token: string,
    public lastSeq: number,
    private readonly h: ConnHandlers,
  ) {
    window.addEventListener('offline', this.onOffline);
    window.addEventListener('online', this.onOnline);
  }

  get connected(): boolean { return this.state === 'online' && this.client !== null && this.client.connected; }

  start(): void {
    if (!navigator.onLine) { this.setState('offline'); return; }
    this.connect();
  }

  // Logout or kicked: stop for good. `graceful` sends DISCONNECT (waits for pending receipts).
  async stop(graceful = true): Promise<void> {
    this.stopped = true;
    window.removeEventListener('offline', this.onOffline);
    window.removeEventListener('online', this.onOnline);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.clearStable();
    this.flushAck();
    const c = this.client;
    this.client = null;
    this.gen++;
    if (c) {
      try {
        await Promise.race([c.deactivate({ force: !graceful }), new Promise((r) => setTimeout(r, 1500))]);
      } catch { /* closing anyway */ }
    }
    if (this.state !== 'kicked') this.setState('closed');
  }

  // "Use here" after being kicked: connect again with the same token (kicks the other tab).
  resume(): void {
    if (this.state !== 'kicked') return;
    this.stopped = false;
    window.addEventListener('offline', this.onOffline);
    window.addEventListener('online', this.onOnline);
    this.failures = 0;
    this.start();
  }

  publish(destination: string, body: string, clientMsgId: string, receiptId: string): boolean {
    const c = this.client;
    if (!c || !this.connected) return false;
    try {
      c.publish({
        destination, body,
        headers: { 'client-msg-id': clientMsgId, receipt: receiptId, 'content-type': 'text/plain' },
      });
      return true;
    } catch {
      return false;
    }
  }

  private setState(s: ConnState, retryInMs?: number) {
    this.state = s;
    this.h.state(s, retryInMs);
  }

  private onOffline = () => {
    if (this.stopped) return;
    this.drop();
    this.setState('offline');
  };

  private onOnline = () => {
    if (this.stopped || this.state === 'online') return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.failures = 0;
    this.connect();
  };

  private clearStable() {
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = null;
  }

  // Abandons the current socket at once (a dead network may never finish a close handshake).
  private drop() {
    this.clearStable();
    this.flushAck();
    const c = this.client;
    this.client = null;
    this.gen++;
    if (c) void c.deactivate({ force: true }).catch(() => {});
  }

  private connect() {
    if (this.stopped) return;
    this.drop();
    const gen = this.gen;
    this.setState(this.everConnected ? 'reconnecting' : 'connecting');
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const client = new Client({
      brokerURL: `${proto}://${location.host}/ws`,
      connectHeaders: { login: this.username, passcode: this.token },
      heartbeatIncoming: HEARTBEAT_MS,
      heartbeatOutgoing: HEARTBEAT_MS,
      reconnectDelay: 0,
      connectionTimeout: 8000,
      // Heart-beats lost: close the socket at once instead of waiting for a close handshake a
      // black-holed network never completes (onWebSocketClose then schedules the retry).
      discardWebsocketOnCommFailure: true,
      debug: () => {},
    });
    this.client = client;

    client.onConnect = () => {
      if (gen !== this.gen) return;
      this.everConnected = true;
      this.clearStable();
      this.stableTimer = setTimeout(() => {
        this.stableTimer = null;
        if (gen === this.gen) this.failures = 0;
      }, STABLE_MS);
      // `since` only when we know where we are; otherwise the device's cursor decides.
      const inboxHeaders: Record<string, string> = { id: 'inbox', ack: 'client' };
      if (this.lastSeq > 0) inboxHeaders.since = String(this.lastSeq);
      client.subscribe('/user/queue/messages', (m) => this.onMessage(gen, m), inboxHeaders);
      client.subscribe('/topic/presence', (m) => {
        if (gen !== this.gen) return;
        try { this.h.presence(JSON.parse(m.body) as Presence); } catch { /* ignore */ }
      }, { id: 'presence' });
      this.setState('online');
      this.h.connected();
    };
    client.onUnhandledReceipt = (frame: IFrame) => {
      if (gen !== this.gen) return;
      const hd = frame.headers;
      if (!hd['msg-id']) return;
      this.h.receipt({
        receiptId: hd['receipt-id'], msgId: hd['msg-id'], seq: Number(hd.seq),
        conversation: hd.conversation, convSeq: Number(hd['conv-seq']), duplicate: hd.duplicate === 'true',
      });
    };
    client.onHeartbeatLost = () => {
      if (gen !== this.gen || this.stopped) return;
      this.drop();
      this.scheduleRetry();
    };
    client.onStompError = (frame: IFrame) => {
      if (gen !== this.gen) return;
      const message = frame.headers.message ?? 'error';
      if (message === 'kicked') {
        this.stopped = true;
        this.drop();
        window.removeEventListener('offline', this.onOffline);
        window.removeEventListener('online', this.onOnline);
        this.setState('kicked');
        this.h.kicked();
        return;
      }
      if (message === 'authentication failed' || message === 'missing passcode') {
        this.stopped = true;
        this.drop();
        this.h.authFailed();
        return;
      }
      if (message === 'invalid since') {
        // Our lastSeq is past the end of the server's inbox (its data is not what we saw):
        // forget it and let the next subscription start from the device's cursor.
        this.lastSeq = 0;
      }
      const rid = frame.headers['receipt-id'];
      if (rid && !TRANSIENT_ERRORS.has(message)) this.h.sendRejected(rid, message, frame.body ?? '');
      // The server closes the connection after an ERROR; onWebSocketClose reconnects.
    };
    client.onWebSocketClose = () => {
      if (gen !== this.gen) return;
      this.clearStable();
      this.client = null;
      this.gen++;
      if (this.stopped) return;
      this.scheduleRetry();
    };
    client.activate();
  }

  private scheduleRetry() {
    if (!navigator.onLine) { this.setState('offline'); return; }
    this.failures++;
    // 0.5 s, 1 s, 2 s … capped at 15 s, with jitter so a restarted server is not stormed.
    const base = Math.min(15000, 500 * 2 ** Math.min(this.failures - 1, 5));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.setState('reconnecting', delay);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, delay);
  }

  private onMessage(gen: number, m: IMessage) {
    if (gen !== this.gen) return;
    const hd = m.headers;
    const seq = Number(hd.seq);
    if (Number.isFinite(seq) && seq > this.lastSeq) {
      try {
        this.h.message({
          seq, msgId: hd['msg-id'], conversation: hd.conversation, convSeq: Number(hd['conv-seq']),
          from: hd.from, sentAt: Number(hd['sent-at']), body: m.body,
          contentType: hd['content-type'] ?? 'text/plain',
          clientMsgId: hd['client-msg-id'] || undefined,
        });
      } catch (e) {
        // Not handled: do not move lastSeq or the ACK past it. Everything after it on this
        // connection is dropped too (order matters), and the reconnect brings it back.
        console.error('pigeon: handling message seq', seq, 'failed', e);
        this.drop();
        if (!this.stopped) this.scheduleRetry();
        return;
      }
      this.lastSeq = seq;
    }
    // Cumulative ACK of the highest seq handled, batched.
    this.ackPending = { gen, msg: m };
    if (!this.ackTimer) this.ackTimer = setTimeout(() => this.flushAck(), 50);
  }

  private flushAck() {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const p = this.ackPending;
    this.ackPending = null;
    if (!p || p.gen !== this.gen || !this.client?.connected) return;
    try { p.msg.ack(); } catch { /* the connection went away; the cursor resyncs */ }
  }
}
