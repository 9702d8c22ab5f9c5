// A tiny DOM builder. Text is always inserted as text nodes (never parsed as HTML), so user
// data can be passed anywhere a child is expected. Nothing in the client uses innerHTML.

export type Child = Node | string | number | null | undefined | false;
type Handler = (ev: any) => void;
export type Attrs = Record<string, string | number | boolean | Handler | null | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2).toLowerCase(), value as Handler);
      } else if (name === 'class') {
        el.className = String(value);
      } else if (name === 'value' && 'value' in el) {
        (el as HTMLInputElement).value = String(value);
      } else if (value === true) {
        el.setAttribute(name, '');
      } else {
        el.setAttribute(name, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: (Child | Child[])[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c === null || c === undefined || c === false) continue;
    else if (typeof c === 'string' || typeof c === 'number') el.appendChild(document.createTextNode(String(c)));
    else el.appendChild(c);
  }
}

export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function replaceChildren(el: Node, ...children: (Child | Child[])[]): void {
  clear(el);
  append(el, children);
}

// A deterministic pleasant colour for a name (avatars, sender names).
export function colorFor(name: string): string {
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + (ch.codePointAt(0) ?? 0)) >>> 0;
  return `hsl(${hash % 360} 55% 45%)`;
}

export function initials(name: string): string {
  const parts = name.replace(/[_.-]+/g, ' ').trim().split(/\s+/).filter(Boolean);
  const letters = parts.length >= 2 ? [parts[0], parts[1]] : [name];
  return letters.map((p) => Array.from(p)[0] ?? '?').join('').toUpperCase().slice(0, 2);
}

export function avatar(name: string, extra = ''): HTMLElement {
  return h('span', { class: `avatar ${extra}`, style: `background:${colorFor(name)}`, 'aria-hidden': 'true' },
    initials(name));
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

// "14:05" today, "Mon 14:05" this week, "3 Feb 14:05" before.
export function shortTime(ms: number): string {
  const d = new Date(ms);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
  if (now.getTime() - d.getTime() < 6 * 86400000) return `${dayFmt.format(d)} ${timeFmt.format(d)}`;
  return `${dateFmt.format(d)} ${timeFmt.format(d)}`;
}

// For the conversation list: time today, else weekday or date.
export function listTime(ms: number): string {
  const d = new Date(ms);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
  if (now.getTime() - d.getTime() < 6 * 86400000) return dayFmt.format(d);
  return dateFmt.format(d);
}

export function fullTime(ms: number): string {
  return fullFmt.format(new Date(ms));
}

export function randomId(prefix: string, n = 20): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = new Uint8Array(n);
  crypto.getRandomValues(bytes);
  let s = prefix;
  for (const b of bytes) s += alphabet[b % alphabet.length];
  return s;
}

// Small inline icons (SVG built node by node; no markup strings).
const ICONS: Record<string, string[]> = {
  plus: ['M12 5v14', 'M5 12h14'],
  back: ['M15 5l-7 7 7 7'],
  clock: ['M12 7v5l3 2', 'M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18'],
  check: ['M5 12.5l4.5 4.5L19 7.5'],
  checks: ['M2.5 12.5l4.5 4.5L16.5 7.5', 'M12 16l1 1 9.5-9.5'],
  alert: ['M12 7v6', 'M12 16.5v.5', 'M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18'],
  send: ['M4 12l16-8-6 16-2.5-6.5z'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
  group: ['M9 11a3.5 3.5 0 1 0 0-7a3.5 3.5 0 1 0 0 7', 'M2.5 20c0-3.6 2.9-6 6.5-6s6.5 2.4 6.5 6', 'M16 4.3a3.5 3.5 0 0 1 0 6.4', 'M18 14.3c2.1.8 3.5 2.9 3.5 5.7'],
};

export function icon(name: keyof typeof ICONS | string, size = 18): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('fill', 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', '2');
  svg.setAttribute('stroke-linecap', 'round');
  svg.setAttribute('stroke-linejoin', 'round');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('icon');
  for (const d of ICONS[name] ?? []) {
    const p = document.createElementNS(ns, 'path');
    p.setAttribute('d', d);
    svg.appendChild(p);
  }
  return svg;
}
