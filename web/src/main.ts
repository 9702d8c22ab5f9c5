// Pigeon web client: plain TypeScript and DOM. Every piece of user data is put on the page as
// text (see dom.ts); there is no innerHTML anywhere.
import './style.css';
import { Api, ApiError, type Group, type UserRef, type WireMessage } from './api';
import { Connection, type ConnState, type InboxMessage, type Presence, type Receipt } from './conn';
import { avatar, clear, colorFor, fullTime, h, icon, listTime, randomId, replaceChildren, shortTime } from './dom';
import {
  activity, lastConvSeq, newConv, orderedMessages, p2pConvId, Stored, type Conv, type Msg,
} from './state';

const MAX_BODY_BYTES = 60000;          // the server takes 64 KiB per frame; keep headroom for headers
const HISTORY_PAGE = 50;
const USERNAME_RE = /^[A-Za-z0-9_.-]*$/;
const LOBBY_ID = '1';

interface SessionInfo { token: string; user_id: string; username: string; device: string }

const api = new Api();
const root = document.getElementById('app')!;

// ---- per-tab and per-profile storage --------------------------------------------------------

// The device name is per tab (sessionStorage), so two tabs of one browser are two devices.
function tabDevice(): string {
  let d = sessionStorage.getItem('pigeon.device');
  if (!d) {
    d = randomId('web-', 6);
    sessionStorage.setItem('pigeon.device', d);
  }
  return d;
}
const sessionStore = new Stored<SessionInfo | null>(sessionStorage, 'pigeon.session', null);
const lastUser = new Stored<string>(localStorage, 'pigeon.last-user', '');
const nameCache = new Stored<Record<string, string>>(localStorage, 'pigeon.names', {});

// ---- application state ----------------------------------------------------------------------

interface AppState {
  me: SessionInfo;
  convs: Map<string, Conv>;
  groups: Map<string, Group>;
  names: Map<string, string>;          // user id -> username
  online: Set<string>;                 // usernames
  outbox: Msg[];
  openId: string | null;
  conn: Connection | null;
  connState: ConnState;
  retryInMs?: number;
  readMarks: Record<string, number>;
  membersOpen: boolean;
  query: string;
  results: UserRef[] | null;
  timers: ReturnType<typeof setInterval>[];
  closed: boolean;
  groupLookups: Map<string, Promise<void>>;   // group id -> its GET in flight
  peerLookup: Promise<void> | null;           // the user list fetch in flight
  peersTried: Set<string>;                    // user ids that lookup did not name
}

let S: AppState | null = null;
let readStore: Stored<Record<string, number>>;
let outboxStore: Stored<{ cmid: string; conv: string; body: string; sentAt: number }[]>;

// ---- rendering skeleton ---------------------------------------------------------------------

interface Ui {
  app: HTMLElement;
  banner: HTMLElement;
  status: HTMLElement;
  search: HTMLInputElement;
  listArea: HTMLElement;
  chat: HTMLElement;
  chatHeader: HTMLElement;
  scroller: HTMLElement;
  historyStatus: HTMLElement;
  msgList: HTMLElement;
  composer: HTMLFormElement;
  input: HTMLTextAreaElement;
  sendBtn: HTMLButtonElement;
  composerNote: HTMLElement;
  members: HTMLElement;
  toasts: HTMLElement;
  elems: Map<string, HTMLElement>;
  renderedConv: string | null;
}
let ui: Ui | null = null;
let scheduled = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    renderAll();
  });
}

function toast(text: string, kind: 'error' | 'info' = 'error'): void {
  if (!ui) return;
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
  ui.toasts.appendChild(t);
  setTimeout(() => t.remove(), 5000);
}

function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  return e instanceof Error ? e.message : String(e);
}

// ---- login screen ---------------------------------------------------------------------------

function showLogin(opts: { mode?: 'login' | 'register'; notice?: string; username?: string } = {}): void {
  ui = null;
  let mode = opts.mode ?? 'login';
  const username = h('input', {
    id: 'login-username', name: 'username', autocomplete: 'username', required: true,
    minlength: 3, maxlength: 32, pattern: '[A-Za-z0-9_.\\-]+', spellcheck: 'false',
    autocapitalize: 'off', value: opts.username ?? lastUser.get(),
  });
  const password = h('input', {
    id: 'login-password', name: 'password', type: 'password', required: true, minlength: 8,
    autocomplete: 'current-password',
  });
  const device = h('input', {
    id: 'login-device', name: 'device', required: true, maxlength: 64,
    pattern: '[A-Za-z0-9_.\\-]+', spellcheck: 'false', autocapitalize: 'off', value: tabDevice(),
  });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary wide' });
  const tabLogin = h('button', { type: 'button', role: 'tab', class: 'tab' }, 'Sign in');
  const tabRegister = h('button', { type: 'button', role: 'tab', class: 'tab' }, 'Create account');
  const hint = h('p', { class: 'hint' });

  const setMode = (m: 'login' | 'register') => {
    mode = m;
    tabLogin.setAttribute('aria-selected', String(m === 'login'));
    tabRegister.setAttribute('aria-selected', String(m === 'register'));
    submit.textContent = m === 'login' ? 'Sign in' : 'Create account';
    password.autocomplete = m === 'login' ? 'current-password' : 'new-password';
    hint.textContent = m === 'login'
      ? 'Each tab is its own device. Signing in again with the same device name signs the other tab out.'
      : 'Usernames: 3–32 letters, digits, _ . -  Passwords: at least 8 characters.';
    error.textContent = '';
  };
  tabLogin.addEventListener('click', () => setMode('login'));
  tabRegister.addEventListener('click', () => setMode('register'));

  const form = h('form', { class: 'login-form', novalidate: true },
    h('div', { class: 'tabs', role: 'tablist' }, tabLogin, tabRegister),
    h('label', { for: 'login-username' }, 'Username'), username,
    h('label', { for: 'login-password' }, 'Password'), password,
    h('label', { for: 'login-device' }, 'Device name'), device,
    hint, error, submit);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    const u = username.value.trim();
    const p = password.value;
    const d = device.value.trim();
    if (!/^[A-Za-z0-9_.-]{3,32}$/.test(u)) { error.textContent = 'Username: 3–32 letters, digits, _ . or -'; return; }
    if (new TextEncoder().encode(p).length < 8) { error.textContent = 'Password: at least 8 characters'; return; }
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(d)) { error.textContent = 'Device name: 1–64 letters, digits, _ . or -'; return; }
    submit.disabled = true;
    submit.textContent = mode === 'login' ? 'Signing in…' : 'Creating account…';
    try {
      api.token = null;
      if (mode === 'register') await api.register(u, p);
      const s = await api.login(u, p, d);
      sessionStorage.setItem('pigeon.device', d);
      lastUser.set(u);
      const info: SessionInfo = { token: s.token, user_id: s.user_id, username: s.username, device: s.device };
      sessionStore.set(info);
      void enterApp(info);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) error.textContent = 'Wrong username or password.';
      else if (e instanceof ApiError && e.status === 409) error.textContent = 'That username is taken.';
      else error.textContent = errorText(e);
      submit.disabled = false;
      submit.textContent = mode === 'login' ? 'Sign in' : 'Create account';
    }
  });
  setMode(mode);

  replaceChildren(root, h('main', { class: 'login-screen' },
    h('div', { class: 'login-card' },
      h('div', { class: 'brand' },
        h('img', { src: '/favicon.svg', alt: '', width: 48, height: 48 }),
        h('div', null, h('h1', null, 'Pigeon'), h('p', { class: 'tagline' }, 'Messages that always arrive.'))),
      opts.notice ? h('p', { class: 'notice', role: 'status' }, opts.notice) : null,
      form)));
  (username.value ? password : username).focus();
}

