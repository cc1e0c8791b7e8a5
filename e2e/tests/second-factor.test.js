// A person with TOTP on a Kratos that asks for it (`highest_available`):
// the passkey login through the demo page hands out Kratos's aal1 session,
// the page follows Kratos's aal2 login, the person enters the code, and
// lands back signed in at aal2, with no other session left behind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  EXISTING_BASE, EXISTING_KRATOS, EXISTING_KRATOS_ADMIN, PASSWORD, launch, message, newEmail,
  pageWithAuthenticator, passkeyNames, screenshot, signOut, signUp,
} from "./helpers.js";

// RFC 6238 with Kratos's parameters (SHA-1, 6 digits, 30 s).
function totp(secret) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const step = Buffer.alloc(8);
  step.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30000)));
  const digest = createHmac("sha1", key).update(step).digest();
  const offset = digest[19] & 0x0f;
  return String((digest.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

async function api(url, { method = "GET", token, body } = {}) {
  const response = await fetch(url, {
    method,
    headers: {
      Accept: "application/json",
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...(token ? { "X-Session-Token": token } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : null };
}

// What the person did in their account settings: TOTP, through Kratos's
// own settings flow (an API session, signed out afterwards).
async function setUpTotp(email) {
  const flow = await api(`${EXISTING_KRATOS}/self-service/login/api`);
  const login = await api(`${EXISTING_KRATOS}/self-service/login?flow=${flow.data.id}`, {
    method: "POST", body: { method: "password", identifier: email, password: PASSWORD },
  });
  assert.equal(login.status, 200, JSON.stringify(login.data));
  const token = login.data.session_token;
  const settings = await api(`${EXISTING_KRATOS}/self-service/settings/api`, { token });
  const secret = settings.data.ui.nodes.find((n) => n.attributes?.id === "totp_secret_key").attributes.text.text;
  const done = await api(`${EXISTING_KRATOS}/self-service/settings?flow=${settings.data.id}`, {
    method: "POST", token, body: { method: "totp", totp_code: totp(secret) },
  });
  assert.equal(done.status, 200, JSON.stringify(done.data));
  const logout = await api(`${EXISTING_KRATOS}/self-service/logout/api`, {
    method: "DELETE", body: { session_token: token },
  });
  assert.equal(logout.status, 204);
  return { identityId: login.data.session.identity.id, secret };
}

test("passkey, then Kratos's second factor, lands signed in at aal2", async () => {
  const browser = await launch();
  try {
    const { context, page } = await pageWithAuthenticator(browser);
    const email = newEmail();
    await signUp(page, email, EXISTING_BASE);
    await page.click("#btn-setup-passkey");
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");
    assert.equal((await passkeyNames(page)).length, 1);
    await signOut(page);

    const { identityId, secret } = await setUpTotp(email);

    await page.click("#btn-passkey-signin");
    // Kratos's aal2 login, rendered by the demo page it returns to.
    await page.waitForSelector("#screen-aal2:not([hidden])");
    assert.ok(page.url().startsWith(EXISTING_BASE), page.url());
    await screenshot(page, "7-second-factor-after-passkey");
    await page.fill("#aal2-code", totp(secret));
    await page.click("#form-aal2 button[type=submit]");
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");
    assert.match(await message(page), /Signed in/);
    await screenshot(page, "8-signed-in-at-aal2");

    const cookies = await context.cookies(EXISTING_KRATOS);
    const whoami = await fetch(`${EXISTING_KRATOS}/sessions/whoami`, {
      headers: { Cookie: cookies.map((c) => `${c.name}=${c.value}`).join("; ") },
    });
    const session = await whoami.json();
    assert.equal(whoami.status, 200, JSON.stringify(session));
    assert.equal(session.authenticator_assurance_level, "aal2");
    assert.deepEqual(session.authentication_methods.map((m) => m.method), ["code_recovery", "totp"]);

    // The only active session is the one the browser holds.
    const sessions = await api(`${EXISTING_KRATOS_ADMIN}/admin/identities/${identityId}/sessions?active=true`);
    assert.deepEqual(sessions.data.map((s) => s.id), [session.id]);
  } finally {
    await browser.close();
  }
});
