// End-to-end test of the web client in a real browser (Debian's chromium, headless, driven by
// playwright-core) against a real pigeond serving the built client at /.
//
// Two users register in the UI and chat 1:1 both ways; a group with a third user; one user goes
// offline (network emulation: reconnect + resync) and later closes the tab, and comes back to
// find every message exactly once; an HTML-injection attempt is shown as text; two tabs of one
// user on different devices both get a message; signing in again on the same device kicks the
// first tab; history loads further back on scroll; a phone-sized layout; leave a group; logout.
// Screenshots go to $PIGEON_TEST_OUTPUT (default web/e2e/output); with
// PIGEON_UPDATE_SCREENSHOTS=1 the chat view is also copied to docs/screenshots/chat.png.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  PASSWORD, launchBrowser, newPage, outputDir, pageProblems, repoDir, screenshot, startServer, until,
} from './support.mjs';

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Locators -----------------------------------------------------------------------------------

const messageTexts = (page, text) =>
  page.locator('.msg-list .text').filter({ hasText: new RegExp(`^${escapeRe(text)}$`) });
const messageRow = (page, text) => page.locator('.msg-list [data-testid=message]')
  .filter({ has: page.locator('.text').filter({ hasText: new RegExp(`^${escapeRe(text)}$`) }) });
const conversation = (page, title) => page.locator(`[data-testid=conversation][data-title="${title}"]`);
const banner = (page) => page.locator('#conn-banner');

async function connState(page) {
  return banner(page).getAttribute('data-state');
}

async function waitConn(page, state) {
  await until(async () => (await connState(page)) === state, `${page.label} to be ${state}`);
}

// The text is on screen exactly once, and was never shown twice at the same time (not even
// for a moment, e.g. a sent message's bubble next to its echo).
async function seeOnce(page, text) {
  await messageTexts(page, text).first().waitFor();
  await until(async () => (await messageTexts(page, text).count()) === 1, `exactly one "${text}" on ${page.label}`);
  const dups = await page.evaluate(() => window.__pigeonDups);
  assert.ok(!dups.includes(text), `"${text.slice(0, 80)}" was shown twice at once on ${page.label}`);
}

// Before a page is closed or reloaded: nothing went wrong on it.
async function assertClean(page) {
  assert.deepEqual(await pageProblems(page), [], `no script errors, dialogs or duplicates on ${page.label}`);
}

async function fillLogin(page, name, device) {
  await page.locator('#login-username').fill(name);
  await page.locator('#login-password').fill(PASSWORD);
  if (device) await page.locator('#login-device').fill(device);
  await page.locator('form.login-form button[type=submit]').click();
  await page.getByTestId('me').filter({ hasText: new RegExp(`^${escapeRe(name)}$`) }).waitFor();
  await waitConn(page, 'online');
}

async function registerInUi(page, base, name) {
  await page.goto(`${base}/`);
  await page.getByRole('tab', { name: 'Create account' }).click();
  await fillLogin(page, name);
}

async function loginInUi(page, base, name, device) {
  await page.goto(`${base}/`);
  await page.getByRole('tab', { name: 'Sign in' }).click();
  await fillLogin(page, name, device);
}

async function send(page, text) {
  const input = page.getByLabel('Message', { exact: true });
  await input.fill(text);
  await input.press('Enter');
  await until(async () => (await input.inputValue()) === '', `${page.label}'s composer to clear`);
}

async function sendAndConfirm(page, text) {
  await send(page, text);
  // sending → stored (RECEIPT) → delivered (back on our own queue), in one bubble
  await messageRow(page, text).and(page.locator('[data-status=delivered]')).waitFor();
  await seeOnce(page, text);
}

async function openChat(page, title) {
  await conversation(page, title).click();
  await page.getByTestId('chat-title').filter({ hasText: new RegExp(`^${escapeRe(title)}$`) }).waitFor();
}

async function startChatWith(page, prefix, username) {
  const search = page.getByLabel('Find people');
  await search.fill(prefix);
  await page.locator(`[data-testid=user-result][data-username="${username}"]`).click();
  await page.getByTestId('chat-title').filter({ hasText: new RegExp(`^${escapeRe(username)}$`) }).waitFor();
}

