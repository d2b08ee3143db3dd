// The chat page in a real browser: Debian's Chromium, headless, driven by playwright-core.
// Two pages join, talk both ways, one leaves; the other then rides out a server restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from './browser.js';
import { startServer, type App } from '../src/cli/serve.js';
import { DEFAULTS } from '../src/cli/args.js';

const artifacts = join(dirname(fileURLToPath(import.meta.url)), 'artifacts');
const serveOpts = { ...DEFAULTS, port: 0, origins: [] as string[], heartbeat: 0 };

let app: App | null = null;
let browser: Browser | null = null;

beforeAll(async () => {
  app = await startServer(serveOpts);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

async function open(name: string): Promise<Page> {
  const context = await browser!.newContext();
  const page = await context.newPage();
  page.on('pageerror', (err) => {
    throw err;
  });
  await page.goto(app!.url);
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
  await page.fill('#name', name);
  await page.click('#join');
  await page.locator('#users li', { hasText: name }).waitFor();
  await expect.poll(() => page.isEnabled('#send')).toBe(true);
  return page;
}

const users = (page: Page) => page.locator('#users li').allTextContents();

describe('chat page in Chromium', () => {
  it('two users join, talk both ways, one leaves; the page reconnects after a restart', async () => {
    const alice = await open('alice');
    const bob = await open('bob');
    await expect.poll(() => users(alice)).toEqual(['alice', 'bob']);
    await expect.poll(() => users(bob)).toEqual(['alice', 'bob']);
    expect(await alice.textContent('#count')).toBe('2');

    // HTML-ish text must arrive and render as text, not markup.
    const html = '<b>hi bob</b> & <img src=x onerror="document.title=\'pwned\'">';
    await alice.fill('#text', html);
    await alice.click('#send');
    const atBob = bob.locator('#messages li.message', { hasText: 'hi bob' });
    await atBob.waitFor();
    expect(await atBob.locator('.name').textContent()).toBe('alice');
    expect(await atBob.locator('.text').textContent()).toBe(html);
    expect(await bob.locator('#messages b, #messages img').count()).toBe(0);
    expect(await bob.title()).toBe('wasmws chat');

    await bob.fill('#text', 'hello alice');
    await bob.press('#text', 'Enter');
    const atAlice = alice.locator('#messages li.message', { hasText: 'hello alice' });
    await atAlice.waitFor();
    expect(await atAlice.locator('.name').textContent()).toBe('bob');
    // Both see both messages, in the same order.
    await expect.poll(() => bob.locator('#messages li.message .text').allTextContents()).toEqual([html, 'hello alice']);
    await expect.poll(() => alice.locator('#messages li.message .text').allTextContents()).toEqual([html, 'hello alice']);

    // bob leaves: alice sees it in the list and as a line.
    await bob.context().close();
    await expect.poll(() => users(alice)).toEqual(['alice']);
    await alice.locator('#messages li.system', { hasText: 'bob left' }).waitFor();
    mkdirSync(artifacts, { recursive: true });
    await alice.screenshot({ path: join(artifacts, 'chat.png'), fullPage: true });

    // Server restart: the page shows it, backs off, reconnects and rejoins by itself.
    const port = Number(new URL(app!.url).port);
    await app!.close();
    app = null;
    await alice.locator('#status[data-state="reconnecting"]').waitFor({ timeout: 10_000 });
    expect(await alice.textContent('#status')).toMatch(/server went away/);
    expect(await alice.isDisabled('#send')).toBe(true);
    app = await startServer({ ...serveOpts, port });
    await alice.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => users(alice), { timeout: 10_000 }).toEqual(['alice']);
    await expect.poll(() => alice.isEnabled('#send')).toBe(true);
    await alice.screenshot({ path: join(artifacts, 'chat-reconnected.png'), fullPage: true });
  }, 90_000);
});
