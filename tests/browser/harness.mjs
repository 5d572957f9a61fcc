// What every browser test here shares: headless Chromium through playwright-core (installed
// by scripts/browser-e2e), named steps with a time limit, and a page that must stay clean —
// any page error, console error or Content-Security-Policy violation fails the run, so a
// page that only works without the server's CSP fails. On failure: the step's name, the
// page's problems and a `<name>-failure.png` screenshot beside the requested one; exit 1.
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.BROWSER_NODE_DIR ?? path.resolve(here, '../../target/browser-node');
const require = createRequire(path.join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');

export const STEP_MS = 15_000;
const TOTAL_MS = 120_000;

class StepError extends Error {}

export function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/**
 * Runs `body({ page, step, screenshot })` in a fresh page; `name` prefixes every message.
 * `args` are the script's arguments: BASE_URL, then the script's own, the last one being
 * SCREENSHOT_PATH. Resolves with the base URL and the screenshot path after `body`.
 */
export async function run(name, usage, count, body) {
  const args = process.argv.slice(2);
  if (args.length !== count || args.some((a) => !a)) {
    console.error(`usage: node ${usage}`);
    process.exit(2);
  }
  const baseUrl = args[0].replace(/\/+$/, '');
  const screenshot = path.resolve(args[args.length - 1]);
  const ext = path.extname(screenshot) || '.png';
  const failureShot = path.join(
    path.dirname(screenshot),
    `${path.basename(screenshot, path.extname(screenshot))}-failure${ext}`,
  );
  mkdirSync(path.dirname(screenshot), { recursive: true });
  rmSync(failureShot, { force: true }); // from an earlier failed run

  /** Page errors, console errors and CSP violations, in the order seen. */
  const problems = [];
  let currentStep = 'start';
  const assertNoProblems = (where) => {
    if (problems.length > 0) {
      throw new StepError(
        `the page reported ${problems.length} error(s) by step "${where}":\n  ${problems.join('\n  ')}`,
      );
    }
  };
  /** Runs one named step; its failure names the step. Fails too when the page reported a problem. */
  const step = async (stepName, fn) => {
    currentStep = stepName;
    try {
      await fn();
    } catch (e) {
      throw new StepError(`step "${stepName}" failed: ${e instanceof Error ? e.message : e}`);
    }
    assertNoProblems(stepName);
  };

  const watchdog = setTimeout(() => {
    console.error(`${name}: gave up after ${TOTAL_MS / 1000} s in step "${currentStep}"`);
    process.exit(1);
  }, TOTAL_MS);

  let browser;
  let page;
  try {
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
    await body({ page, step, baseUrl, screenshot, args });
    assertNoProblems('end');
    await browser.close();
    clearTimeout(watchdog);
    console.log(`screenshot: ${screenshot}`);
  } catch (e) {
    console.error(`${name}: ${e instanceof Error ? e.message : e}`);
    if (!(e instanceof StepError) && e instanceof Error && e.stack) console.error(e.stack);
    if (problems.length > 0 && !String(e?.message).includes(problems[0])) {
      console.error(`page problems:\n  ${problems.join('\n  ')}`);
    }
    if (page) {
      try {
        await page.screenshot({ path: failureShot, fullPage: true, timeout: STEP_MS });
        console.log(`failure screenshot: ${failureShot}`);
      } catch (shotError) {
        console.error(`${name}: no failure screenshot: ${shotError.message}`);
      }
    }
    await browser?.close().catch(() => {});
    process.exit(1);
  }
}

/** Logs the Content-Security-Policy the server sent with `response` (to stderr). */
export function logCsp(name, response) {
  const csp = response.headers()['content-security-policy'];
  console.error(`${name}: Content-Security-Policy: ${csp ?? '(none sent)'}`);
}
