// Shared by the browser tests and the screenshot script: a real chat-server with
// [web] on free ports in a temporary folder, a line-protocol client over a real TCP
// socket, and headless Chromium.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const WAIT = 15_000;
export const PASSWORD = 'correct horse';
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SERVER_BIN = process.env.CHAT_SERVER || path.join(here, '../../target/debug/chat-server');

/**
 * Starts chat-server with the web listener and an instructor `prof`; with `tls`,
 * also HTTPS with a certificate from `chat-server tls self-signed`, whose key's
 * hash (`spki`) the browser is told to trust.
 */
export async function startServer({ rooms = [], tls = false } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'classchat-browser-'));
  let spki = null;
  const tlsConfig = [];
  if (tls) {
    const out = path.join(dir, 'tls');
    execFileSync(SERVER_BIN, ['tls', 'self-signed', '--host', 'localhost', '--host', '127.0.0.1', '--out', out]);
    const cert = new X509Certificate(readFileSync(path.join(out, 'cert.pem')));
    const der = cert.publicKey.export({ type: 'spki', format: 'der' });
    spki = createHash('sha256').update(der).digest('base64');
    tlsConfig.push(
      '[tls]',
      `cert = ${JSON.stringify(path.join(out, 'cert.pem'))}`,
      `key = ${JSON.stringify(path.join(out, 'key.pem'))}`,
      'line_port = 0',
    );
  }
  const hash = execFileSync(SERVER_BIN, ['hash-password'], { input: PASSWORD + '\n' }).toString().trim();
  const config = [
    '[server]',
    'port = 0',
    'name = "CS101 lab"',
    `rooms = ${JSON.stringify(rooms)}`,
    '[storage]',
    `database = ${JSON.stringify(path.join(dir, 'chat.db'))}`,
    '[log]',
    `dir = ${JSON.stringify(path.join(dir, 'logs'))}`,
    'level = "warn"',
    '[access]',
    'instructors = ["prof"]',
    `instructor_password = ${JSON.stringify(hash)}`,
    // Every browser is on 127.0.0.1: a kick that held the address would keep
    // the later tests' students out.
    'kick_minutes = 0',
    '[web]',
    'enabled = true',
    'port = 0',
    'tls_port = 0',
    ...tlsConfig,
    '',
  ].join('\n');
  const file = path.join(dir, 'server.toml');
  writeFileSync(file, config);
  const child = spawn(SERVER_BIN, ['--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const addresses = await new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('the server did not start: ' + text)), WAIT);
    child.once('exit', (code) => reject(new Error('the server exited with ' + code)));
    child.stdout.on('data', (chunk) => {
      text += chunk;
      const chat = text.match(/^listening on (\S+):(\d+)$/m);
      const web = text.match(/^web listening on (http:\/\/\S+\/)$/m);
      const https = text.match(/^web listening on (https:\/\/\S+\/)$/m);
      if (chat && web && (https || !tls)) {
        clearTimeout(timer);
        resolve({ host: chat[1], port: Number(chat[2]), web: web[1], https: https && https[1] });
      }
    });
  });
  return {
    ...addresses,
    spki,
    dir,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A line-protocol client over TCP: what `nc` or chat-client would see. */
export class LineClient {
  static async connect(server) {
    const client = new LineClient();
    await new Promise((resolve, reject) => {
      client.socket = net.connect(server.port, server.host, resolve);
      client.socket.once('error', reject);
    });
    client.socket.setEncoding('utf8');
    client.socket.on('data', (chunk) => {
      client.buffer += chunk;
      let end;
      while ((end = client.buffer.indexOf('\n')) >= 0) {
        const line = client.buffer.slice(0, end);
        client.buffer = client.buffer.slice(end + 1);
        client.bodies.push(line.slice(line.indexOf('] ') + 2));
        client.wake();
      }
    });
    return client;
  }

  constructor() {
    this.buffer = '';
    this.bodies = [];
    this.wake = () => {};
  }

  static async login(server, name) {
    const client = await LineClient.connect(server);
    client.send(name);
    await client.expect(`* Welcome, ${name}!`);
    return client;
  }

  send(line) {
    this.socket.write(line + '\n');
  }

  /** Waits for a line whose body starts with `prefix`; returns it. */
  async expect(prefix) {
    const deadline = Date.now() + WAIT;
    for (;;) {
      const at = this.bodies.findIndex((body) => body.startsWith(prefix));
      if (at >= 0) {
        const [body] = this.bodies.splice(0, at + 1).slice(-1);
        return body;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line starting ${JSON.stringify(prefix)}; got ${JSON.stringify(this.bodies)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  close() {
    this.socket.destroy();
  }
}

/**
 * Headless Chromium with a fresh profile of its own; `trust` is the base64 SHA-256
 * of a certificate key it accepts as if a CA had signed it.
 */
export function launchBrowser({ trust = null } = {}) {
  const pinned = trust ? [`--ignore-certificate-errors-spki-list=${trust}`] : [];
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      ...pinned,
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** Polls `check` until it returns a truthy value; fails after WAIT naming `what`. */
export async function until(what, check, everyMs = 100) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Logs a student in on the chat page; resolves once the server has welcomed them. */
export async function studentLogsIn(page, web, name) {
  await page.goto(web);
  await page.locator('#name').waitFor({ state: 'visible', timeout: WAIT });
  await page.fill('#name', name);
  await page.click('#login button[type=submit]');
  await page.locator('#text').waitFor({ state: 'visible', timeout: WAIT });
  await page.locator('.line.notice', { hasText: `Welcome, ${name}!` }).waitFor({ timeout: WAIT });
}

/** Logs the instructor in through the form; resolves on the live page. */
export async function instructorLogsIn(page, web) {
  await page.goto(web + 'instructor');
  await page.fill('input[name=name]', 'prof');
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForURL(/\/instructor$/, { timeout: WAIT }), page.click('button[type=submit]')]);
  await page.locator('#rooms .room').first().waitFor({ timeout: WAIT });
}
