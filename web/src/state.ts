// The client's model: conversations, their messages, the outbox, read markers.

export type Status = 'sending' | 'stored' | 'delivered' | 'failed' | 'received';

export interface Msg {
  key: string;            // stable DOM key: the client-msg-id for own sends, else the msg id
  msgId?: string;
  convSeq?: number;
  conv: string;
  from: string;
  body: string;
  sentAt: number;
  status: Status;
  clientMsgId?: string;
  error?: string;
}

export interface Conv {
  id: string;              // p:<lo>:<hi> or g:<group id>
  kind: 'p' | 'g';
  peerId?: string;         // 1:1: the other user's id (own id when writing to yourself)
  groupId?: string;
  msgs: Map<number, Msg>;  // confirmed messages by conv_seq (a contiguous range)
  byMsgId: Map<string, Msg>;
  pending: Msg[];          // own messages not yet stored (sending or failed), in send order
  last: Msg | null;        // for the list preview
  unread: number;
  historyLoaded: boolean;
  historyDone: boolean;
  loading: boolean;
  prepended: boolean;
  left: boolean;           // a group we are no longer a member of
  createdAt: number;
}

export function newConv(id: string, myId: string): Conv {
  const kind = id.startsWith('p:') ? 'p' : 'g';
  const c: Conv = {
    id, kind, msgs: new Map(), byMsgId: new Map(), pending: [], last: null, unread: 0,
    historyLoaded: false, historyDone: false, loading: false, prepended: false, left: false,
    createdAt: Date.now(),
  };
  if (kind === 'p') {
    const [, a, b] = id.split(':');
    c.peerId = a === myId ? b : a;
  } else {
    c.groupId = id.slice(2);
  }
  return c;
}

export function p2pConvId(a: string, b: string): string {
  const x = BigInt(a);
  const y = BigInt(b);
  return x <= y ? `p:${a}:${b}` : `p:${b}:${a}`;
}

// Messages in display order: stored ones by conv_seq, then own messages still on their way.
export function orderedMessages(c: Conv): Msg[] {
  const stored = [...c.msgs.values()].sort((a, b) => (a.convSeq ?? 0) - (b.convSeq ?? 0));
  return stored.concat(c.pending);
}

export function lastConvSeq(c: Conv): number {
  let max = c.last?.convSeq ?? 0;
  for (const k of c.msgs.keys()) if (k > max) max = k;
  return max;
}

export function activity(c: Conv): number {
  return c.last?.sentAt ?? c.createdAt;
}

// Small JSON maps kept in web storage.
export class Stored<T> {
  constructor(private storage: Storage, private key: string, private fallback: T) {}
  get(): T {
    try {
      const v = this.storage.getItem(this.key);
      return v ? (JSON.parse(v) as T) : this.fallback;
    } catch {
      return this.fallback;
    }
  }
  set(v: T): void {
    try { this.storage.setItem(this.key, JSON.stringify(v)); } catch { /* quota: best effort */ }
  }
  remove(): void {
    try { this.storage.removeItem(this.key); } catch { /* ignore */ }
  }
}
