// node tests/browser/console.mjs BASE_URL TOKEN MODULES SCREENSHOT_PATH
//
// Drives the operator console as an operator would, in headless Chromium: opens
// /console/#token=TOKEN, sees every module of MODULES (comma-separated) listed and drawn as a
// node of the SVG map, the bus per subscriber, and a dead letter with its last error; saves the
// screenshot, then clicks the dead letter's Replay button and waits for it to leave the list;
// last, forgets the token and signs in again through the paste box.
// Any page error, console error or Content-Security-Policy violation fails the run. Prints
// `error: …` (the dead letter's error as shown), `replayed: EVENT_ID` and `screenshot: …` on
// stdout. Run it through scripts/console-e2e, which installs Chromium and playwright-core.
import { expect, logCsp, run } from './harness.mjs';

const NAME = 'console-e2e';

await run(
  NAME,
  'tests/browser/console.mjs BASE_URL TOKEN MODULES SCREENSHOT_PATH',
  4,
  async ({ page, step, baseUrl, screenshot, args: [, token, moduleList] }) => {
    const modules = moduleList.split(',');

    await step('open /console/ with the token in the fragment', async () => {
      const response = await page.goto(`${baseUrl}/console/#token=${token}`, { waitUntil: 'load' });
      expect(response?.status() === 200, `GET /console/ answered ${response?.status()}`);
      logCsp(NAME, response);
      await page.locator('#bus').waitFor();
      expect(!page.url().includes(token), `the token stayed in the address bar: ${page.url()}`);
      expect(await page.locator('#login').isHidden(), 'the token form is still shown');
    });

    await step('the modules are listed', async () => {
      for (const m of modules) await page.locator(`#modules li[data-module="${m}"]`).waitFor();
      const shown = await page.locator('#modules li').count();
      expect(shown === modules.length, `${shown} modules listed, expected ${modules.length}`);
    });

    await step('the map draws a node per module, and arrows', async () => {
      for (const m of modules) await page.locator(`#map svg g.node[data-module="${m}"]`).waitFor();
      const edges = await page.locator('#map svg path.edge').count();
      expect(edges > 0, 'the map has no arrows');
    });

    let id;
    let error;
    await step('the bus shows a dead-lettered subscriber and the dead letter with its error', async () => {
      await page.locator('#subscribers tbody tr').first().waitFor();
      const failing = page.locator('#subscribers tbody tr:has(.badge.failed)');
      expect((await failing.count()) >= 1, 'no subscriber shows a dead letter');
      const row = page.locator('#dead-letters tbody tr[data-event]').first();
      await row.waitFor();
      id = await row.getAttribute('data-event');
      error = (await row.locator('td.error-text').innerText()).trim();
      expect(error.length > 0, 'the dead letter shows no error');
    });

    await step('screenshot', async () => {
      await page.screenshot({ path: screenshot, fullPage: true });
    });

    await step('Replay takes the dead letter off the list', async () => {
      const row = page.locator(`#dead-letters tbody tr[data-event="${id}"]`);
      const sent = page.waitForResponse(
        (r) =>
          r.request().method() === 'POST' &&
          new URL(r.url()).pathname === `/api/v1/admin/events/${id}/replay`,
      );
      await row.locator('button.replay').click();
      const response = await sent;
      expect(response.status() === 202, `the replay answered ${response.status()}`);
      expect(
        response.request().headers()['authorization'] === `Bearer ${token}`,
        'the replay did not carry the bearer token',
      );
      await row.waitFor({ state: 'detached' });
      await page.locator('#status', { hasText: 'Replayed' }).waitFor();
    });

    await step('forget the token, then paste it into the form', async () => {
      await page.locator('#forget').click();
      await page.locator('#login').waitFor();
      expect(await page.locator('#bus').isHidden(), 'the bus is still shown without a token');
      const kept = await page.evaluate(() => sessionStorage.length);
      expect(kept === 0, `${kept} item(s) left in sessionStorage`);
      await page.locator('#token').fill(token);
      await page.locator('#token-form button[type=submit]').click();
      await page.locator('#bus').waitFor();
      await page.locator('#subscribers tbody tr').first().waitFor();
      await page.locator('#no-dead').waitFor();
    });

    console.log(`error: ${error}`);
    console.log(`replayed: ${id}`);
  },
);
