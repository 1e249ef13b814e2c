// The web pages in real headless Chromium against a real chat-server, with a
// terminal user on a real TCP socket. Run by `cargo test` (tests/integration/
// browser.rs) when Chromium and node_modules are present, or directly:
//   CHAT_SERVER=target/debug/chat-server node tests/browser/run.mjs
import assert from 'node:assert/strict';
import {
  LineClient,
  PASSWORD,
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

test('the header names the server, and the name form shows alone', async ({ server, browser }) => {
  const page = await browser.newPage();
  await page.goto(server.web);
  await page.locator('#name').waitFor({ state: 'visible', timeout: WAIT });
  assert.equal(await page.textContent('#server-name'), 'CS101 lab', 'the name from "* Connected to CS101 lab."');
  assert.match(await page.title(), /^CS101 lab\b/);
  assert.equal(await page.locator('#status').isVisible(), false, 'no "Connecting…" beside the name form');
  for (const bar of ['#send', '#offline']) assert.equal(await page.locator(bar).isVisible(), false, bar);
  await page.fill('#name', 'nell');
  await page.press('#name', 'Enter');
  await page.locator('#text').waitFor({ state: 'visible', timeout: WAIT });
  assert.equal(await page.textContent('#status'), 'Connected');
  assert.equal(await page.locator('#login').isVisible(), false);
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
  // Enough history to scroll, so that a bar pushing the last line out would show.
  for (let i = 0; i < 3; i += 1) {
    await page.fill('#text', '/help');
    await page.press('#text', 'Enter');
  }
  await until('three /help answers', async () => (await page.locator('.line.answer', { hasText: '/quit' }).count()) === 3);
  await page.fill('#text', '/quit');
  await page.press('#text', 'Enter');
  await page.locator('#offline').waitFor({ state: 'visible', timeout: WAIT });
  // One closed state: the bar replaces the input, and the goodbye stays in view.
  assert.equal(await page.locator('#send').isVisible(), false, 'no disabled input under the bar');
  assert.equal(await page.textContent('#offline-text'), 'You left the chat.');
  assert.equal(await page.textContent('#status'), 'Disconnected');
  const goodbye = page.locator('.line.notice', { hasText: 'Goodbye, pia.' }).last();
  await until('the goodbye in view', () =>
    goodbye.evaluate((line) => {
      const log = line.parentElement.getBoundingClientRect();
      const box = line.getBoundingClientRect();
      return box.top >= log.top && box.bottom <= log.bottom + 1;
    }));
  assert.ok(await page.locator('#reconnect').isVisible());
  await page.click('#reconnect');
  await page.locator('.line.notice', { hasText: 'Welcome, pia!' }).nth(1).waitFor({ timeout: WAIT });
  await page.close();
});

test('a kicked student sees why, and the same closed state', async ({ server, browser }) => {
  const page = await browser.newPage();
  await studentLogsIn(page, server.web, 'kim');
  const prof = await LineClient.connect(server);
  prof.send('prof');
  await prof.expect('* This name is an instructor');
  prof.send(PASSWORD);
  await prof.expect('* Welcome, prof!');
  prof.send('/kick kim');
  await page.locator('#offline').waitFor({ state: 'visible', timeout: WAIT });
  assert.equal(await page.textContent('#offline-text'), 'You were removed from the chat.');
  assert.equal(await page.locator('#send').isVisible(), false);
  assert.ok(await page.locator('.line.notice', { hasText: 'You have been kicked by prof' }).isVisible());
  prof.close();
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

test('the report table: the CSV columns, keyboard sorting, one time format, a phone', async ({ server, browser }) => {
  // An instructor's name asks for the instructor password as its code.
  const prof = await LineClient.connect(server);
  prof.send('prof');
  await prof.expect('* This name is an instructor');
  prof.send(PASSWORD);
  await prof.expect('* Welcome, prof!');
  const ovid = await LineClient.login(server, 'publius_ovidius');
  for (const name of ['naso_the_poet', 'metamorphoses', 'tristia_writer', 'ovid']) {
    ovid.send('/nick ' + name);
    await ovid.expect('* ');
  }
  ovid.send('in nova fert animus');
  const mira = await LineClient.login(server, 'mira');
  mira.send('hello');
  prof.send('/mute mira');
  await prof.expect('* mira');
  prof.send('/kick mira');
  await prof.expect('* mira has been kicked.');

  const context = await browser.newContext({ viewport: { width: 375, height: 740 } });
  const page = await context.newPage();
  await instructorLogsIn(page, server.web);
  const cell = (name, key) => page.locator(`#report tbody tr:has(td[data-key=name]:text-is("${name}")) td[data-key=${key}]`);
  const others = page.locator('#report td[data-key=other_names]', { hasText: 'metamorphoses' });
  await until('the moderation in the report', async () => {
    await page.click('#range button[type=submit]');
    return (await cell('mira', 'kicked').count()) > 0 &&
      (await cell('mira', 'kicked').textContent()) === '1' &&
      (await others.count()) > 0;
  }, 300);
  // Every column of report.csv, moderation included.
  const keys = await page.locator('#report thead th').evaluateAll((ths) => ths.map((th) => th.dataset.key));
  for (const key of ['instructor', 'moderation_actions', 'kicked', 'muted', 'other_names', 'online_secs']) {
    assert.ok(keys.includes(key), `${key} in ${keys}`);
  }
  assert.equal(await cell('mira', 'kicked').textContent(), '1');
  assert.equal(await cell('mira', 'muted').textContent(), '1');
  // Online minutes with one decimal; a short session that ended is not a bare 0.
  for (const text of await page.locator('#report td[data-key=online_secs]').allTextContents()) {
    assert.match(text, /^(0|<0\.1|\d+\.\d)$/, 'online minutes');
  }
  assert.notEqual(await cell('ana', 'online_secs').textContent(), '0', "ana's few seconds");
  assert.match(await cell('ana', 'online_secs').getAttribute('title'), /^\d+s$/, 'the exact time on hover');
  // One time format on the page: YYYY-MM-DD HH:MM, local.
  for (const text of await page.locator('#report td[data-key=first_seen]').allTextContents()) {
    assert.match(text, /^\d{4}-\d\d-\d\d \d\d:\d\d$/);
  }
  for (const text of await page.locator('#timeline text.tick').allTextContents()) {
    assert.match(text, /^\d{4}-\d\d-\d\d \d\d:\d\d$/);
  }
  assert.match(await page.textContent('#zone'), /local.*UTC[+−]\d\d:\d\d/);
  // A minute or two of data: slim bars, and labels inside the chart.
  for (const width of await page.locator('#timeline rect.bar').evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('width'))))) {
    assert.ok(width <= 24, `bar width ${width}`);
  }
  const ticks = await page.locator('#timeline text.tick').evaluateAll((ts) =>
    ts.map((t) => ({ x: t.getBBox().x, width: t.getBBox().width, chart: t.ownerSVGElement.viewBox.baseVal.width })));
  ticks.sort((a, b) => a.x - b.x);
  ticks.forEach((box, i) => {
    assert.ok(box.x >= 0 && box.x + box.width <= box.chart, `tick label inside the chart: ${JSON.stringify(box)}`);
    if (i > 0) assert.ok(ticks[i - 1].x + ticks[i - 1].width <= box.x, 'tick labels apart');
  });
  // Labels keep their size on a phone: the chart is drawn at the box's width.
  const scale = await page.locator('#timeline svg').evaluate((svg) => svg.getBoundingClientRect().width / svg.viewBox.baseVal.width);
  assert.ok(scale > 0.9, `chart text scaled by ${scale}`);
  // Sorting by keyboard: headers are buttons, and the sorted one says so.
  await page.focus('#report th[data-key=words] button');
  await page.keyboard.press('Enter');
  assert.equal(await page.getAttribute('#report th[data-key=words]', 'aria-sort'), 'descending');
  await page.keyboard.press('Space');
  assert.equal(await page.getAttribute('#report th[data-key=words]', 'aria-sort'), 'ascending');
  assert.equal(await page.locator('#report th[aria-sort]').count(), 1, 'one sorted column');
  assert.equal(await page.evaluate(() => document.activeElement.closest('th')?.dataset.key), 'words', 'focus stays');
  // The report refreshes itself (every 15 s, or on Show) and redraws the header.
  await page.evaluate(() => {
    document.querySelector('#report thead tr').dataset.old = 'yes';
    document.getElementById('range').requestSubmit();
  });
  await until('the table redrawn', async () => (await page.locator('#report thead tr[data-old]').count()) === 0);
  assert.equal(await page.getAttribute('#report th[data-key=words]', 'aria-sort'), 'ascending');
  assert.equal(await page.evaluate(() => document.activeElement.closest('th')?.dataset.key), 'words', 'focus survives a refresh');
  const words = (await page.locator('#report td[data-key=words]').allTextContents()).map(Number);
  assert.deepEqual(words, [...words].sort((a, b) => a - b));
  // A phone: the page does not scroll sideways, the table does and says so, and
  // the student's name stays in view.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 375), 'no sideways page');
  await page.locator('#scroll-hint').waitFor({ state: 'visible', timeout: WAIT });
  assert.ok(await page.locator('#table-scroll.more-right').count(), 'a shadow on the right');
  const first = page.locator('#report tbody td[data-key=name]').first();
  const before = await first.boundingBox();
  await page.locator('#table-wrap').evaluate((wrap) => { wrap.scrollLeft = wrap.scrollWidth; });
  await page.locator('#table-scroll.more-left').waitFor({ timeout: WAIT });
  const after = await first.boundingBox();
  assert.equal(Math.round(after.x), Math.round(before.x), 'the first column is sticky');
  // Other names wrap instead of running off.
  assert.match(await others.textContent(), /^metamorphoses, naso_the_poet, .*tristia_writer$/);
  const lines = await others.evaluate((td) => {
    const range = document.createRange();
    range.selectNodeContents(td);
    return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
  });
  assert.ok(lines > 1, `other names wrap (${lines} line)`);
  assert.ok(await others.evaluate((td) => td.scrollWidth <= td.clientWidth), 'nothing clipped');
  prof.close();
  ovid.close();
  mira.close();
  await context.close();
});

