// Rename and remove; a removed passkey can no longer sign in: the page tells
// the passkey provider which passkeys remain (the Signal API), and Chromium's
// authenticator forgets the removed one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  credentials, kratosWhoami, launch, message, newEmail, pageWithAuthenticator, passkeyNames, screenshot,
  signOut, signUp,
} from "./helpers.js";

test("rename, remove, and a removed passkey cannot sign in", async () => {
  const browser = await launch();
  try {
    const { context, page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
    await signUp(page, newEmail());
    await page.click("#btn-setup-passkey");
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");

    await page.click("#passkeys .rename-btn");
    await page.fill("#passkeys .rename input", "Work laptop");
    await page.click("#passkeys .rename button[type=submit]");
    await page.waitForFunction(() => document.querySelector("#passkeys .passkey-name")?.textContent === "Work laptop");
    assert.deepEqual(await passkeyNames(page), ["Work laptop"]);

    await page.click("#passkeys .remove-btn");
    await page.waitForSelector("#no-passkeys:not([hidden])");
    assert.match(await message(page), /Removed "Work laptop"/);
    assert.deepEqual(await passkeyNames(page), []);

    // signalAllAcceptedCredentials without it: the authenticator drops it.
    for (let i = 0; i < 50 && (await credentials(cdp, authenticatorId)).length > 0; i++) await sleep(100);
    assert.deepEqual(await credentials(cdp, authenticatorId), [], "the authenticator forgot the removed passkey");

    await signOut(page);
    // Nothing left to offer: the prompt ends without a passkey. (A passkey
    // the device still holds is refused by the service: signals.test.js.)
    await page.click("#btn-passkey-signin");
    await page.waitForFunction(() => /prompt was closed/.test(document.querySelector("#message").textContent));
    assert.equal(await page.isVisible("#screen-signin"), true, "still on the sign-in screen");
    assert.equal((await kratosWhoami(context)).status, 401, "not signed in");
    await screenshot(page, "3-removed-passkey-gone");
  } finally {
    await browser.close();
  }
});
