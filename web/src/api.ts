// The HTTP API of pigeond (docs/api.md), same-origin under /api/v1.

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

export interface UserRef { user_id: string; username: string }
export interface Session {
  token: string; user_id: string; username: string; device: string; expires_at: number;
}
export interface WireMessage {
  msg_id: string; seq?: number; conversation: string; conv_seq: number; from: string;
  body: string; content_type: string; sent_at: number;
}
export interface Group {
  group_id: string; name: string; conversation: string; owner: string | null;
  created_at: number; member_count: number; members?: UserRef[];
}

export class Api {
  token: string | null = null;
  onUnauthorized: () => void = () => {};

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      let res: Response;
      try {
        res = await fetch(`/api/v1${path}`, {
          method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch {
        throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
      }
      if (res.status === 429 && attempt < 3) {
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      const text = await res.text();
      let json: any = null;
      try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
      if (!res.ok) {
        const err = json?.error;
        const e = new ApiError(res.status, err?.code ?? 'error', err?.message ?? `HTTP ${res.status}`);
        if (res.status === 401 && this.token && path !== '/sessions') this.onUnauthorized();
        throw e;
      }
      return json as T;
    }
  }

  register(username: string, password: string) {
    return this.call<UserRef>('POST', '/users', { username, password });
  }
  login(username: string, password: string, device: string) {
    return this.call<Session>('POST', '/sessions', { username, password, device });
  }
  logout() { return this.call<null>('DELETE', '/sessions'); }
  findUsers(prefix: string, limit = 20) {
    return this.call<{ users: UserRef[] }>('GET', `/users?prefix=${encodeURIComponent(prefix)}&limit=${limit}`);
  }
  online() { return this.call<{ users: UserRef[] }>('GET', '/users/online'); }
  sync(after: number, limit = 500) {
    return this.call<{ messages: WireMessage[]; last_seq: number; has_more: boolean }>(
      'GET', `/sync?after=${encodeURIComponent(String(after))}&limit=${encodeURIComponent(String(limit))}`);
  }
  history(conversation: string, before: number | null, limit = 50) {
    const b = before === null ? '' : `&before=${encodeURIComponent(String(before))}`;
    return this.call<{ messages: WireMessage[]; has_more: boolean }>(
      'GET', `/conversations/${encodeURIComponent(conversation)}/messages?limit=${limit}${b}`);
  }
  groups() { return this.call<{ groups: Group[] }>('GET', '/groups'); }
  group(id: string) { return this.call<Group>('GET', `/groups/${encodeURIComponent(id)}`); }
  createGroup(name: string, members: string[]) {
    return this.call<Group>('POST', '/groups', { name, members });
  }
  addMember(id: string, username: string) {
    return this.call<null>('POST', `/groups/${encodeURIComponent(id)}/members`, { username });
  }
  removeMember(id: string, username: string) {
    return this.call<null>('DELETE',
      `/groups/${encodeURIComponent(id)}/members/${encodeURIComponent(username)}`);
  }
}