async function noHorizontalOverflow(page) {
  return page.evaluate(() => {
    const s = document.querySelector('.scroller');
    return document.documentElement.scrollWidth <= window.innerWidth && (!s || s.scrollWidth <= s.clientWidth + 1);
  });
}


// The test -----------------------------------------------------------------------------------

test('the web client in a real browser against a real pigeond', { timeout: 240000 }, async (t) => {
  const server = await startServer();
  const browser = await launchBrowser();
  const pages = [];
  const desktop = { viewport: { width: 1180, height: 760 } };
  let stopped = false;
  try {
    const ctxA = await browser.newContext(desktop);
    const alice = await newPage(ctxA, 'alice');
    let ctxB = await browser.newContext(desktop);
    let bob = await newPage(ctxB, 'bob');
    pages.push(alice, bob);
    let bob2 = null;              // the tab that gets kicked
    let kickedAt = 0;
    let socketsAtKick = 0;

    await t.test('the page is served by pigeond and both users register in the UI', async () => {
      await alice.goto(`${server.base}/`);
      await alice.locator('#login-username').waitFor();
      await screenshot(alice, 'login');
      await registerInUi(alice, server.base, 'alice');
      await registerInUi(bob, server.base, 'bob');
      await server.register('carol');
      // A wrong password says so and stays on the form.
      const stranger = await newPage(ctxA, 'stranger');
      await stranger.goto(`${server.base}/`);
      await stranger.locator('#login-username').fill('bob');
      await stranger.locator('#login-password').fill('not-the-password');
      await stranger.locator('form.login-form button[type=submit]').click();
      await stranger.getByText('Wrong username or password.').waitFor();
      await assertClean(stranger);
      await stranger.close();
    });

    await t.test('1:1 chat both ways with status, unread count and presence', async () => {
      await startChatWith(alice, 'bo', 'bob');
      await sendAndConfirm(alice, 'Hi Bob! Are we still on for Saturday?');
      // Bob sees a new conversation with an unread badge, then the message.
      await conversation(bob, 'alice').getByTestId('unread').filter({ hasText: '1' }).waitFor();
      await openChat(bob, 'alice');
      await seeOnce(bob, 'Hi Bob! Are we still on for Saturday?');
      assert.equal(await conversation(bob, 'alice').getByTestId('unread').count(), 0);
      await sendAndConfirm(bob, 'Yes! 10am at the station 🚉');
      await seeOnce(alice, 'Yes! 10am at the station 🚉');
      await sendAndConfirm(alice, "Great, I'll bring snacks.\nAnd the map.");
      await seeOnce(bob, "Great, I'll bring snacks.\nAnd the map.");
      await sendAndConfirm(bob, 'Perfect 👍');
      await seeOnce(alice, 'Perfect 👍');
      // Presence: Alice sees Bob online in the chat header.
      await alice.getByTestId('chat-sub').filter({ hasText: /^online$/ }).waitFor();
    });

    await t.test('a group with a third user', async () => {
      await alice.getByRole('button', { name: 'New group' }).click();
      await alice.locator('#group-name').fill('Weekend trip');
      for (const who of ['bob', 'carol']) {
        await alice.locator('#group-member').fill(who.slice(0, 2));
        await alice.locator(`.dialog .pick[data-username="${who}"]`).click();
      }
      await alice.getByRole('button', { name: 'Create group' }).click();
      await alice.getByTestId('chat-title').filter({ hasText: /^Weekend trip$/ }).waitFor();
      await sendAndConfirm(alice, 'Who is in for the hike?');

      await openChat(bob, 'Weekend trip');
      await seeOnce(bob, 'Who is in for the hike?');
      await until(async () => (await messageRow(bob, 'Who is in for the hike?').getByTestId('sender').textContent()) === 'alice',
        'the sender name in the group');
      await sendAndConfirm(bob, 'Me! 🥾');

      // Carol writes from another client (the HTTP API).
      const carolToken = await server.login('carol');
      const groups = await server.api('GET', '/api/v1/groups', undefined, carolToken);
      const trip = groups.body.groups.find((g) => g.name === 'Weekend trip');
      assert.ok(trip, 'carol is in the group');
      const sent = await server.api('POST', '/api/v1/messages',
        { to_group: trip.group_id, body: 'Count me in, I know a great trail.', client_msg_id: 'c-1' }, carolToken);
      assert.equal(sent.status, 200);
      await seeOnce(alice, 'Me! 🥾');
      await seeOnce(alice, 'Count me in, I know a great trail.');
      assert.equal(await messageRow(alice, 'Count me in, I know a great trail.').getByTestId('sender').textContent(), 'carol');

      // The members panel shows who is online.
      await alice.getByRole('button', { name: 'Members' }).click();
      await alice.locator('[data-testid=member][data-username="bob"] .presence.on').waitFor();
      assert.equal(await alice.locator('[data-testid=member]').count(), 3);
      await screenshot(alice, 'group');
      await alice.getByRole('button', { name: 'Close members' }).click();
    });

    await t.test('message text is text: no HTML injection; odd text keeps the layout', async () => {
      await openChat(alice, 'bob');
      await openChat(bob, 'alice');
      await screenshot(alice, 'chat');
      if (process.env.PIGEON_UPDATE_SCREENSHOTS === '1') {
        mkdirSync(join(repoDir, 'docs/screenshots'), { recursive: true });
        copyFileSync(join(outputDir, 'chat.png'), join(repoDir, 'docs/screenshots/chat.png'));
      }
      const attacks = ['<img src=x onerror=alert(1)>', '<script>alert(2)</script><b>bold?</b>'];
      for (const a of attacks) await sendAndConfirm(alice, a);
      for (const a of attacks) await seeOnce(bob, a);
      assert.equal(await bob.locator('.msg-list img, .msg-list script, .msg-list b').count(), 0);
      assert.ok(await messageTexts(bob, attacks[0]).isVisible());

      const odd = [
        'x'.repeat(3000),
        'Z̷̢̛̛̯̘̻͖̝̞̤͚͇̣̞̩̯̈́̈́̋̓͐̊̀͋̅̑̆̚͝a̴̧̛͉̦̪̪͇̝̤̝̜͕̪̦͗̈́̀͐̀̒͂̈́̈́̚l̷̢̢̜̼̘̘̬̖̟̙͇͕̝͆̓́̄̍̓̾̔̈́͝g̸̨̛̙̩̫̗̻̜͈̬̩͕̮̥̋̈́̓̏̀̔́͂̕ơ̸̡̧̨̖̰̗̪̫̠̘̹̞̎̈́̀̊̈́́̈́̕͝',
        'שלום עולם — مرحبا بالعالم — 👩‍👩‍👧‍👦🏳️‍🌈 — \u202Ereversed?',
        'https://example.com/' + 'a-very-long-path-segment/'.repeat(40),
      ];
      for (const o of odd) await sendAndConfirm(alice, o);
      for (const o of odd) await seeOnce(bob, o);
      assert.ok(await noHorizontalOverflow(bob), 'no horizontal overflow on bob');
      assert.ok(await noHorizontalOverflow(alice), 'no horizontal overflow on alice');
    });

    await t.test('offline, reconnect and resync with no duplicates and no gaps', async () => {
      await openChat(bob, 'alice');
      await ctxB.setOffline(true);
      await waitConn(bob, 'offline');
      await banner(bob).filter({ hasText: 'You are offline' }).waitFor();
      await screenshot(bob, 'offline');
      const missed = ['While you were away 1', 'While you were away 2', 'While you were away 3'];
      for (const m of missed) await sendAndConfirm(alice, m);
      // Bob writes while offline: it waits in the outbox as "sending".
      await send(bob, 'Written on the train without signal');
      await messageRow(bob, 'Written on the train without signal').and(bob.locator('[data-status=sending]')).waitFor();
      await ctxB.setOffline(false);
      await waitConn(bob, 'online');
      for (const m of missed) await seeOnce(bob, m);
      await messageRow(bob, 'Written on the train without signal').and(bob.locator('[data-status=delivered]')).waitFor();
      await seeOnce(alice, 'Written on the train without signal');
      // A marker after the resync: everything before it has arrived; nothing came twice.
      await sendAndConfirm(alice, 'marker after reconnect');
      await seeOnce(bob, 'marker after reconnect');
      for (const m of missed) await seeOnce(bob, m);
      await seeOnce(bob, 'Written on the train without signal');
      const texts = await bob.locator('.msg-list .text').allTextContents();
      const i = texts.indexOf(missed[0]);
      assert.deepEqual(texts.slice(i, i + 3), missed, 'in order, no gap');
    });

    await t.test('closing the tab and coming back finds the messages once', async () => {
      await assertClean(bob);
      await ctxB.close();
      pages.splice(pages.indexOf(bob), 1);
      // Presence: Alice sees Bob go offline.
      await alice.getByTestId('chat-sub').filter({ hasText: /^offline$/ }).waitFor();
      await sendAndConfirm(alice, 'Sent while your tab was closed');
      await openChat(alice, 'Weekend trip');
      await sendAndConfirm(alice, 'Group message while bob was away');
      ctxB = await browser.newContext(desktop);
      bob = await newPage(ctxB, 'bob');
      pages.push(bob);
      await loginInUi(bob, server.base, 'bob');
      await conversation(bob, 'alice').getByTestId('unread').waitFor();
      await openChat(bob, 'alice');
      await seeOnce(bob, 'Sent while your tab was closed');
      await seeOnce(bob, 'Hi Bob! Are we still on for Saturday?');
      await openChat(bob, 'Weekend trip');
      await seeOnce(bob, 'Group message while bob was away');
      await seeOnce(bob, 'Who is in for the hike?');
    });

    await t.test('two tabs of one user on different devices both see a message', async () => {
      bob2 = await newPage(ctxB, 'bob-tab2');
      pages.push(bob2);
      await loginInUi(bob2, server.base, 'bob');
      const d1 = await bob.evaluate(() => sessionStorage.getItem('pigeon.device'));
      const d2 = await bob2.evaluate(() => sessionStorage.getItem('pigeon.device'));
      assert.notEqual(d1, d2, 'each tab is its own device');
      await openChat(alice, 'bob');
      await sendAndConfirm(alice, 'Both of your tabs get this');
      await openChat(bob, 'alice');
      await seeOnce(bob, 'Both of your tabs get this');
      await openChat(bob2, 'alice');
      await seeOnce(bob2, 'Both of your tabs get this');
      // What one device sends shows on the other.
      await sendAndConfirm(bob2, 'Sent from my second tab');
      await seeOnce(bob, 'Sent from my second tab');

      // Signing in again with the same device name kicks the first tab, which says so.
      const bob3 = await newPage(ctxB, 'bob-tab3');
      pages.push(bob3);
      await loginInUi(bob3, server.base, 'bob', d2);
      await bob2.getByTestId('kicked').filter({ hasText: 'signed in on this device elsewhere' }).waitFor();
      assert.equal(await connState(bob2), 'kicked');
      kickedAt = Date.now();
      socketsAtKick = bob2.sockets;
      assert.equal(socketsAtKick, 1, 'bob-tab2 had one connection');
      await screenshot(bob2, 'kicked');
      // It stays kicked: no automatic reconnect that would kick the new tab back.
      await sendAndConfirm(alice, 'After the kick');
      await openChat(bob3, 'alice');
      await seeOnce(bob3, 'After the kick');
      assert.equal(await connState(bob3), 'online');
      assert.equal(await connState(bob2), 'kicked');
      assert.equal(bob2.sockets, socketsAtKick, 'the kicked tab opened no new connection');
    });

    await t.test('history loads further back on scroll', async () => {
      const carolToken = await server.login('carol', 'script');
      for (let i = 1; i <= 130; i++) {
        const r = await server.api('POST', '/api/v1/messages',
          { to_user: 'alice', body: `history ${i}`, client_msg_id: `h-${i}` }, carolToken);
        assert.equal(r.status, 200);
      }
      // Messages that arrive live are kept; after a reload only the newest page is fetched.
      await assertClean(alice);
      await alice.reload();
      await waitConn(alice, 'online');
      await conversation(alice, 'carol').getByTestId('unread').filter({ hasText: '130' }).waitFor();
      await openChat(alice, 'carol');
      await seeOnce(alice, 'history 130');
      assert.ok((await alice.locator('.msg-list [data-testid=message]').count()) < 130, 'the first page is partial');
      await until(async () => {
        await alice.locator('.scroller').evaluate((el) => { el.scrollTop = 0; });
        return (await messageTexts(alice, 'history 1').count()) === 1;
      }, 'scrolling back to the first message', 20000);
      const texts = await alice.locator('.msg-list .text').allTextContents();
      assert.deepEqual(texts, Array.from({ length: 130 }, (_, i) => `history ${i + 1}`));
      await alice.getByText('This is the beginning of the conversation.').waitFor();
    });

    await t.test('phone-sized layout, and leaving a group', async () => {
      const ctxC = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
      const carol = await newPage(ctxC, 'carol');
      pages.push(carol);
      await loginInUi(carol, server.base, 'carol');
      await conversation(carol, 'Weekend trip').waitFor();
      assert.ok(await noHorizontalOverflow(carol));
      await screenshot(carol, 'phone-list');
      await openChat(carol, 'Weekend trip');
      assert.equal(await carol.locator('.sidebar').isVisible(), false, 'one pane at a time');
      await seeOnce(carol, 'Who is in for the hike?');
      await openChat(alice, 'Weekend trip');
      await sendAndConfirm(carol, 'See you all at 10 👋');
      await seeOnce(alice, 'See you all at 10 👋');
      assert.ok(await noHorizontalOverflow(carol));
      await screenshot(carol, 'phone-chat');

      await carol.getByRole('button', { name: 'Members' }).click();
      await carol.getByRole('button', { name: 'Leave group' }).click();
      await carol.locator('.dialog').getByRole('button', { name: 'Leave' }).click();
      await carol.getByText('You are no longer a member of this group.').waitFor();
      assert.equal(await carol.getByLabel('Message', { exact: true }).isDisabled(), true);
      const aliceToken = await alice.evaluate(() => JSON.parse(sessionStorage.getItem('pigeon.session')).token);
      const groups = await server.api('GET', '/api/v1/groups', undefined, aliceToken);
      const trip = groups.body.groups.find((g) => g.name === 'Weekend trip');
      const g = await server.api('GET', `/api/v1/groups/${trip.group_id}`, undefined, aliceToken);
      assert.deepEqual(g.body.members.map((m) => m.username).sort(), ['alice', 'bob']);
      await carol.getByRole('button', { name: 'Back to conversations' }).click();
      await conversation(carol, 'alice').waitFor();
    });

    await t.test('logout', async () => {
      const token = await alice.evaluate(() => JSON.parse(sessionStorage.getItem('pigeon.session')).token);
      await alice.getByRole('button', { name: 'Log out' }).click();
      await alice.locator('#login-username').waitFor();
      await until(async () => (await server.api('GET', '/api/v1/groups', undefined, token)).status === 401,
        'the token to be revoked');
      // A reload stays signed out.
      await assertClean(alice);
      await alice.reload();
      await alice.locator('#login-username').waitFor();
    });

    // The kicked tab stayed off well past its first retry (0.5 s ± 25 %) — the tests since the
    // kick took longer than that; the deadline only guards a run that was faster.
    await until(() => Date.now() - kickedAt > 2000, 'the first retry window after the kick to pass', 5000);
    assert.equal(bob2.sockets, socketsAtKick, 'the kicked tab never reconnected');
    assert.equal(await connState(bob2), 'kicked');

    const problems = (await Promise.all(pages.map(pageProblems))).flat();
    assert.deepEqual(problems, [], 'no script errors, no dialogs, nothing shown twice');
    await browser.close();
    const code = await server.stop();
    stopped = true;
    assert.equal(code, 0, 'pigeond exits cleanly on SIGTERM');
  } finally {
    if (!stopped) {
      await browser.close().catch(() => {});
      await server.stop().catch(() => {});
    }
  }
});
