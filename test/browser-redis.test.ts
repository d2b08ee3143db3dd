// The chat page in Chromium across two servers sharing one real redis-server (`serve --redis`):
// a user on each sees the other in the list of who is online and their messages, in one order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from './browser.js';
import { startServer, type App } from '../src/cli/serve.js';
import { DEFAULTS } from '../src/cli/args.js';
import { HAVE_REDIS, RedisServer } from './redis-server.js';


describe.skipIf(!HAVE_REDIS)('chat page in Chromium across two servers and one Redis', () => {
  let redis: RedisServer;
  const apps: App[] = [];
  let browser: Browser | null = null;

  beforeAll(async () => {
    redis = await RedisServer.start();
    for (let i = 0; i < 2; i++) apps.push(await startServer({ ...DEFAULTS, port: 0, origins: [], heartbeat: 0, redis: redis.url }));
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    for (const a of apps) await a.close();
    await redis?.stop();
  });

  async function open(app: App, name: string): Promise<Page> {
    const page = await (await browser!.newContext()).newPage();
    page.on('pageerror', (err) => {
      throw err;
    });
    await page.goto(app.url);
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 10_000 });
    await page.fill('#name', name);
    await page.click('#join');
    await page.locator('#users li', { hasText: name }).waitFor();
    await expect.poll(() => page.isEnabled('#send')).toBe(true);
    return page;
  }
  const users = (page: Page) => page.locator('#users li').allTextContents();
  const texts = (page: Page) => page.locator('#messages li.message .text').allTextContents();

  it('users on two servers see each other and each other\'s messages, in the same order', async () => {
    expect(apps[0].url).not.toBe(apps[1].url);
    const alice = await open(apps[0], 'alice');
    const bob = await open(apps[1], 'bob');
    await expect.poll(() => users(alice)).toEqual(['alice', 'bob']);
    await expect.poll(() => users(bob)).toEqual(['alice', 'bob']);
    await alice.fill('#text', 'hi from server A');
    await alice.click('#send');
    await bob.fill('#text', 'hi from server B');
    await bob.press('#text', 'Enter');
    await expect.poll(() => texts(alice)).toHaveLength(2);
    await expect.poll(() => texts(bob)).toHaveLength(2);
    expect(await texts(bob)).toEqual(await texts(alice));
    expect((await texts(alice)).sort()).toEqual(['hi from server A', 'hi from server B']);
    // Bob leaves: Alice's list follows.
    await bob.close();
    await expect.poll(() => users(alice)).toEqual(['alice']);
  });
});
