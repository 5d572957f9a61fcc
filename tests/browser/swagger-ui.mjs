// node tests/browser/swagger-ui.mjs BASE_URL TOKEN SCREENSHOT_PATH
//
// Drives the served Swagger UI as a person would, in headless Chromium: authorizes with TOKEN,
// creates a product with "Try it out" on POST /api/v1/products, finds it with GET
// /api/v1/products, and reads the 201 and 200 off the page. Any page error, console error or
// Content-Security-Policy violation fails the run: Swagger UI must work under the server's CSP.
// Prints `sku: …` and `screenshot: …` on stdout; on failure, `failure screenshot: …` too and
// exits 1. Run it through scripts/swagger-ui-e2e, which installs Chromium and playwright-core.
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.BROWSER_NODE_DIR ?? path.resolve(here, '../../target/browser-node');
const require = createRequire(path.join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');

const STEP_MS = 15_000;
const TOTAL_MS = 120_000;

const [base, token, shotArg] = process.argv.slice(2);
if (!base || !token || !shotArg) {
  console.error('usage: node tests/browser/swagger-ui.mjs BASE_URL TOKEN SCREENSHOT_PATH');
  process.exit(2);
}
const baseUrl = base.replace(/\/+$/, '');
const screenshot = path.resolve(shotArg);
const ext = path.extname(screenshot) || '.png';
const failureShot = path.join(
  path.dirname(screenshot),
  `${path.basename(screenshot, path.extname(screenshot))}-failure${ext}`,
);
mkdirSync(path.dirname(screenshot), { recursive: true });
rmSync(failureShot, { force: true }); // from an earlier failed run

const sku = `E2E-SWAGGER-${Date.now()}`;
const product = {
  sku,
  name: 'Swagger UI end-to-end tea, 250 g',
  description: 'Created by tests/browser/swagger-ui.mjs through the Try it out button.',
  price: { amount: 1299, currency: 'EUR' },
  stock: 7,
};

/** Page errors, console errors and CSP violations, in the order seen. */
const problems = [];
let currentStep = 'start';

class StepError extends Error {}

/** Runs one named step; its failure names the step. Fails too when the page reported a problem. */
async function step(name, fn) {
  currentStep = name;
  try {
    await fn();
  } catch (e) {
    throw new StepError(`step "${name}" failed: ${e instanceof Error ? e.message : e}`);
  }
  assertNoProblems(name);
}

function assertNoProblems(where) {
  if (problems.length > 0) {
    throw new StepError(
      `the page reported ${problems.length} error(s) by step "${where}":\n  ${problems.join('\n  ')}`,
    );
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

let browser;
let page;
const watchdog = setTimeout(() => {
  console.error(`swagger-ui-e2e: gave up after ${TOTAL_MS / 1000} s in step "${currentStep}"`);
  process.exit(1);
}, TOTAL_MS);

async function main() {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
    ],
    timeout: STEP_MS,
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(STEP_MS);
  // Reported by the browser itself, before any page script runs: a blocked inline script or
  // style, eval, a blocked fetch or image. The console also logs these as errors.
  await context.exposeFunction('__tesseraCspViolation', (text) => {
    problems.push(`Content-Security-Policy violation: ${text}`);
  });
  await context.addInitScript(() => {
    document.addEventListener(
      'securitypolicyviolation',
      (e) =>
        window.__tesseraCspViolation(
          `${e.effectiveDirective || e.violatedDirective} blocked ${e.blockedURI || '(inline)'}` +
            ` at ${e.sourceFile || document.location.href}:${e.lineNumber}` +
            (e.sample ? ` sample ${JSON.stringify(e.sample)}` : ''),
        ),
      true,
    );
  });
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') {
      const at = m.location()?.url ? ` (${m.location().url})` : '';
      problems.push(`console error: ${m.text()}${at}`);
    }
  });

  await step('open /swagger-ui/', async () => {
    const response = await page.goto(`${baseUrl}/swagger-ui/`, { waitUntil: 'load' });
    expect(response?.status() === 200, `GET /swagger-ui/ answered ${response?.status()}`);
    const csp = response.headers()['content-security-policy'];
    console.error(`swagger-ui-e2e: Content-Security-Policy: ${csp ?? '(none sent)'}`);
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
  assertNoProblems('end');
  console.log(`sku: ${sku}`);
  console.log(`screenshot: ${screenshot}`);
}

/** Waits for the live response of `operation` and checks its status code shown on the page. */
async function liveResponse(operation, status) {
  const row = operation.locator('.live-responses-table tr.response');
  await row.locator('.response-col_status').waitFor();
  const shown = (await row.locator('.response-col_status').innerText()).trim();
  const body = (await row.locator('.response-col_description pre').first().innerText()).trim();
  expect(shown === status, `the page shows status ${shown}, not ${status}; body: ${body}`);
  return { status: shown, body };
}

try {
  await main();
  await browser.close();
  clearTimeout(watchdog);
} catch (e) {
  console.error(`swagger-ui-e2e: ${e instanceof Error ? e.message : e}`);
  if (!(e instanceof StepError) && e instanceof Error && e.stack) console.error(e.stack);
  if (problems.length > 0 && !String(e?.message).includes(problems[0])) {
    console.error(`page problems:\n  ${problems.join('\n  ')}`);
  }
  if (page) {
    try {
      await page.screenshot({ path: failureShot, fullPage: true, timeout: STEP_MS });
      console.log(`failure screenshot: ${failureShot}`);
    } catch (shotError) {
      console.error(`swagger-ui-e2e: no failure screenshot: ${shotError.message}`);
    }
  }
  await browser?.close().catch(() => {});
  process.exit(1);
}