// ---- entering the app -----------------------------------------------------------------------

async function enterApp(me: SessionInfo): Promise<void> {
  api.token = me.token;
  api.onUnauthorized = () => void signOut('Your session has ended. Please sign in again.', false);
  const names = new Map<string, string>(Object.entries(nameCache.get()));
  names.set(me.user_id, me.username);
  readStore = new Stored(localStorage, `pigeon.read.${me.user_id}`, {});
  // Per tab and per user (not per device): an outbox kept across a forced sign-out (expired or
  // revoked token) is sent once this user signs in again in this tab, whatever the device name.
  outboxStore = new Stored(sessionStorage, `pigeon.outbox.${me.user_id}`, []);
  S = {
    me, convs: new Map(), groups: new Map(), names, online: new Set(), outbox: [], openId: null,
    conn: null, connState: 'connecting', readMarks: readStore.get(), membersOpen: false, query: '',
    results: null, timers: [], closed: false, groupLookups: new Map(), peerLookup: null,
    peersTried: new Set(),
  };
  const state = S;
  buildShell();
  renderAll();
  try {
    await loadGroups(state);
    const lastSeq = await initialSync(state);
    if (state.closed) return;
    restoreOutbox(state);
    state.conn = new Connection(me.username, me.token, lastSeq, handlersFor(state));
    state.conn.start();
  } catch (e) {
    if (state.closed) return;
    if (e instanceof ApiError && e.status === 401) return;   // onUnauthorized took over
    toast(`Could not load your conversations: ${errorText(e)}`);
    state.connState = 'reconnecting';
    setTimeout(() => { if (!state.closed && S === state) void enterApp(me); }, 3000);
    return;
  }
  void resolvePeerNames(state);
  state.timers.push(setInterval(() => {
    if (state.conn?.connected) { void refreshOnline(state); void loadGroups(state).catch(() => {}); }
  }, 15000));
  schedule();
}

async function loadGroups(state: AppState): Promise<void> {
  const { groups } = await api.groups();
  const ids = new Set<string>();
  const cache = nameCache.get();
  for (const g of groups) {
    ids.add(g.group_id);
    const prev = state.groups.get(g.group_id);
    state.groups.set(g.group_id, { ...g, members: prev?.members });
    cache[`g:${g.group_id}`] = g.name;
    const c = ensureConv(state, `g:${g.group_id}`);
    c.left = false;
    if (!prev) c.createdAt = g.created_at;
  }
  nameCache.set(cache);
  for (const c of state.convs.values()) {
    if (c.kind === 'g' && c.groupId && !ids.has(c.groupId)) {
      c.left = true;
      state.groups.delete(c.groupId);
    }
  }
  schedule();
}

// Reads the whole inbox once (summaries only: last message and unread count per
// conversation); the messages themselves come from history when a conversation is opened.
async function initialSync(state: AppState): Promise<number> {
  let after = 0;
  for (;;) {
    const page = await api.sync(after, 500);
    for (const w of page.messages) summarize(state, w);
    after = page.last_seq;
    if (!page.has_more) break;
  }
  return after;
}

function summarize(state: AppState, w: WireMessage): void {
  const c = ensureConv(state, w.conversation);
  const mine = w.from === state.me.username;
  if (!mine) learnPeer(state, c, w.from);
  if (!c.last || (c.last.convSeq ?? 0) < w.conv_seq) {
    c.last = {
      key: w.msg_id, msgId: w.msg_id, convSeq: w.conv_seq, conv: w.conversation, from: w.from,
      body: w.body, sentAt: w.sent_at, status: mine ? 'delivered' : 'received',
    };
  }
  if (!mine && w.conv_seq > (state.readMarks[c.id] ?? 0)) c.unread++;
}

function restoreOutbox(state: AppState): void {
  for (const o of outboxStore.get()) {
    const c = ensureConv(state, o.conv);
    const m: Msg = {
      key: o.cmid, clientMsgId: o.cmid, conv: o.conv, from: state.me.username, body: o.body,
      sentAt: o.sentAt, status: 'sending',
    };
    c.pending.push(m);
    state.outbox.push(m);
    bumpLast(c, m);
  }
}

function saveOutbox(state: AppState): void {
  outboxStore.set(state.outbox.map((m) => ({ cmid: m.clientMsgId!, conv: m.conv, body: m.body, sentAt: m.sentAt })));
}

function ensureConv(state: AppState, id: string): Conv {
  let c = state.convs.get(id);
  if (!c) {
    c = newConv(id, state.me.user_id);
    state.convs.set(id, c);
  }
  return c;
}

function learnName(state: AppState, id: string, name: string): void {
  if (state.names.get(id) === name) return;
  state.names.set(id, name);
  const cache = nameCache.get();
  cache[id] = name;
  nameCache.set(cache);
}

function learnPeer(state: AppState, c: Conv, from: string): void {
  if (c.kind === 'p' && c.peerId && c.peerId !== state.me.user_id) learnName(state, c.peerId, from);
}

// 1:1 conversations where only we ever wrote do not tell the peer's name: look it up. One
// lookup at a time, and a peer it did not name is not looked up again (a burst of messages
// must not make a burst of requests) unless `retryPeer` asks for it.
function resolvePeerNames(state: AppState, retryPeer?: string): Promise<void> {
  if (retryPeer) state.peersTried.delete(retryPeer);
  if (state.peerLookup) return state.peerLookup;
  const unknown = [...state.convs.values()]
    .filter((c) => c.kind === 'p' && c.peerId && !state.names.has(c.peerId) && !state.peersTried.has(c.peerId))
    .map((c) => c.peerId!);
  if (!unknown.length) return Promise.resolve();
  state.peerLookup = (async () => {
    try {
      const { users } = await api.findUsers('', 500);
      for (const u of users) learnName(state, u.user_id, u.username);
      for (const id of unknown) if (!state.names.has(id)) state.peersTried.add(id);
      schedule();
    } catch { /* names stay as ids; the next message tries again */ }
  })().finally(() => { state.peerLookup = null; });
  return state.peerLookup;
}

