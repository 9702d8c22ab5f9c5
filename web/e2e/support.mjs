// Helpers for the browser end-to-end test: a real pigeond on port 0 serving the built client,
// Debian's chromium driven by playwright-core, and small polling helpers (no fixed sleeps).
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startPigeond, waitFor } from '../../tests/support/pigeond.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const webDir = resolve(here, '..');
export const repoDir = resolve(webDir, '..');
export const outputDir = resolve(process.env.PIGEON_TEST_OUTPUT ?? join(here, 'output'));
export const PASSWORD = 'password123';

// Polls `check` until it returns a truthy value; fails after `ms` with `what`.
export function until(check, what = 'condition', ms = 15000) {
  return waitFor(check, ms, what);
}

function findPigeond() {
  if (process.env.PIGEOND) return process.env.PIGEOND;
  const guess = join(repoDir, 'build/release/apps/pigeond/pigeond');
  if (existsSync(guess)) return guess;
  throw new Error('set PIGEOND to the pigeond binary');
}

// Starts pigeond serving the web client. By default it is given --web-root PIGEON_WEB_DIST
// (or web/dist); with PIGEON_WEB_DIST=embedded it serves the copy built into the binary.
export async function startServer() {
  const dist = process.env.PIGEON_WEB_DIST ?? join(webDir, 'dist');
  const args = [];
  if (dist !== 'embedded') {
    if (!existsSync(join(dist, 'index.html'))) throw new Error(`${dist}/index.html is missing: run npm run build`);
    args.push('--web-root', dist);
  }
  const server = await startPigeond(findPigeond(), args, { tmpPrefix: 'pigeon-web-e2e-' });
  Object.assign(server, {
    async register(name) {
      const res = await server.api('POST', '/api/v1/users', { username: name, password: PASSWORD });
      if (res.status !== 201) throw new Error(`register ${name}: ${res.status}`);
      return res.body;
    },
    async login(name, device = 'api') {
      const res = await server.api('POST', '/api/v1/sessions', { username: name, password: PASSWORD, device });
      if (res.status !== 200) throw new Error(`login ${name}: ${res.status}`);
      return res.body.token;
    },
  });
  return server;
}

export async function launchBrowser() {
  mkdirSync(outputDir, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    // playwright gives every launch a fresh temporary --user-data-dir.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
}

// A page that records script errors and dialogs (an alert() would mean injected script ran),
// the WebSockets it opens (page.sockets), and — in the page, after every DOM change — any
// message text shown twice at the same time in the chat view, however briefly
// (window.__pigeonDups; see pageProblems).
export async function newPage(context, label) {
  const page = await context.newPage();
  page.label = label;
  page.problems = [];
  page.sockets = 0;
  page.on('websocket', () => { page.sockets++; });
  await page.addInitScript(() => {
    window.__pigeonDups = [];
    const check = () => {
      const seen = new Set();
      for (const el of document.querySelectorAll('.msg-list .text')) {
        const t = el.textContent;
        if (!seen.has(t)) seen.add(t);
        else if (!window.__pigeonDups.includes(t)) window.__pigeonDups.push(t);
      }
    };
    new MutationObserver(check).observe(document, { childList: true, subtree: true, characterData: true });
  });
  page.on('pageerror', (e) => page.problems.push(`${label}: page error: ${e.message}`));
  page.on('dialog', async (d) => {
    page.problems.push(`${label}: unexpected dialog: ${d.message()}`);
    await d.dismiss();
  });
  page.setDefaultTimeout(15000);
  return page;
}

// Everything that went wrong on a page so far: script errors, dialogs, and texts that were on
// screen twice at once. Call it before the page is closed or reloaded (a reload resets the
// in-page record).
export async function pageProblems(page) {
  const dups = page.isClosed() ? [] : await page.evaluate(() => window.__pigeonDups ?? []);
  return [...page.problems, ...dups.map((t) => `${page.label}: shown twice at once: ${JSON.stringify(t.slice(0, 80))}`)];
}

export async function screenshot(page, name) {
  const path = join(outputDir, `${name}.png`);
  await page.screenshot({ path });
  return path;
}
