// Rename and remove; a removed passkey can no longer sign in.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  launch, message, newEmail, pageWithAuthenticator, passkeyNames, screenshot, signOut, signUp,
} from "./helpers.js";

test("rename, remove, and a removed passkey cannot sign in", async () => {
  const browser = await launch();
  try {
    const { page } = await pageWithAuthenticator(browser);
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

    await signOut(page);
    // The authenticator still holds the credential; the service refuses it.
    await page.click("#btn-passkey-signin");
    await page.waitForFunction(() => /no longer registered/.test(document.querySelector("#message").textContent));
    assert.match(await message(page), /This passkey is no longer registered here/);
    assert.equal(await page.isVisible("#screen-signin"), true, "still on the sign-in screen");
    await screenshot(page, "3-removed-passkey-refused");
  } finally {
    await browser.close();
  }
});