async function refreshOnline(state: AppState): Promise<void> {
  try {
    const { users } = await api.online();
    state.online = new Set(users.map((u) => u.username));
    for (const u of users) learnName(state, u.user_id, u.username);
    schedule();
  } catch { /* next time */ }
}

// One GET per group at a time: a burst of group messages shares the lookup in flight.
// `fresh` (after we changed the group) starts a new one once that one is done.
function refreshGroup(state: AppState, groupId: string, fresh = false): Promise<void> {
  const inflight = state.groupLookups.get(groupId);
  if (inflight && !fresh) return inflight;
  const p: Promise<void> = (inflight ?? Promise.resolve())
    .then(() => fetchGroup(state, groupId))
    .finally(() => { if (state.groupLookups.get(groupId) === p) state.groupLookups.delete(groupId); });
  state.groupLookups.set(groupId, p);
  return p;
}

async function fetchGroup(state: AppState, groupId: string): Promise<void> {
  try {
    const g = await api.group(groupId === LOBBY_ID ? 'lobby' : groupId);
    state.groups.set(g.group_id, g);
    for (const m of g.members ?? []) learnName(state, m.user_id, m.username);
    const c = ensureConv(state, `g:${g.group_id}`);
    c.left = false;
    const cache = nameCache.get();
    cache[`g:${g.group_id}`] = g.name;
    nameCache.set(cache);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
      const c = state.convs.get(`g:${groupId}`);
      if (c) c.left = true;
      state.groups.delete(groupId);
    }
  }
  schedule();
}

// ---- connection events ----------------------------------------------------------------------

function handlersFor(state: AppState) {
  const live = () => S === state && !state.closed;
  return {
    state(s: ConnState, retryInMs?: number) {
      if (!live()) return;
      state.connState = s;
      state.retryInMs = retryInMs;
      schedule();
    },
    connected() {
      if (!live()) return;
      flushOutbox(state);
      void refreshOnline(state);
      void loadGroups(state).catch(() => {});
    },
    message(m: InboxMessage) { if (live()) ingest(state, m); },
    receipt(r: Receipt) { if (live()) onReceipt(state, r); },
    presence(p: Presence) {
      if (!live()) return;
      learnName(state, p.user_id, p.username);
      if (p.online) state.online.add(p.username);
      else state.online.delete(p.username);
      schedule();
    },
    sendRejected(receiptId: string, message: string, detail: string) {
      if (!live()) return;
      const cmid = receiptId.replace(/^r-/, '');
      const m = state.outbox.find((x) => x.clientMsgId === cmid);
      if (m) failSend(state, m, rejectionText(message, detail));
    },
    authFailed() {
      if (live()) void signOut('Your session has ended. Please sign in again.', false);
    },
    kicked() {
      if (!live()) return;
      state.connState = 'kicked';
      // A reload of this tab must not silently take the device back: it asks to sign in.
      sessionStore.remove();
      schedule();
    },
  };
}

// What an ERROR answering a SEND means, for the person who wrote the message.
function rejectionText(message: string, detail: string): string {
  switch (message) {
    case 'forbidden': return 'you are not a member of this group';
    case 'no such recipient': return 'that user or group does not exist';
    case 'body too large': return 'the message is too large';
    case 'frame too large': return 'the message is too large';
    default: return detail || message || 'the server refused it';
  }
}

// Takes a message out of the outbox and shows it as not sent, with Retry and Discard.
function failSend(state: AppState, m: Msg, reason: string): void {
  const idx = state.outbox.indexOf(m);
  if (idx >= 0) {
    state.outbox.splice(idx, 1);
    saveOutbox(state);
  }
  m.status = 'failed';
  m.error = reason;
  schedule();
}

function destFor(state: AppState, c: Conv): string | null {
  if (c.kind === 'g') return `/app/group/${c.groupId === LOBBY_ID ? 'lobby' : c.groupId}`;
  const peer = c.peerId ? state.names.get(c.peerId) : undefined;
  return peer ? `/app/p2p/${peer}` : null;
}

function flushOutbox(state: AppState): void {
  for (const m of [...state.outbox]) publish(state, m);
}

// Sends an outbox message if connected (otherwise the next connect flushes the outbox). A 1:1
// message whose recipient's name is unknown waits for one lookup, then fails visibly.
function publish(state: AppState, m: Msg, lookedUp = false): void {
  if (!state.conn?.connected || !state.outbox.includes(m)) return;
  const c = ensureConv(state, m.conv);
  const dest = destFor(state, c);
  if (dest) {
    state.conn.publish(dest, m.body, m.clientMsgId!, `r-${m.clientMsgId}`);
    return;
  }
  if (lookedUp || c.kind !== 'p' || !c.peerId) {
    failSend(state, m, 'the recipient could not be found');
    return;
  }
  void resolvePeerNames(state, c.peerId).then(() => {
    if (S === state && !state.closed) publish(state, m, true);
  });
}

function bumpLast(c: Conv, m: Msg): void {
  if (!c.last) { c.last = m; return; }
  if (m.convSeq === undefined) { if (m.sentAt >= c.last.sentAt || c.last.convSeq !== undefined) c.last = m; return; }
  if (c.last.convSeq === undefined) {
    // a pending message is the preview; a stored one replaces it only if it is that one or newer
    if (c.last === m || !c.pending.includes(c.last)) c.last = m;
    return;
  }
  if (m.convSeq >= c.last.convSeq) c.last = m;
}

function isViewing(state: AppState, c: Conv): boolean {
  return state.openId === c.id && document.visibilityState === 'visible';
}

function ingest(state: AppState, m: InboxMessage): void {
  const c = ensureConv(state, m.conversation);
  const mine = m.from === state.me.username;
  if (!mine) learnPeer(state, c, m.from);
  let msg = c.byMsgId.get(m.msgId) ?? (mine ? claimPending(state, c, m.clientMsgId, m.msgId, m.convSeq) : undefined);
  if (msg) {
    if (mine) msg.status = 'delivered';
  } else {
    msg = {
      key: m.msgId, msgId: m.msgId, convSeq: m.convSeq, conv: m.conversation, from: m.from,
      body: m.body, sentAt: m.sentAt, status: mine ? 'delivered' : 'received',
    };
    c.msgs.set(m.convSeq, msg);
    c.byMsgId.set(m.msgId, msg);
    if (!mine && m.convSeq > (state.readMarks[c.id] ?? 0) && !isViewing(state, c)) c.unread++;
  }
  bumpLast(c, msg);
  if (c.kind === 'g' && c.groupId && (c.left || !state.groups.has(c.groupId))) {
    c.left = false;
    void refreshGroup(state, c.groupId);
  }
  if (c.kind === 'p' && c.peerId && !state.names.has(c.peerId)) void resolvePeerNames(state);
  schedule();
}

