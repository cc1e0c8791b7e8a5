// The seed scenario: register with a password, add a passkey right away
// (no 403), sign out, sign in with the passkey, and Kratos accepts the session.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  credentials, kratosWhoami, launch, message, newEmail, pageWithAuthenticator, passkeyNames,
  screenshot, signOut, signUp,
} from "./helpers.js";

test("register, add a passkey at once, sign out, sign in with it", async () => {
  const browser = await launch();
  try {
    const { context, page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
    const email = newEmail();
    await signUp(page, email);
    assert.match(await page.textContent("#screen-welcome"), /Would you like to set up a passkey for easier login\?/);

    await page.click("#btn-setup-passkey");
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");
    assert.match(await message(page), /Passkey added/);
    assert.equal((await passkeyNames(page)).length, 1);
    assert.equal((await credentials(cdp, authenticatorId)).length, 1, "the authenticator holds one passkey");
    // Chromium's virtual authenticator is in no AAGUID list: the neutral
    // name and key icon, which the page loads from the service.
    assert.deepEqual(await passkeyNames(page), ["Passkey"]);
    assert.match(await page.textContent("#passkeys"), /Unknown provider/);
    await page.waitForFunction(() => {
      const img = document.querySelector("#passkeys .passkey-icon img");
      return img?.complete && img.naturalWidth > 0
        && /^\/passkeys\/authenticators\/[0-9a-f-]{36}\/icon\/light$/.test(new URL(img.src).pathname);
    }, null, { timeout: 10000 });

    await signOut(page);
    assert.equal((await kratosWhoami(context)).status, 401, "signed out in Kratos too");

    await page.click("#btn-passkey-signin");
    await page.waitForSelector("#screen-home:not([hidden])");
    assert.equal(await page.textContent("#home-email"), email);
    assert.match(await message(page), /Signed in with a passkey/);
    const whoami = await kratosWhoami(context);
    assert.deepEqual(whoami, { status: 200, email }, "Kratos accepts the browser's session");
    assert.match(await page.textContent("#passkeys"), /Last used (?!never)/);
    await screenshot(page, "1-seed-signed-in-with-passkey");
  } finally {
    await browser.close();
  }
});
