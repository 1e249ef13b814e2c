// Makes docs/screenshots/web-chat.png and web-instructor.png from a real session:
// a real chat-server, three terminal users on TCP sockets and one student in the
// browser, chatting for WEB_SHOT_MINUTES (default 3) so that the timeline has a few
// minutes to show. Run through scripts/web-screenshots.sh.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineClient, instructorLogsIn, launchBrowser, startServer, studentLogsIn } from './lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, '../../docs/screenshots');
const minutes = Number(process.env.WEB_SHOT_MINUTES || 3);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Who says what, in order; `maya` types in the browser, the others in terminals.
const SCRIPT = [
  ['tom', 'morning! is the lab on linked lists today?'],
  ['maya', 'yes, part 2: reversing a list in place'],
  ['lee', 'I get a segfault when the list is empty'],
  ['ravi', 'check head == NULL before the loop'],
  ['lee', 'that was it, thanks'],
  ['tom', 'do we keep three pointers, prev/cur/next?'],
  ['maya', 'yes, and return prev at the end'],
  ['ravi', 'is recursion allowed for the bonus?'],
  ['tom', 'mine passes all 12 tests now'],
  ['lee', 'same here'],
  ['maya', 'what is the complexity of the recursive version?'],
  ['ravi', 'O(n) time but O(n) stack too'],
  ['tom', 'pushed to the repo'],
  ['maya', 'thanks all, see you Thursday'],
];

const server = await startServer({ rooms: ['lab'] });
const browser = await launchBrowser();
try {
  const terminals = {};
  for (const name of ['tom', 'lee', 'ravi']) terminals[name] = await LineClient.login(server, name);
  const chat = await browser.newPage({ viewport: { width: 900, height: 620 }, deviceScaleFactor: 1 });
  await studentLogsIn(chat, server.web, 'maya');

  const gap = (minutes * 60_000) / SCRIPT.length;
  for (const [who, text] of SCRIPT) {
    if (who === 'maya') {
      await chat.fill('#text', text);
      await chat.press('#text', 'Enter');
    } else {
      terminals[who].send(text);
      await chat.locator('.line.chat', { hasText: text }).waitFor();
    }
    await sleep(gap * (0.4 + Math.random() * 1.2));
  }
  terminals.tom.send('/msg maya can you share your test file?');
  await chat.locator('.line.pm').waitFor();
  await chat.fill('#text', '/who');
  await chat.press('#text', 'Enter');
  await chat.locator('.line.answer').waitFor();
  await chat.fill('#text', 'sure, sending it now');
  await chat.screenshot({ path: path.join(out, 'web-chat.png') });

  terminals.ravi.send('/join lab');
  await terminals.ravi.expect('* You are now in #lab');
  const instructor = await browser.newPage({ viewport: { width: 1200, height: 900 }, deviceScaleFactor: 1 });
  await instructorLogsIn(instructor, server.web);
  await instructor.locator('#rooms .member', { hasText: 'ravi' }).waitFor();
  await instructor.click('#range button[type=submit]');
  await instructor.locator('#per-student g.student[data-name="maya"]').waitFor();
  await instructor.locator('#timeline rect.bar').first().waitFor();
  await instructor.screenshot({ path: path.join(out, 'web-instructor.png'), fullPage: true });
  for (const terminal of Object.values(terminals)) terminal.close();
} finally {
  await browser.close();
  await server.stop();
}
console.log('wrote docs/screenshots/web-chat.png and docs/screenshots/web-instructor.png');