// An own message still pending in `c` (sending, or failed) with this client-msg-id becomes the
// stored message `msgId`/`convSeq`: the same object (and bubble) moves from c.pending to
// c.msgs, so it is never shown twice. Returns undefined if there is no such pending message.
function claimPending(state: AppState, c: Conv, cmid: string | undefined, msgId: string, convSeq: number): Msg | undefined {
  if (!cmid) return undefined;
  const m = c.pending.find((p) => p.clientMsgId === cmid);
  if (!m) return undefined;
  settle(state, c, m, msgId, convSeq);
  return m;
}

function settle(state: AppState, c: Conv, m: Msg, msgId: string, convSeq: number): void {
  c.pending = c.pending.filter((p) => p !== m);
  const idx = state.outbox.indexOf(m);
  if (idx >= 0) {
    state.outbox.splice(idx, 1);
    saveOutbox(state);
  }
  m.msgId = msgId;
  m.convSeq = convSeq;
  m.error = undefined;
  c.msgs.set(convSeq, m);
  c.byMsgId.set(msgId, m);
}

// The RECEIPT of one of our SENDs: the message is durable. It comes before the message's echo
// on our own inbox subscription (which then marks it delivered).
function onReceipt(state: AppState, r: Receipt): void {
  const cmid = r.receiptId.replace(/^r-/, '');
  const m = state.outbox.find((x) => x.clientMsgId === cmid);
  if (!m) return;                       // already matched (by its echo) or discarded
  if (r.conversation !== m.conv) {
    console.error('pigeon: receipt for', cmid, 'names conversation', r.conversation, 'not', m.conv);
    failSend(state, m, 'the server answered for another conversation');
    return;
  }
  const c = ensureConv(state, m.conv);
  const known = c.byMsgId.get(r.msgId);
  if (known && known !== m) {
    // Already shown under its msg id (e.g. from history): drop the pending copy.
    c.pending = c.pending.filter((p) => p !== m);
    state.outbox.splice(state.outbox.indexOf(m), 1);
    saveOutbox(state);
    if (c.last === m) c.last = known;
  } else {
    settle(state, c, m, r.msgId, r.convSeq);
    // Our own queue already passed this seq (a repeated send): it was delivered before.
    m.status = state.conn && r.seq <= state.conn.lastSeq ? 'delivered' : 'stored';
    bumpLast(c, m);
  }
  schedule();
}

// ---- actions --------------------------------------------------------------------------------

function send(state: AppState, c: Conv, text: string): boolean {
  if (!text.trim()) return false;
  if (new TextEncoder().encode(text).length > MAX_BODY_BYTES) {
    toast('That message is too long (about 60 KB at most).');
    return false;
  }
  if (!destFor(state, c)) {
    toast('Cannot send: the recipient is unknown.');
    return false;
  }
  const cmid = randomId('w', 22);
  const m: Msg = {
    key: cmid, clientMsgId: cmid, conv: c.id, from: state.me.username, body: text,
    sentAt: Date.now(), status: 'sending',
  };
  c.pending.push(m);
  state.outbox.push(m);
  saveOutbox(state);
  bumpLast(c, m);
  publish(state, m);
  stickToBottom = true;
  schedule();
  return true;
}

function retry(state: AppState, m: Msg): void {
  m.status = 'sending';
  m.error = undefined;
  state.outbox.push(m);
  saveOutbox(state);
  publish(state, m);
  schedule();
}

function discard(state: AppState, m: Msg): void {
  const c = ensureConv(state, m.conv);
  c.pending = c.pending.filter((p) => p !== m);
  if (c.last === m) {
    const ordered = orderedMessages(c);
    c.last = ordered.length ? ordered[ordered.length - 1] : null;
  }
  schedule();
}

function openConv(state: AppState, id: string | null): void {
  state.openId = id;
  state.membersOpen = false;
  stickToBottom = true;
  if (id) {
    const c = ensureConv(state, id);
    markRead(state, c);
    if (!c.historyLoaded) void loadOlder(state, c);
    if (c.kind === 'g' && c.groupId) void refreshGroup(state, c.groupId);
    if (c.kind === 'p' && state.conn?.connected) void refreshOnline(state);
  }
  schedule();
  if (id) setTimeout(() => ui?.input.focus({ preventScroll: true }), 0);
}

function markRead(state: AppState, c: Conv): void {
  const top = lastConvSeq(c);
  c.unread = 0;
  if ((state.readMarks[c.id] ?? 0) >= top) return;
  state.readMarks[c.id] = top;
  readStore.set(state.readMarks);
}

async function loadOlder(state: AppState, c: Conv): Promise<void> {
  if (c.loading || c.historyDone) return;
  c.loading = true;
  schedule();
  const keys = [...c.msgs.keys()];
  const before = c.historyLoaded && keys.length ? Math.min(...keys) : null;
  const wasLoaded = c.historyLoaded;
  try {
    const page = await api.history(c.id, before, HISTORY_PAGE);
    for (const w of page.messages) {
      if (c.msgs.has(w.conv_seq)) continue;
      const mine = w.from === state.me.username;
      if (!mine) learnPeer(state, c, w.from);
      const m: Msg = {
        key: w.msg_id, msgId: w.msg_id, convSeq: w.conv_seq, conv: c.id, from: w.from, body: w.body,
        sentAt: w.sent_at, status: mine ? 'delivered' : 'received',
      };
      c.msgs.set(w.conv_seq, m);
      c.byMsgId.set(w.msg_id, m);
      bumpLast(c, m);
    }
    c.historyDone = !page.has_more;
    c.historyLoaded = true;
    if (wasLoaded && page.messages.length) c.prepended = true;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
      c.historyDone = true;
      c.historyLoaded = true;
      if (c.kind === 'g') c.left = true;
    } else {
      toast(`Could not load messages: ${errorText(e)}`);
    }
  } finally {
    c.loading = false;
    schedule();
  }
}

