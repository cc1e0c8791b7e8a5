// "Skip for now", then add a passkey once the session is no longer fresh:
// the page sends the person through Kratos's re-authentication and back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  BASE, PASSWORD, PRIVILEGED_MAX_AGE_MS, launch, message, newEmail, pageWithAuthenticator,
  passkeyNames, screenshot, signUp,
} from "./helpers.js";

test("skip, wait until the session is stale, re-authenticate, add the passkey", async () => {
  const browser = await launch();
  try {
    const { page } = await pageWithAuthenticator(browser);
    await signUp(page, newEmail());
    await page.click("#btn-skip");
    await page.waitForSelector("#screen-home:not([hidden])");
    assert.equal((await passkeyNames(page)).length, 0);
    assert.equal(await page.isHidden("#offer"), true, "no offer after Skip for now");

    await sleep(PRIVILEGED_MAX_AGE_MS + 1000);
    await page.click("#btn-add-passkey");
    // Kratos's refresh login, then back to the demo page.
    await page.waitForSelector("#screen-refresh:not([hidden])");
    assert.ok(page.url().startsWith(BASE), page.url());
    await page.fill("#refresh-password", PASSWORD);
    await page.click("#form-refresh button[type=submit]");
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");
    assert.match(await message(page), /Passkey added/);
    assert.equal((await passkeyNames(page)).length, 1);
    await screenshot(page, "2-added-after-reauthentication");
  } finally {
    await browser.close();
  }
});
