// The web pages in real headless Chromium against a real chat-server, with a
// terminal user on a real TCP socket. Run by `cargo test` (tests/integration/
// browser.rs) when Chromium and node_modules are present, or directly:
//   CHAT_SERVER=target/debug/chat-server node tests/browser/run.mjs
import assert from 'node:assert/strict';
import {
  LineClient,
  WAIT,
  instructorLogsIn,
  launchBrowser,
  startServer,
  studentLogsIn,
  until,
} from './lib.mjs';

const XSS = '<img src=x onerror=alert(1)>';

const tests = [];
const test = (name, body) => tests.push({ name, body });

test('a student logs in on the page and chats with a terminal user', async ({ server, browser }) => {
  const page = await browser.newPage();
  await studentLogsIn(page, server.web, 'sam');
  const tina = await LineClient.login(server, 'tina');
  await page.locator('.line.notice', { hasText: 'tina has joined #lobby' }).waitFor({ timeout: WAIT });
  tina.send('hello sam');
  const line = page.locator('.line.chat', { hasText: 'hello sam' });
  await line.waitFor({ timeout: WAIT });
  assert.equal(await line.locator('.nick').textContent(), 'tina:');
  assert.match(await line.locator('time').textContent(), /^\d\d:\d\d:\d\d$/, 'the server timestamp');
  await page.fill('#text', 'hi tina');
  await page.press('#text', 'Enter');
  assert.equal(await tina.expect('sam:'), 'sam: hi tina');
  await page.fill('#text', '/who');
  await page.press('#text', 'Enter');
  await page.locator('.line.answer', { hasText: '= #lobby (2): sam, tina' }).waitFor({ timeout: WAIT });
  assert.equal(await page.textContent('#status'), 'Connected');
  tina.close();
  await page.close();
});

test('markup in a message shows as text and never runs', async ({ server, browser }) => {
  const page = await browser.newPage();
  const dialogs = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss();
  });
  await studentLogsIn(page, server.web, 'xena');
  const tom = await LineClient.login(server, 'tom');
  tom.send(`look ${XSS} here`);
  const line = page.locator('.line.chat', { hasText: XSS });
  await line.waitFor({ timeout: WAIT });
  assert.equal(await line.locator('.text').textContent(), `look ${XSS} here`);
  await page.fill('#text', `mine ${XSS}`);
  await page.press('#text', 'Enter');
  assert.equal(await tom.expect('xena:'), `xena: mine ${XSS}`);
  await page.locator('.line.own', { hasText: `mine ${XSS}` }).waitFor({ timeout: WAIT });
  assert.equal(await page.locator('img').count(), 0, 'no img element anywhere');
  assert.deepEqual(dialogs, [], 'no dialog opened');
  tom.close();
  await page.close();
});

test('the page fits a phone and says when the connection is lost', async ({ server, browser }) => {
  const page = await browser.newPage({ viewport: { width: 360, height: 740 } });
  await studentLogsIn(page, server.web, 'pia');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 360, `no sideways scrolling at a phone's width (${width}px)`);
  assert.ok(await page.locator('#text').isVisible());
  // Dropping the connection from the server's side: /kick is for instructors, so
  // the student leaves with /quit and the page offers to reconnect.
  await page.fill('#text', '/quit');
  await page.press('#text', 'Enter');
  await page.locator('#offline').waitFor({ state: 'visible', timeout: WAIT });
  await page.click('#reconnect');
  await page.locator('.line.notice', { hasText: 'Welcome, pia!' }).nth(1).waitFor({ timeout: WAIT });
  await page.close();
});

test('the instructor logs in and sees the student live and in the chart', async ({ server, browser }) => {
  const student = await browser.newPage();
  await studentLogsIn(student, server.web, 'ana');
  await student.fill('#text', 'my first answer');
  await student.press('#text', 'Enter');
  const context = await browser.newContext();
  const page = await context.newPage();
  await instructorLogsIn(page, server.web);
  const cookie = (await context.cookies()).find((c) => c.name === 'classchat_session');
  assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', JSON.stringify(cookie));
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read the session');
  await page.locator('#rooms .member', { hasText: 'ana' }).waitFor({ timeout: WAIT });
  // The report reads the database, which the chat writes a moment later.
  await until('ana in the messages chart', async () => {
    await page.click('#range button[type=submit]');
    return (await page.locator('#per-student g.student[data-name="ana"]').count()) > 0;
  }, 300);
  assert.ok((await page.locator('#timeline rect.bar').count()) > 0, 'the timeline has a bar');
  await page.locator('#report tbody td', { hasText: 'ana' }).first().waitFor({ timeout: WAIT });
  // Sortable: clicking "Student" orders by name.
  await page.click('#report th[data-key=name]');
  const names = await page.locator('#report tbody tr td:first-child').allTextContents();
  assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b)));
  // Presence is live: the student leaves and the list follows within a poll or two.
  await student.close();
  await until('ana gone from the live list', async () =>
    (await page.locator('#rooms .member', { hasText: 'ana' }).count()) === 0);
  await context.close();
});

test('over HTTPS the page chats through wss:// and the session cookie is Secure', async () => {
  const server = await startServer({ tls: true });
  const browser = await launchBrowser({ trust: server.spki });
  try {
    const page = await browser.newPage();
    await studentLogsIn(page, server.https, 'hana');
    assert.equal(await page.evaluate(() => location.protocol), 'https:');
    const tina = await LineClient.login(server, 'tina');
    tina.send('hello over TLS');
    await page.locator('.line.chat', { hasText: 'hello over TLS' }).waitFor({ timeout: WAIT });
    await page.fill('#text', 'hi tina');
    await page.press('#text', 'Enter');
    assert.equal(await tina.expect('hana:'), 'hana: hi tina');
    tina.close();
    const context = await browser.newContext();
    const instructor = await context.newPage();
    await instructorLogsIn(instructor, server.https);
    const cookie = (await context.cookies()).find((c) => c.name === 'classchat_session');
    assert.ok(cookie && cookie.secure && cookie.httpOnly, JSON.stringify(cookie));
    await context.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('browsers see the shutdown and then the reconnecting state', async ({ server, browser }) => {
  const page = await browser.newPage();
  await studentLogsIn(page, server.web, 'zoe');
  await server.stop();
  await page.locator('.line.notice', { hasText: 'Server is shutting down.' }).waitFor({ timeout: WAIT });
  await page.locator('#status.reconnecting').waitFor({ timeout: WAIT });
  assert.match(await page.textContent('#status'), /Reconnecting/);
  await page.close();
});

const server = await startServer();
const browser = await launchBrowser();
let failed = 0;
try {
  for (const { name, body } of tests) {
    try {
      await body({ server, browser });
      console.log(`ok - ${name}`);
    } catch (err) {
      failed += 1;
      console.log(`not ok - ${name}\n${err.stack}`);
    }
  }
} finally {
  await browser.close();
  await server.stop();
}
console.log(failed === 0 ? `all ${tests.length} browser tests passed` : `${failed} of ${tests.length} failed`);
process.exit(failed === 0 ? 0 : 1);