// `manual`: the Log out (or Sign out) button — revokes the token and discards the outbox, after
// asking if it holds unsent messages. Otherwise the server ended the session (expired or
// revoked token): the outbox stays in this tab's storage, keyed by the user, and is sent once
// they sign in again.
async function signOut(notice?: string, manual = true): Promise<void> {
  const state = S;
  if (!state || state.closed) return;
  if (manual && state.outbox.length > 0) {
    const n = state.outbox.length;
    const ok = window.confirm(`${n === 1 ? '1 message has' : `${n} messages have`} not been sent yet. ` +
      'Log out and discard ' + (n === 1 ? 'it?' : 'them?'));
    if (!ok || S !== state || state.closed) return;
  }
  state.closed = true;
  for (const t of state.timers) clearInterval(t);
  const conn = state.conn;
  S = null;
  sessionStore.remove();
  if (manual) outboxStore.remove();
  const username = state.me.username;
  showLogin({ notice, username });
  if (conn) await conn.stop(true);
  if (manual) {
    try { await api.logout(); } catch { /* the token expires anyway */ }
  }
  if (!S) api.token = null;
}

function startChat(state: AppState, u: UserRef): void {
  learnName(state, u.user_id, u.username);
  const id = p2pConvId(state.me.user_id, u.user_id);
  ensureConv(state, id);
  state.query = '';
  state.results = null;
  if (ui) ui.search.value = '';
  openConv(state, id);
}

// ---- the shell ------------------------------------------------------------------------------

let stickToBottom = true;

function buildShell(): void {
  const state = S!;
  const search = h('input', {
    type: 'search', class: 'search', placeholder: 'Find people by name…', 'aria-label': 'Find people',
    autocomplete: 'off', spellcheck: 'false', autocapitalize: 'off',
  });
  let searchTimer: ReturnType<typeof setTimeout> | null = null;
  search.addEventListener('input', () => {
    const st = S;
    if (!st) return;
    st.query = search.value.trim();
    if (searchTimer) clearTimeout(searchTimer);
    if (!st.query) { st.results = null; schedule(); return; }
    searchTimer = setTimeout(() => void runSearch(st, st.query), 150);
  });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { search.value = ''; state.query = ''; state.results = null; schedule(); }
  });

  const input = h('textarea', {
    class: 'composer-input', rows: 1, placeholder: 'Write a message…', 'aria-label': 'Message',
    enterkeyhint: 'send',
  });
  const sendBtn = h('button', { type: 'submit', class: 'send', 'aria-label': 'Send', title: 'Send (Enter)' }, icon('send', 20));
  const composerNote = h('p', { class: 'composer-note' });
  const composer = h('form', { class: 'composer' }, input, sendBtn);
  const autosize = () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  };
  input.addEventListener('input', autosize);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      composer.requestSubmit();
    }
  });
  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const st = S;
    if (!st || !st.openId) return;
    const c = ensureConv(st, st.openId);
    if (send(st, c, input.value)) {
      input.value = '';
      autosize();
    }
  });

  const scroller = h('div', { class: 'scroller', 'data-testid': 'messages' });
  const historyStatus = h('div', { class: 'history-status' });
  const msgList = h('div', { class: 'msg-list', role: 'log', 'aria-live': 'polite' });
  scroller.append(historyStatus, msgList);
  scroller.addEventListener('scroll', () => {
    const st = S;
    if (!st || !st.openId) return;
    stickToBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    if (scroller.scrollTop < 150) {
      const c = st.convs.get(st.openId);
      if (c && c.historyLoaded) void loadOlder(st, c);
    }
  });

  const banner = h('div', { class: 'banner', id: 'conn-banner', role: 'status', 'aria-live': 'polite' });
  const status = h('span', { class: 'conn-dot', 'aria-hidden': 'true' });
  const listArea = h('nav', { class: 'list-area', 'aria-label': 'Conversations' });
  const chatHeader = h('header', { class: 'chat-header' });
  const members = h('aside', { class: 'members', 'aria-label': 'Group members' });
  const chat = h('section', { class: 'chat' }, chatHeader, scroller,
    h('div', { class: 'composer-wrap' }, composerNote, composer), members);
  const toasts = h('div', { class: 'toasts', 'aria-live': 'assertive' });

  const sidebar = h('aside', { class: 'sidebar' },
    h('header', { class: 'side-header' },
      avatar(state.me.username),
      h('div', { class: 'me' },
        h('div', { class: 'me-name', 'data-testid': 'me' }, state.me.username),
        h('div', { class: 'me-device' }, status, h('span', { class: 'conn-text' }), ` · ${state.me.device}`)),
      h('button', { class: 'icon-btn', type: 'button', title: 'New group', 'aria-label': 'New group',
        onclick: () => S && showNewGroup(S) }, icon('group', 20)),
      h('button', { class: 'ghost small', type: 'button', onclick: () => void signOut() }, 'Log out')),
    h('div', { class: 'search-wrap' }, search),
    listArea);

  const app = h('div', { class: 'app' }, banner, h('div', { class: 'panes' }, sidebar, chat), toasts);
  replaceChildren(root, app);
  ui = {
    app, banner, status, search, listArea, chat, chatHeader, scroller, historyStatus, msgList,
    composer, input, sendBtn, composerNote, members, toasts, elems: new Map(), renderedConv: null,
  };
}

async function runSearch(state: AppState, q: string): Promise<void> {
  if (!USERNAME_RE.test(q)) { state.results = []; schedule(); return; }
  try {
    const { users } = await api.findUsers(q, 20);
    if (state.query !== q) return;
    state.results = users;
    for (const u of users) learnName(state, u.user_id, u.username);
  } catch (e) {
    toast(`Search failed: ${errorText(e)}`);
  }
  schedule();
}

document.addEventListener('visibilitychange', () => {
  if (!S || !S.openId || document.visibilityState !== 'visible') return;
  const c = S.convs.get(S.openId);
  if (c) { markRead(S, c); schedule(); }
});

// ---- rendering ------------------------------------------------------------------------------

function convTitle(state: AppState, c: Conv): string {
  if (c.kind === 'g') {
    if (c.groupId === LOBBY_ID) return 'Lobby';
    return state.groups.get(c.groupId!)?.name ?? nameCache.get()[c.id] ?? 'Group';
  }
  if (c.peerId === state.me.user_id) return `${state.me.username} (you)`;
  return state.names.get(c.peerId!) ?? `user #${c.peerId}`;
}

function peerName(state: AppState, c: Conv): string | undefined {
  return c.kind === 'p' && c.peerId ? state.names.get(c.peerId) : undefined;
}

function renderAll(): void {
  const state = S;
  if (!state || !ui) return;
  if (state.openId) {
    const c = state.convs.get(state.openId);
    if (c && isViewing(state, c) && (c.unread > 0 || lastConvSeq(c) > (state.readMarks[c.id] ?? 0))) markRead(state, c);
  }
  renderBanner(state);
  renderList(state);
  renderChat(state);
  const unread = [...state.convs.values()].reduce((n, c) => n + c.unread, 0);
  document.title = unread ? `(${unread}) Pigeon` : 'Pigeon';
}

