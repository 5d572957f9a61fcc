// node tests/browser/swagger-ui.mjs BASE_URL TOKEN SCREENSHOT_PATH
//
// Drives the served Swagger UI as a person would, in headless Chromium: authorizes with TOKEN,
// creates a product with "Try it out" on POST /api/v1/products, finds it with GET
// /api/v1/products, and reads the 201 and 200 off the page. Any page error, console error or
// Content-Security-Policy violation fails the run: Swagger UI must work under the server's CSP.
// Prints `sku: …` and `screenshot: …` on stdout; on failure, `failure screenshot: …` too and
// exits 1. Run it through scripts/swagger-ui-e2e, which installs Chromium and playwright-core.
import { expect, logCsp, run } from './harness.mjs';

const NAME = 'swagger-ui-e2e';
const sku = `E2E-SWAGGER-${Date.now()}`;
const product = {
  sku,
  name: 'Swagger UI end-to-end tea, 250 g',
  description: 'Created by tests/browser/swagger-ui.mjs through the Try it out button.',
  price: { amount: 1299, currency: 'EUR' },
  stock: 7,
};

await run(
  NAME,
  'tests/browser/swagger-ui.mjs BASE_URL TOKEN SCREENSHOT_PATH',
  3,
  async ({ page, step, baseUrl, screenshot, args: [, token] }) => {
    await step('open /swagger-ui/', async () => {
      const response = await page.goto(`${baseUrl}/swagger-ui/`, { waitUntil: 'load' });
      expect(response?.status() === 200, `GET /swagger-ui/ answered ${response?.status()}`);
      logCsp(NAME, response);
      await page.locator('.swagger-ui .information-container .title').waitFor();
      await page.locator('#operations-product-create_product').waitFor();
      await page.locator('#operations-product-list_products').waitFor();
      const loadErrors = await page.locator('.swagger-ui .errors-wrapper').allInnerTexts();
      expect(loadErrors.length === 0, `Swagger UI shows errors: ${loadErrors.join(' | ')}`);
    });

    await step('authorize with the bearer token', async () => {
      await page.locator('.auth-wrapper button.authorize').click();
      const dialog = page.locator('.dialog-ux .modal-ux');
      await dialog.waitFor();
      const input = dialog.locator('.auth-container input:not([type=hidden])').first();
      await input.fill(token);
      await dialog.locator('.auth-btn-wrapper button.authorize').click();
      // Swagger UI swaps the dialog's Authorize button for Logout once a value is accepted.
      await dialog.locator('.auth-btn-wrapper button', { hasText: 'Logout' }).waitFor();
      await dialog.locator('.auth-btn-wrapper button.btn-done').click();
      await dialog.waitFor({ state: 'detached' });
      await page.locator('.auth-wrapper button.authorize.locked').waitFor();
    });

    const create = page.locator('#operations-product-create_product');
    let created;
    await step('POST /api/v1/products with Try it out', async () => {
      await create.locator('.opblock-summary-control').click();
      await create.locator('button.try-out__btn').click();
      const body = create.locator('textarea.body-param__text');
      await body.fill(JSON.stringify(product, null, 2));
      const sent = page.waitForResponse(
        (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/api/v1/products',
      );
      await create.locator('button.execute').click();
      const response = await sent;
      expect(
        response.request().headers()['authorization'] === `Bearer ${token}`,
        'the request did not carry the authorized bearer token',
      );
      created = await liveResponse(create, '201');
      expect(created.body.includes(sku), `the 201 body does not mention ${sku}: ${created.body}`);
    });

    const list = page.locator('#operations-product-list_products');
    await step('GET /api/v1/products with Try it out', async () => {
      await list.locator('.opblock-summary-control').click();
      await list.locator('button.try-out__btn').click();
      // Only the new product, so that it is on the first page whatever else the server holds.
      await list.locator('tr[data-param-name="q"] input').fill(sku);
      await list.locator('button.execute').click();
      const listed = await liveResponse(list, '200');
      expect(listed.body.includes(sku), `the 200 body does not list ${sku}: ${listed.body}`);
    });

    await step('screenshot', async () => {
      // Fold the other modules' sections and the schemas, as a reader would, so that the page
      // (and the picture) is mostly the two executed operations.
      const openTags = page.locator(
        '.opblock-tag-section.is-open:not(:has(#operations-product-create_product)) > .opblock-tag',
      );
      while ((await openTags.count()) > 0) await openTags.first().click();
      const models = page.locator('section.models.is-open .models-control');
      if ((await models.count()) > 0) await models.click();
      await page.screenshot({ path: screenshot, fullPage: true });
    });
    console.log(`sku: ${sku}`);
  },
);

/** Waits for the live response of `operation` and checks its status code shown on the page. */
async function liveResponse(operation, status) {
  const row = operation.locator('.live-responses-table tr.response');
  await row.locator('.response-col_status').waitFor();
  const shown = (await row.locator('.response-col_status').innerText()).trim();
  const body = (await row.locator('.response-col_description pre').first().innerText()).trim();
  expect(shown === status, `the page shows status ${shown}, not ${status}; body: ${body}`);
  return { status: shown, body };
}
