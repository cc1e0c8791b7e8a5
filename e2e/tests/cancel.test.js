// A prompt that fails (user verification fails, which the browser reports
// like a cancelled prompt) leaves the page usable with a clear message.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launch, message, newEmail, pageWithAuthenticator, passkeyNames, screenshot, signUp } from "./helpers.js";

test("a cancelled prompt is a quiet, clear outcome", async () => {
  const browser = await launch();
  try {
    const { page } = await pageWithAuthenticator(browser, { verifies: false });
    const errors = [];
    page.on("pageerror", (error) => errors.push(error));
    await signUp(page, newEmail());
    await page.click("#btn-setup-passkey");
    await page.waitForSelector("#screen-home:not([hidden])");
    assert.match(await message(page), /passkey prompt was closed before it finished/);
    assert.deepEqual(await passkeyNames(page), []);
    assert.equal(await page.isEnabled("#btn-add-passkey"), true, "the page is still usable");
    assert.deepEqual(errors, [], "no uncaught errors");
    await screenshot(page, "4-cancelled-prompt");
  } finally {
    await browser.close();
  }
});
