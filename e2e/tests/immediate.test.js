// Immediate sign-in (`signIn({mediation: "immediate"})`) on the demo's
// "Sign in with a passkey" button, in real headless Chromium.
//
// What this Chromium does, said plainly: Debian's Chromium 156 answers
// `getClientCapabilities()` with `immediateGet: true`, yet refuses
// `mediation: "immediate"` as an unknown enum value (a TypeError; the
// feature is behind an origin trial). So:
//   - "as Chromium ships": the client treats the refusal as unsupported and
//     takes the caller's fallback (the demo: today's prompt); real.
//   - "immediate" itself is SIMULATED: an init script answers
//     `mediation: "immediate"` the way the explainer specifies (NotAllowedError
//     at once when no passkey is here; the prompt otherwise, run by the real
//     virtual authenticator with `mediation` removed). The client, the
//     service and Kratos are real; the browser's immediate logic is not.
//   - "unsupported" is simulated by overriding getClientCapabilities before
//     the client loads.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BASE, launch, kratosWhoami, message, newEmail, pageWithAuthenticator, screenshot, signOut, signUp,
} from "./helpers.js";

// Counts WebAuthn get() calls by mediation; with `simulate`, answers the
// immediate ones as the explainer says, from whether the virtual
// authenticator holds a credential (window.__hasPasskey, set by the test).
async function instrument(context, { simulate = false, immediateGet } = {}) {
  await context.addInitScript(({ simulate, immediateGet }) => {
    window.__gets = [];
    const get = navigator.credentials.get.bind(navigator.credentials);
    navigator.credentials.get = (options) => {
      window.__gets.push(options?.mediation ?? "modal");
      if (simulate && options?.mediation === "immediate") {
        if (!window.__hasPasskey) {
          return Promise.reject(new DOMException("No credential immediately available.", "NotAllowedError"));
        }
        const { mediation: _, ...modal } = options;
        return get(modal);
      }
      return get(options);
    };
    if (immediateGet !== undefined) {
      const capabilities = PublicKeyCredential.getClientCapabilities;
      PublicKeyCredential.getClientCapabilities = async () =>
        ({ ...(await capabilities.call(PublicKeyCredential)), immediateGet });
    }
  }, { simulate, immediateGet });
}

async function userWithPasskey(page) {
  await signUp(page, newEmail());
  await page.click("#btn-setup-passkey");
  await page.waitForSelector("#screen-home:not([hidden]) #passkeys .passkey");
  await signOut(page);
}

async function clickSignIn(page) {
  await page.click("#btn-passkey-signin");
}

test("as Chromium ships: immediateGet is reported but the request is refused, so the caller's fallback (the prompt) signs in", async () => {
  const browser = await launch();
  try {
    const { context, page } = await pageWithAuthenticator(browser);
    await instrument(context);
    await userWithPasskey(page);
    await page.reload();
    const capabilities = await page.evaluate(() => PublicKeyCredential.getClientCapabilities());
    const refused = await page.evaluate(async () => {
      try { await navigator.credentials.get({ mediation: "immediate", publicKey: { challenge: new Uint8Array(16) } }); return null; }
      catch (error) { return error.name; }
    });
    await clickSignIn(page);
    await page.waitForSelector("#screen-home:not([hidden])");
    assert.equal((await kratosWhoami(context)).status, 200, "a Kratos session was minted");
    const gets = await page.evaluate(() => window.__gets);
    console.log(`Chromium: immediateGet=${capabilities.immediateGet}, mediation "immediate" -> ${refused}; gets: ${gets}`);
    if (capabilities.immediateGet === true && refused === "TypeError") {
      assert.deepEqual(gets.slice(-2), ["immediate", "modal"], "tried immediate, then fell back to the prompt");
    }
    await context.close();
  } finally {
    await browser.close();
  }
});

test("immediate (simulated in the page): with a passkey the prompt signs in; without, 'no passkey' at once and the password form", async () => {
  const browser = await launch();
  try {
    // With a passkey on this device.
    const { context, page } = await pageWithAuthenticator(browser);
    await instrument(context, { simulate: true, immediateGet: true });
    await userWithPasskey(page);
    await page.evaluate(() => { window.__hasPasskey = true; });
    await clickSignIn(page);
    await page.waitForSelector("#screen-home:not([hidden])");
    assert.equal((await kratosWhoami(context)).status, 200, "a Kratos session was minted");
    assert.deepEqual(await page.evaluate(() => window.__gets.slice(-1)), ["immediate"]);
    await context.close();

    // Without one.
    const fresh = await pageWithAuthenticator(browser);
    await instrument(fresh.context, { simulate: true, immediateGet: true });
    await fresh.page.goto(`${BASE}/`);
    await fresh.page.waitForSelector("#screen-signin:not([hidden])");
    const started = Date.now();
    await clickSignIn(fresh.page);
    await fresh.page.waitForSelector("#form-signin[data-no-passkey=true]");
    const elapsed = Date.now() - started;
    assert.match(await message(fresh.page), /No passkey for this site on this device/);
    assert.equal(await fresh.page.isVisible("#signin-password"), true, "the password form is shown");
    assert.equal(await fresh.page.evaluate(() => document.activeElement?.id), "signin-email");
    assert.deepEqual(await fresh.page.evaluate(() => window.__gets), ["immediate"], "no modal prompt followed");
    assert.equal((await kratosWhoami(fresh.context)).status, 401);
    console.log(`no passkey: the password form after ${elapsed} ms`);
    assert.ok(elapsed < 5000, `${elapsed} ms`);
    await screenshot(fresh.page, "immediate-no-passkey");
    await fresh.context.close();
  } finally {
    await browser.close();
  }
});

test("unsupported (getClientCapabilities overridden): fallback 'modal' prompts, fallback 'return' returns without a request", async () => {
  const browser = await launch();
  try {
    const { context, page } = await pageWithAuthenticator(browser);
    await instrument(context, { immediateGet: false });
    await userWithPasskey(page);
    const returned = await page.evaluate(async () => {
      const { signIn } = await import("/passkeys/client.js");
      return signIn({ fallback: "return" });
    });
    assert.deepEqual(returned, { status: "unsupported" });
    assert.deepEqual(await page.evaluate(() => window.__gets), [], "no WebAuthn request was made");
    const prompted = await page.evaluate(async () => {
      const { signIn } = await import("/passkeys/client.js");
      const result = await signIn({ fallback: "modal" });
      return { status: result.status, identity: Boolean(result.login?.identityId) };
    });
    assert.deepEqual(prompted, { status: "signed_in", identity: true });
    assert.deepEqual(await page.evaluate(() => window.__gets), ["modal"]);
    assert.equal((await kratosWhoami(context)).status, 200);
    await context.close();
  } finally {
    await browser.close();
  }
});
