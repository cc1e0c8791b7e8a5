// The WebAuthn `prf` extension in real Chromium (virtual authenticator with
// `hasPrf: true`): the list says which passkeys can do it, outputs are
// stable per salt, the demo's note is encrypted with a key derived from
// them, and no request body the page sends the service contains an output.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { BASE, launch, newEmail, pageWithAuthenticator, screenshot, signUp } from "./helpers.js";

// Every request body the page sends to the service.
function recordBodies(context) {
  const bodies = [];
  context.on("request", (request) => {
    if (request.url().startsWith(BASE) && request.postData()) {
      bodies.push({ url: request.url(), body: request.postData() });
    }
  });
  return bodies;
}

// A passkey sign-in through the client package, with PRF over `salt`;
// the output as base64url (it stays in the page's JavaScript otherwise).
async function prfSignIn(page, salt) {
  return page.evaluate(async (salt) => {
    const { loginWithPasskey, toBase64url } = await import("/passkeys/client.js");
    const login = await loginWithPasskey({ prf: { eval: { first: salt } } });
    return login?.prf?.results?.first ? toBase64url(login.prf.results.first) : null;
  }, salt);
}

const forms = (b64url) => {
  const bytes = Buffer.from(b64url, "base64url");
  return [b64url, bytes.toString("base64"), bytes.toString("hex")];
};

test("PRF: the list says so, outputs follow the salt, the note decrypts after a reload, no output reaches the service", async () => {
  const browser = await launch();
  try {
    const { context, page } = await pageWithAuthenticator(browser, { prf: true });
    const bodies = recordBodies(context);
    await signUp(page, newEmail());
    await page.click("#btn-setup-passkey");
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys .passkey");
    assert.equal(await page.isVisible("#passkeys .passkey .badge.prf"), true, "the list says the passkey can do PRF");
    const listed = await page.evaluate(async () => (await (await import("/passkeys/client.js")).listPasskeys()).passkeys);
    assert.equal(listed[0].prf_enabled, true);

    const a1 = await prfSignIn(page, "salt a");
    const a2 = await prfSignIn(page, "salt a");
    const b = await prfSignIn(page, "salt b");
    assert.ok(a1 && b, "outputs came back");
    assert.equal(Buffer.from(a1, "base64url").length, 32);
    assert.equal(a1, a2, "the same salt gives the same output");
    assert.notEqual(a1, b, "another salt gives another output");
    // The note's own output, to look for it in what was sent.
    const noteOutput = await prfSignIn(page, "kratos-passkeys demo note v1");

    await page.fill("#note-text", "meet at the old mill at noon");
    await page.click("#btn-note-encrypt");
    await page.waitForFunction(() => document.querySelector("#message")?.textContent.includes("Note encrypted"));
    const cipher = await page.textContent("#note-cipher");
    assert.ok(cipher.length > 20 && !cipher.includes("mill"), cipher);
    await page.reload();
    await page.waitForSelector("#screen-home:not([hidden])");
    assert.equal(await page.inputValue("#note-text"), "");
    await page.click("#btn-note-decrypt");
    await page.waitForFunction(() => document.querySelector("#note-text").value.length > 0);
    assert.equal(await page.inputValue("#note-text"), "meet at the old mill at noon");
    await screenshot(page, "prf-note-decrypted");

    const sent = bodies.map((b) => b.body).join("\n");
    assert.ok(bodies.some((b) => b.url.endsWith("/passkeys/login/options") && b.body.includes("\"prf\"")),
      "the capture saw the PRF salts go out");
    assert.ok(bodies.filter((b) => b.url.endsWith("/passkeys/login/verify")).length >= 6, "the capture saw every login");
    for (const output of [a1, b, noteOutput]) {
      for (const form of forms(output)) assert.ok(!sent.includes(form), `a request body carries a PRF output (${form})`);
    }
    // The service's own log, when the runner says where it is.
    if (process.env.E2E_SERVICE_LOG) {
      const log = readFileSync(process.env.E2E_SERVICE_LOG, "utf8");
      for (const output of [a1, b, noteOutput]) {
        for (const form of forms(output)) assert.ok(!log.includes(form), "the service's log carries a PRF output");
      }
    }
    await context.close();
  } finally {
    await browser.close();
  }
});