function renderBanner(state: AppState): void {
  const u = ui!;
  const s = state.connState;
  u.banner.dataset.state = s;
  u.app.dataset.conn = s;
  const connText = u.status.parentElement!.querySelector('.conn-text')!;
  connText.textContent = s === 'online' ? 'online' : s === 'kicked' ? 'signed out here' : s === 'offline' ? 'offline' : 'connecting…';
  u.status.dataset.state = s;
  switch (s) {
    case 'online':
    case 'closed':
      replaceChildren(u.banner);
      break;
    case 'connecting':
      replaceChildren(u.banner, h('span', { class: 'spinner' }), 'Connecting…');
      break;
    case 'reconnecting':
      replaceChildren(u.banner, h('span', { class: 'spinner' }),
        'Connection lost. Reconnecting… Messages you write will be sent when it is back.',
        h('button', { type: 'button', class: 'link', onclick: () => window.dispatchEvent(new Event('online')) }, 'Retry now'));
      break;
    case 'offline':
      replaceChildren(u.banner, 'You are offline. Messages you write will be sent when you are back online.');
      break;
    case 'kicked':
      replaceChildren(u.banner,
        h('span', { 'data-testid': 'kicked' }, 'You signed in on this device elsewhere, so this tab was disconnected.'),
        h('button', { type: 'button', class: 'link', onclick: () => { sessionStore.set(state.me); state.conn?.resume(); } }, 'Use here'),
        h('button', { type: 'button', class: 'link', onclick: () => void signOut() }, 'Sign out'));
      break;
  }
}

function renderList(state: AppState): void {
  const u = ui!;
  if (state.query) {
    const res = state.results;
    const items = (res ?? []).map((usr) => {
      const online = state.online.has(usr.username);
      return h('li', null, h('button', {
        type: 'button', class: 'conv-item', 'data-testid': 'user-result', 'data-username': usr.username,
        onclick: () => startChat(state, usr),
      },
      h('span', { class: 'avatar-wrap' }, avatar(usr.username), online ? h('span', { class: 'presence on', title: 'online' }) : null),
      h('span', { class: 'conv-main' },
        h('span', { class: 'conv-title' }, usr.username, usr.user_id === state.me.user_id ? h('span', { class: 'muted' }, ' (you)') : null),
        h('span', { class: 'conv-preview' }, online ? 'online' : 'Start a chat'))));
    });
    replaceChildren(u.listArea,
      h('div', { class: 'list-label' }, 'People'),
      res === null ? h('p', { class: 'empty' }, 'Searching…')
        : items.length ? h('ul', { class: 'conv-list' }, items) : h('p', { class: 'empty' }, 'No one by that name.'));
    return;
  }
  const convs = [...state.convs.values()]
    .filter((c) => !(c.left && !c.last) || c.id === state.openId)
    .sort((a, b) => activity(b) - activity(a));
  const items = convs.map((c) => {
    const title = convTitle(state, c);
    const peer = peerName(state, c);
    const online = c.kind === 'p' && peer && c.peerId !== state.me.user_id && state.online.has(peer);
    const last = c.last;
    let preview = '';
    if (last) {
      const who = last.from === state.me.username ? 'You: ' : c.kind === 'g' ? `${last.from}: ` : '';
      preview = who + last.body.replace(/\s+/g, ' ').slice(0, 120);
    } else {
      preview = c.kind === 'g' ? 'No messages yet' : 'Say hello';
    }
    return h('li', null, h('button', {
      type: 'button', class: `conv-item${c.id === state.openId ? ' active' : ''}${c.unread ? ' has-unread' : ''}`,
      'data-testid': 'conversation', 'data-conv': c.id, 'data-title': title,
      onclick: () => openConv(state, c.id),
    },
    h('span', { class: 'avatar-wrap' },
      avatar(title, c.kind === 'g' ? 'group' : ''),
      online ? h('span', { class: 'presence on', title: 'online', 'data-testid': 'presence-online' }) : null),
    h('span', { class: 'conv-main' },
      h('span', { class: 'conv-top' },
        h('span', { class: 'conv-title' }, title),
        last ? h('time', { class: 'conv-time', datetime: new Date(last.sentAt).toISOString() }, listTime(last.sentAt)) : null),
      h('span', { class: 'conv-bottom' },
        h('span', { class: 'conv-preview', dir: 'auto' }, preview),
        c.unread ? h('span', { class: 'badge', 'data-testid': 'unread', 'aria-label': `${c.unread} unread` }, String(c.unread)) : null))));
  });
  replaceChildren(u.listArea,
    items.length ? h('ul', { class: 'conv-list' }, items)
      : h('p', { class: 'empty' }, 'No conversations yet. Find someone above to start one.'));
}

function renderChat(state: AppState): void {
  const u = ui!;
  const c = state.openId ? state.convs.get(state.openId) : undefined;
  u.app.classList.toggle('show-chat', !!c);
  if (!c) {
    u.renderedConv = null;
    u.elems.clear();
    clear(u.msgList);
    clear(u.historyStatus);
    replaceChildren(u.chatHeader, h('div', { class: 'placeholder-title' }, 'Pigeon'));
    u.chat.classList.add('empty-chat');
    u.composer.hidden = true;
    u.composerNote.textContent = 'Pick a conversation, or find someone to talk to.';
    u.members.hidden = true;
    u.chat.classList.remove('members-open');
    return;
  }
  u.chat.classList.remove('empty-chat');
  u.composer.hidden = false;
  if (u.renderedConv !== c.id) {
    u.renderedConv = c.id;
    u.elems.clear();
    clear(u.msgList);
    u.input.value = '';
  }
  renderChatHeader(state, c);

  // Composer availability.
  let note = '';
  if (state.connState === 'kicked') note = 'This tab is signed out on this device.';
  else if (c.left) note = 'You are no longer a member of this group.';
  else if (!destFor(state, c)) note = 'Looking up this contact…';
  u.composerNote.textContent = note;
  const disabled = note !== '';
  u.input.disabled = disabled;
  u.sendBtn.disabled = disabled;

  // History status at the top.
  replaceChildren(u.historyStatus,
    c.loading ? [h('span', { class: 'spinner' }), 'Loading earlier messages…']
      : c.historyDone ? (c.msgs.size ? 'This is the beginning of the conversation.' : '') : '');

  // Messages, keyed, moving only what changed.
  const scroller = u.scroller;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  const list = orderedMessages(c);
  let ref = u.msgList.firstChild as HTMLElement | null;
  for (const m of list) {
    let el = u.elems.get(m.key);
    const sig = `${m.status}|${m.error ?? ''}`;
    if (!el) {
      el = renderMessage(state, c, m);
      el.dataset.sig = sig;
      u.elems.set(m.key, el);
    } else if (el.dataset.sig !== sig) {
      const fresh = renderMessage(state, c, m);
      fresh.dataset.sig = sig;
      el.replaceWith(fresh);
      if (ref === el) ref = fresh;
      el = fresh;
      u.elems.set(m.key, el);
    }
    if (ref === el) ref = el.nextSibling as HTMLElement | null;
    else u.msgList.insertBefore(el, ref);
  }
  while (ref) {
    const next = ref.nextSibling as HTMLElement | null;
    if (ref.dataset.key) u.elems.delete(ref.dataset.key);
    ref.remove();
    ref = next;
  }
  if (c.prepended) {
    c.prepended = false;
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  } else if (stickToBottom) {
    scroller.scrollTop = scroller.scrollHeight;
  }
  // Fill the view: if nothing scrolls yet, fetch older pages.
  if (c.historyLoaded && !c.historyDone && !c.loading && scroller.scrollHeight <= scroller.clientHeight + 150) {
    void loadOlder(state, c);
  }
  renderMembers(state, c);
}