test('a live class on the instructor page: hands, a poll, questions, and the attendance grid', async ({ server, browser }) => {
  const prof = await LineClient.connect(server);
  prof.send('prof');
  await prof.expect('* This name is an instructor');
  prof.send(PASSWORD);
  await prof.expect('* Welcome, prof!');
  prof.send('/join lecture');
  await prof.expect('* You are now in #lecture');
  const hana = await LineClient.login(server, 'hana');
  const ivo = await LineClient.login(server, 'ivo');
  for (const student of [hana, ivo]) {
    student.send('/join lecture');
    await student.expect('* You are now in #lecture');
  }
  prof.send('/session start Week 1');
  await hana.expect('* prof started the session: Week 1');
  hana.send('/hand slide 4?');
  await prof.expect('* hana raised a hand: slide 4?');
  prof.send('/poll Ready? | yes | no');
  await ivo.expect('* Poll ');
  hana.send('/vote 1');
  await hana.expect('* Your vote in poll');
  ivo.send('/ask is it on the exam?');
  await prof.expect('* Question: is it on the exam? [from ivo]');
  hana.send('thanks');
  await ivo.expect('hana: thanks');

  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  await instructorLogsIn(page, server.web);
  const card = page.locator('#rooms .room[data-room=lecture]');
  await card.locator('.session', { hasText: 'Session: Week 1' }).waitFor({ timeout: WAIT });
  await card.locator('ol.hands li', { hasText: 'hana' }).waitFor({ timeout: WAIT });
  assert.match(await card.locator('ol.hands li').first().textContent(), /^hana · \d+ min: slide 4\?$/);
  await card.locator('ol.poll li', { hasText: 'yes: 1' }).waitFor({ timeout: WAIT });
  assert.equal(await card.locator('ol.poll li', { hasText: 'no: 0' }).count(), 1);
  // Staff see who asked; the room did not.
  await card.locator('li.question', { hasText: 'is it on the exam? [from ivo' }).waitFor({ timeout: WAIT });
  // The queue follows the class live.
  prof.send('/next');
  await hana.expect('* prof calls on hana');
  await until('the hand gone from the page', async () => (await card.locator('ol.hands li').count()) === 0);

  prof.send('/session end');
  await hana.expect('* prof ended the session: Week 1');
  // The grid reads the record, which the chat writes a moment later.
  const column = page.locator('#attendance thead th.session', { hasText: 'Week 1 #lecture' });
  await until('the session in the attendance grid', async () => {
    await page.click('#range button[type=submit]');
    return (await column.count()) === 1;
  }, 300);
  const headers = await page.locator('#attendance thead th').allTextContents();
  const at = headers.findIndex((h) => h.endsWith('Week 1 #lecture'));
  const mark = (name) => page.locator(`#attendance tbody tr[data-name="${name}"] td`).nth(at).textContent();
  assert.equal(await mark('hana'), '✓');
  assert.equal(await mark('ivo'), '✓');
  // A student of the other tests, never in #lecture: absent from this session.
  assert.equal(await mark('ana'), '·');
  assert.equal(await page.locator('#attendance tbody tr[data-name="prof"]').count(), 0, 'staff are not students');
  assert.match(await page.getAttribute('#gradebook', 'href'), /^\/instructor\/attendance\.csv/);
  const csv = await page.evaluate(async (href) => (await fetch(href)).text(), await page.getAttribute('#gradebook', 'href'));
  assert.match(csv.split('\n')[0], /^name,full_name,.*Week 1 #lecture,attended\r?$/);
  if (process.env.SHOTS) await page.locator('#attendance').screenshot({ path: process.env.SHOTS + '/attendance.png' });
  if (process.env.SHOTS) await card.screenshot({ path: process.env.SHOTS + '/lecture-card.png' });
  prof.close();
  hana.close();
  ivo.close();
  await context.close();
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
