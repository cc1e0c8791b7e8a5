// Passkey autofill: on the sign-in screen the page starts a conditional
// request; picking the passkey from the email field's suggestions signs in.
// (Chromium's virtual authenticator picks it at once.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { kratosWhoami, launch, message, newEmail, pageWithAuthenticator, screenshot, signUp } from "./helpers.js";

test("autofill on the email field signs in with the passkey", async () => {
  const browser = await launch();
  try {
    const { context, page } = await pageWithAuthenticator(browser, { autofill: true });
    const email = newEmail();
    await signUp(page, email);
    assert.equal(await page.getAttribute("#signin-email", "autocomplete"), "username webauthn");
    await page.click("#btn-setup-passkey");
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");
    await page.click("#btn-signout");
    // Signing out shows the sign-in screen, whose autofill request completes.
    await page.waitForFunction(() => /Signed in with a passkey/.test(document.querySelector("#message").textContent));
    await page.waitForSelector("#screen-home:not([hidden])");
    assert.equal(await page.textContent("#home-email"), email);
    assert.match(await message(page), /Signed in with a passkey/);
    assert.deepEqual(await kratosWhoami(context), { status: 200, email });
    await screenshot(page, "5-signed-in-through-autofill");
  } finally {
    await browser.close();
  }
});