function statusLabel(m: Msg): [string, string] {
  switch (m.status) {
    case 'sending': return ['clock', 'Sending…'];
    case 'stored': return ['check', 'Stored on the server'];
    case 'delivered': return ['checks', 'Delivered'];
    case 'failed': return ['alert', 'Not sent'];
    default: return ['', ''];
  }
}

function renderMessage(state: AppState, c: Conv, m: Msg): HTMLElement {
  const mine = m.from === state.me.username;
  const [iconName, label] = statusLabel(m);
  const body = h('div', { class: 'text', dir: 'auto' }, m.body);
  const meta = h('div', { class: 'meta' },
    h('time', { datetime: new Date(m.sentAt).toISOString(), title: fullTime(m.sentAt) }, shortTime(m.sentAt)),
    mine && iconName ? h('span', { class: `status ${m.status}`, title: label, role: 'img', 'aria-label': label, 'data-testid': 'status' }, icon(iconName, 15)) : null);
  const bubble = h('div', { class: 'bubble' },
    c.kind === 'g' && !mine ? h('div', { class: 'sender', style: `color:${colorFor(m.from)}`, 'data-testid': 'sender' }, m.from) : null,
    body, meta,
    m.status === 'failed' ? h('div', { class: 'failed-note' },
      `Not sent: ${m.error ?? 'error'}. `,
      h('button', { type: 'button', class: 'link', onclick: () => S && retry(S, m) }, 'Retry'),
      h('button', { type: 'button', class: 'link', onclick: () => S && discard(S, m) }, 'Discard')) : null);
  return h('div', {
    class: `msg ${mine ? 'mine' : 'theirs'}`, 'data-key': m.key, 'data-status': m.status,
    'data-testid': 'message', 'data-from': m.from,
  }, bubble);
}

function renderChatHeader(state: AppState, c: Conv): void {
  const u = ui!;
  const title = convTitle(state, c);
  let sub = '';
  if (c.kind === 'p') {
    const peer = peerName(state, c);
    if (c.peerId === state.me.user_id) sub = 'Notes to yourself, on all your devices';
    else sub = peer && state.online.has(peer) ? 'online' : 'offline';
  } else {
    const g = state.groups.get(c.groupId!);
    if (c.left) sub = 'You left this group';
    else if (c.groupId === LOBBY_ID) sub = `Everyone · ${state.online.size} online`;
    else if (g) {
      const onlineCount = g.members ? g.members.filter((m) => state.online.has(m.username)).length : 0;
      sub = `${g.member_count} members${g.members ? ` · ${onlineCount} online` : ''}`;
    }
  }
  replaceChildren(u.chatHeader,
    h('button', { type: 'button', class: 'icon-btn back', 'aria-label': 'Back to conversations', title: 'Back',
      onclick: () => openConv(state, null) }, icon('back', 24)),
    h('span', { class: 'avatar-wrap' }, avatar(title, c.kind === 'g' ? 'group' : '')),
    h('div', { class: 'chat-title' },
      h('h2', { 'data-testid': 'chat-title' }, title),
      h('div', { class: `chat-sub${sub === 'online' ? ' online' : ''}`, 'data-testid': 'chat-sub' }, sub)),
    c.kind === 'g' && !c.left ? h('button', {
      type: 'button', class: 'ghost small', 'aria-expanded': String(state.membersOpen),
      onclick: () => { state.membersOpen = !state.membersOpen; if (state.membersOpen) void refreshGroup(state, c.groupId!); schedule(); },
    }, 'Members') : null);
}

