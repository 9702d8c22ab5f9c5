// Runs the real pigeond for Node tests (tests/node and web/e2e share it): port 0, a temporary
// data directory, the ready file polled with a deadline, and a stop() that requires a clean
// exit. Only Node built-ins: no npm package needed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Polls `check` until it returns a truthy value, backing off from 2 to 50 ms; throws after
// `ms`. A check that throws counts as not yet (its last error is reported on timeout).
export async function waitFor(check, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  let delay = 2;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 50);
  }
}

// Starts `binary` with the test defaults plus `extraArgs` (the HTTP rate limit is off unless
// extraArgs sets one: tests poll the API freely, and the limit has its own C++ test).
export async function startPigeond(binary, extraArgs = [], { tmpPrefix = 'pigeon-test-' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), tmpPrefix));
  const ready = join(dir, 'ready.json');
  const args = ['--host', '127.0.0.1', '--http-port', '0', '--tcp-port', '0', '--data-dir', join(dir, 'data'),
    '--ready-file', ready, '--password-cost', 'min', '--log-level', 'warn', ...extraArgs];
  if (!extraArgs.includes('--rate-limit')) args.push('--rate-limit', '0');
  const child = spawn(binary, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  let exited = false;
  let exitCode = null;
  child.on('exit', (code, signal) => { exited = true; exitCode = signal ?? code; });
  await waitFor(() => exited || existsSync(ready), 30000, 'pigeond to start');
  if (exited) throw new Error(`pigeond exited at start (${exitCode})`);
  const { http_port: port, tcp_port: tcpPort } = JSON.parse(readFileSync(ready, 'utf8'));
  const server = {
    port,
    tcpPort,
    base: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    // SIGTERM, then require exit code 0 (no crash, no sanitizer report on the way out).
    async stop() {
      const wasRunning = !exited;
      if (wasRunning) {
        child.kill('SIGTERM');
        await waitFor(() => exited, 15000, 'pigeond to stop');
      }
      rmSync(dir, { recursive: true, force: true });
      if (!wasRunning) throw new Error(`pigeond died during the test (exit ${exitCode})`);
      if (exitCode !== 0) throw new Error(`pigeond exited with ${exitCode} on SIGTERM`);
      return exitCode;
    },
    // A JSON request; returns { status, body } (body parsed, or null when empty).
    async api(method, path, body, token) {
      const headers = { 'content-type': 'application/json' };
      if (token) headers.authorization = `Bearer ${token}`;
      const res = await fetch(server.base + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
  };
  return server;
}