function renderMembers(state: AppState, c: Conv): void {
  const u = ui!;
  const open = state.membersOpen && c.kind === 'g' && !c.left;
  u.chat.classList.toggle('members-open', open);
  if (!open) { u.members.hidden = true; clear(u.members); return; }
  u.members.hidden = false;
  const g = state.groups.get(c.groupId!);
  const isLobby = c.groupId === LOBBY_ID;
  const owner = g?.owner === state.me.username;
  // Keep the add-member box (and its focus) across renders.
  let addBox = u.members.querySelector<HTMLElement>('.add-member');
  if (owner && !addBox) addBox = memberAdder(state, c.groupId!);
  const rows = (g?.members ?? []).map((m) => h('li', { class: 'member', 'data-testid': 'member', 'data-username': m.username },
    h('span', { class: 'avatar-wrap' }, avatar(m.username),
      state.online.has(m.username) ? h('span', { class: 'presence on', title: 'online' }) : null),
    h('span', { class: 'member-name' }, m.username,
      m.username === g?.owner ? h('span', { class: 'tag' }, 'owner') : null,
      m.username === state.me.username ? h('span', { class: 'muted' }, ' (you)') : null),
    owner && m.username !== state.me.username ? h('button', {
      type: 'button', class: 'link danger', 'aria-label': `Remove ${m.username}`,
      onclick: async () => {
        try { await api.removeMember(c.groupId!, m.username); await refreshGroup(state, c.groupId!, true); }
        catch (e) { toast(errorText(e)); }
      },
    }, 'Remove') : null));
  const children = [
    h('header', { class: 'members-header' }, h('h3', null, 'Members'),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close members', onclick: () => { state.membersOpen = false; schedule(); } }, icon('close', 18))),
    isLobby ? h('p', { class: 'muted pad' }, `Everyone is in the lobby (${g?.member_count ?? '…'} people).`) : null,
    !isLobby && !g?.members ? h('p', { class: 'muted pad' }, 'Loading…') : null,
    rows.length ? h('ul', { class: 'member-list' }, rows) : null,
    owner ? addBox : null,
    !isLobby && !owner ? h('div', { class: 'pad' }, h('button', {
      type: 'button', class: 'danger wide', onclick: () => confirmLeave(state, c),
    }, 'Leave group')) : null,
    owner && !isLobby ? h('p', { class: 'muted pad small' }, 'You own this group: you can add and remove members, but not leave it.') : null,
  ];
  // Re-render everything except a live add-member box.
  for (const child of [...u.members.childNodes]) if (child !== addBox) child.remove();
  for (const child of children) {
    if (!child) continue;
    if (child === addBox) { u.members.appendChild(addBox); continue; }
    u.members.appendChild(child);
  }
}

function memberAdder(state: AppState, groupId: string): HTMLElement {
  const input = h('input', {
    type: 'search', placeholder: 'Add someone by name…', 'aria-label': 'Add member', autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'off',
  });
  const results = h('ul', { class: 'pick-list' });
  picker(input, results, async (usr) => {
    try {
      await api.addMember(groupId, usr.username);
      input.value = '';
      clear(results);
      await refreshGroup(state, groupId, true);
      toast(`${usr.username} was added.`, 'info');
    } catch (e) {
      toast(e instanceof ApiError && e.status === 409 ? `${usr.username} is already a member.` : errorText(e));
    }
  });
  return h('div', { class: 'add-member pad' }, input, results);
}

// Prefix search on an input, listing choices in `results`.
function picker(input: HTMLInputElement, results: HTMLElement, choose: (u: UserRef) => void, exclude: () => Set<string> = () => new Set()): void {
  let timer: ReturnType<typeof setTimeout> | null = null;
  input.addEventListener('input', () => {
    if (timer) clearTimeout(timer);
    const q = input.value.trim();
    if (!q) { clear(results); return; }
    timer = setTimeout(async () => {
      if (!USERNAME_RE.test(q)) { replaceChildren(results, h('li', { class: 'muted' }, 'No one by that name.')); return; }
      try {
        const { users } = await api.findUsers(q, 8);
        if (input.value.trim() !== q) return;
        const ex = exclude();
        const shown = users.filter((x) => !ex.has(x.username));
        replaceChildren(results, shown.length ? shown.map((usr) => h('li', null, h('button', {
          type: 'button', class: 'pick', 'data-username': usr.username, onclick: () => choose(usr),
        }, avatar(usr.username, 'small'), usr.username))) : h('li', { class: 'muted' }, 'No one by that name.'));
      } catch (e) {
        replaceChildren(results, h('li', { class: 'muted' }, errorText(e)));
      }
    }, 150);
  });
}

// ---- dialogs --------------------------------------------------------------------------------

function modal(title: string, body: HTMLElement, actions: HTMLElement[]): { close: () => void } {
  const overlay = h('div', { class: 'overlay' });
  const box = h('div', { class: 'dialog', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
    h('h3', null, title), body, h('div', { class: 'dialog-actions' }, actions));
  overlay.appendChild(box);
  const close = () => { overlay.remove(); document.removeEventListener('keydown', onKey); };
  const onKey = (e: KeyboardEvent) => { if (e.key === 'Escape') close(); };
  overlay.addEventListener('click', (e) => { if (e.target === overlay) close(); });
  document.addEventListener('keydown', onKey);
  document.body.appendChild(overlay);
  return { close };
}

function showNewGroup(state: AppState): void {
  const chosen: string[] = [];
  const name = h('input', { id: 'group-name', maxlength: 64, placeholder: 'e.g. Weekend trip', autocomplete: 'off' });
  const who = h('input', {
    id: 'group-member', type: 'search', placeholder: 'Add people by name…', autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'off',
  });
  const results = h('ul', { class: 'pick-list' });
  const chips = h('div', { class: 'chips' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const drawChips = () => replaceChildren(chips, chosen.map((n) => h('span', { class: 'chip' }, n,
    h('button', { type: 'button', 'aria-label': `Remove ${n}`, onclick: () => { chosen.splice(chosen.indexOf(n), 1); drawChips(); } }, '×'))));
  picker(who, results, (usr) => {
    if (!chosen.includes(usr.username)) chosen.push(usr.username);
    learnName(state, usr.user_id, usr.username);
    who.value = '';
    clear(results);
    drawChips();
    who.focus();
  }, () => new Set([state.me.username, ...chosen]));
  const create = h('button', { type: 'button', class: 'primary' }, 'Create group');
  const cancel = h('button', { type: 'button', class: 'ghost' }, 'Cancel');
  const body = h('div', { class: 'form' },
    h('label', { for: 'group-name' }, 'Group name'), name,
    h('label', { for: 'group-member' }, 'Members'), who, results, chips, error);
  const dlg = modal('New group', body, [cancel, create]);
  cancel.addEventListener('click', dlg.close);
  create.addEventListener('click', async () => {
    const n = name.value.trim();
    if (!n) { error.textContent = 'Give the group a name.'; name.focus(); return; }
    create.disabled = true;
    try {
      const g = await api.createGroup(n, chosen);
      state.groups.set(g.group_id, g);
      for (const m of g.members ?? []) learnName(state, m.user_id, m.username);
      const c = ensureConv(state, g.conversation);
      c.createdAt = g.created_at;
      c.historyLoaded = true;
      c.historyDone = true;
      dlg.close();
      openConv(state, c.id);
    } catch (e) {
      error.textContent = errorText(e);
      create.disabled = false;
    }
  });
  name.focus();
}

function confirmLeave(state: AppState, c: Conv): void {
  const leave = h('button', { type: 'button', class: 'danger' }, 'Leave');
  const cancel = h('button', { type: 'button', class: 'ghost' }, 'Cancel');
  const dlg = modal(`Leave ${convTitle(state, c)}?`,
    h('p', null, 'You will stop receiving its messages. The owner can add you again.'), [cancel, leave]);
  cancel.addEventListener('click', dlg.close);
  leave.addEventListener('click', async () => {
    leave.disabled = true;
    try {
      await api.removeMember(c.groupId!, state.me.username);
      dlg.close();
      c.left = true;
      state.groups.delete(c.groupId!);
      state.membersOpen = false;
      toast(`You left ${convTitle(state, c)}.`, 'info');
      schedule();
    } catch (e) {
      dlg.close();
      toast(errorText(e));
    }
  });
}

// ---- start ----------------------------------------------------------------------------------

const saved = sessionStore.get();
if (saved) void enterApp(saved);
else showLogin();
