// The WebAuthn Signal API and the passkey upgrade, through the demo page:
// what the client tells the passkey provider (Chromium's own signal
// functions, wrapped to record each call), and that upgradeToPasskey() is a
// quiet no-op where the browser cannot create a passkey conditionally.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ADMIN, KRATOS, KRATOS_ADMIN, PASSWORD, base64url, credentials, identityId, launch, message,
  newEmail, pageWithAuthenticator, passkeyNames, recordSignals, screenshot, signOut, signUp, signals,
} from "./helpers.js";

const RP_ID = "localhost";

async function addPasskeyFromWelcome(page) {
  await page.click("#btn-setup-passkey");
  await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");
}

/** The one credential the authenticator holds: [credential id, user handle] in base64url. */
async function onlyCredential(cdp, authenticatorId) {
  const held = await credentials(cdp, authenticatorId);
  assert.equal(held.length, 1, "the authenticator holds one passkey");
  return [base64url(held[0].credentialId), base64url(held[0].userHandle)];
}

/** Kratos's browser settings flow, from the page: a new email (the name the passkeys carry). */
async function changeEmail(page, email) {
  const status = await page.evaluate(async ({ kratos, email }) => {
    const json = { Accept: "application/json", "Content-Type": "application/json" };
    const flow = await (await fetch(`${kratos}/self-service/settings/browser`, { credentials: "include", headers: json })).json();
    const csrf = flow.ui.nodes.find((n) => n.attributes?.name === "csrf_token").attributes.value;
    const answer = await fetch(`${kratos}/self-service/settings?flow=${flow.id}`, {
      method: "POST", credentials: "include", headers: json,
      body: JSON.stringify({ method: "profile", traits: { email }, csrf_token: csrf }),
    });
    return answer.status;
  }, { kratos: KRATOS, email });
  assert.equal(status, 200, "Kratos saved the new email");
}

test("the list signals the accepted passkeys and the person's name, again only when it changes", async () => {
  const browser = await launch();
  try {
    const { context, page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
    await recordSignals(context);
    const email = newEmail();
    await signUp(page, email);
    await addPasskeyFromWelcome(page);
    const [credentialId, userId] = await onlyCredential(cdp, authenticatorId);

    await page.waitForFunction(() => window.__signals.some((s) => s.name === "signalCurrentUserDetails"));
    assert.deepEqual((await signals(page, "signalAllAcceptedCredentials")).at(-1), {
      rpId: RP_ID, userId, allAcceptedCredentialIds: [credentialId],
    });
    assert.deepEqual(await signals(page, "signalCurrentUserDetails"), [
      { rpId: RP_ID, userId, name: email, displayName: email },
    ]);

    // The next visit reads the list again: the accepted credentials are
    // said again, the unchanged name is not.
    await page.reload();
    await page.waitForSelector("#screen-home:not([hidden]) #passkeys li");
    await page.waitForFunction(() => window.__signals.some((s) => s.name === "signalAllAcceptedCredentials"));
    assert.deepEqual(await signals(page, "signalAllAcceptedCredentials"), [
      { rpId: RP_ID, userId, allAcceptedCredentialIds: [credentialId] },
    ]);
    assert.deepEqual(await signals(page, "signalCurrentUserDetails"), []);

    // A new email in Kratos's settings reaches the service (its
    // after-settings hook); the next list read tells the password manager.
    const renamed = newEmail();
    await changeEmail(page, renamed);
    await page.reload();
    await page.waitForFunction(() => window.__signals.some((s) => s.name === "signalCurrentUserDetails"));
    assert.deepEqual(await signals(page, "signalCurrentUserDetails"), [
      { rpId: RP_ID, userId, name: renamed, displayName: renamed },
    ]);
    assert.equal(await page.textContent("#home-email"), renamed);
  } finally {
    await browser.close();
  }
});

test("removing a passkey signals the passkeys that remain", async () => {
  const browser = await launch();
  try {
    const { context, page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
    await recordSignals(context);
    await signUp(page, newEmail());
    await addPasskeyFromWelcome(page);
    const [first, userId] = await onlyCredential(cdp, authenticatorId);

    // A second device: another authenticator, the first one put away.
    await cdp.send("WebAuthn.removeVirtualAuthenticator", { authenticatorId });
    const second = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true,
        isUserVerified: true, automaticPresenceSimulation: true,
      },
    });
    await page.click("#btn-add-passkey");
    await page.waitForFunction(() => document.querySelectorAll("#passkeys li").length === 2);
    const [kept] = await onlyCredential(cdp, second.authenticatorId);
    await page.waitForFunction((n) => window.__signals.filter((s) => s.name === "signalAllAcceptedCredentials")
      .some((s) => s.details.allAcceptedCredentialIds.length === n), 2);
    assert.deepEqual(
      (await signals(page, "signalAllAcceptedCredentials")).at(-1).allAcceptedCredentialIds.toSorted(),
      [first, kept].toSorted(),
    );

    // The list is newest first: the first passkey is the second row.
    const before = (await signals(page, "signalAllAcceptedCredentials")).length;
    const requests = [];
    page.on("request", (r) => { if (new URL(r.url()).pathname.startsWith("/passkeys")) requests.push(`${r.method()} ${new URL(r.url()).pathname}`); });
    await page.click("#passkeys li:nth-child(2) .remove-btn");
    await page.waitForFunction(() => document.querySelectorAll("#passkeys li").length === 1);
    assert.match(await message(page), /Removed/);
    await page.waitForFunction((n) => window.__signals.filter((s) => s.name === "signalAllAcceptedCredentials").length > n, before);
    const after = (await signals(page, "signalAllAcceptedCredentials")).slice(before);
    assert.ok(after.length >= 1);
    for (const details of after) {
      assert.deepEqual(details, { rpId: RP_ID, userId, allAcceptedCredentialIds: [kept] });
    }
    assert.match(requests[0], /^DELETE \/passkeys\/[0-9a-f-]{36}$/);
    assert.equal(requests[1], "GET /passkeys", "the client reads the list again right after the removal");
    assert.equal((await credentials(cdp, second.authenticatorId)).length, 1, "the remaining passkey stays on its device");
  } finally {
    await browser.close();
  }
});

test("a login with a passkey the service no longer has signals it unknown; another refusal does not", async () => {
  const browser = await launch();
  try {
    const { context, page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
    await recordSignals(context);
    await signUp(page, newEmail());
    await addPasskeyFromWelcome(page);
    const [credentialId] = await onlyCredential(cdp, authenticatorId);
    const identity = await identityId(context);
    await signOut(page);

    // Refused for another reason: the account is disabled in Kratos.
    const patch = async (state) => {
      const response = await fetch(`${KRATOS_ADMIN}/admin/identities/${identity}`, {
        method: "PATCH", headers: { "Content-Type": "application/json" },
        body: JSON.stringify([{ op: "replace", path: "/state", value: state }]),
      });
      assert.equal(response.status, 200, `identity ${state}`);
    };
    await patch("inactive");
    await page.click("#btn-passkey-signin");
    await page.waitForFunction(() => /account is disabled/.test(document.querySelector("#message").textContent));
    assert.deepEqual(await signals(page, "signalUnknownCredential"), []);
    assert.equal((await credentials(cdp, authenticatorId)).length, 1);
    await patch("active");

    // Support revokes the passkey; the device still holds it.
    const revoked = await fetch(`${ADMIN}/admin/identities/${identity}/passkeys`, { method: "DELETE" });
    assert.equal(revoked.status, 200);
    assert.deepEqual(await revoked.json(), { deleted: 1 });
    await page.click("#btn-passkey-signin");
    await page.waitForFunction(() => /no longer registered/.test(document.querySelector("#message").textContent));
    await page.waitForFunction(() => window.__signals.some((s) => s.name === "signalUnknownCredential"));
    assert.deepEqual(await signals(page, "signalUnknownCredential"), [{ rpId: RP_ID, credentialId }]);
    assert.match(await message(page), /This passkey is no longer registered here/);
    assert.equal(await page.isVisible("#screen-signin"), true, "still on the sign-in screen");
    // Chromium's authenticator takes the hint and forgets the passkey.
    for (let i = 0; i < 50 && (await credentials(cdp, authenticatorId)).length > 0; i++) await sleep(100);
    assert.deepEqual(await credentials(cdp, authenticatorId), [], "the device forgot the unknown passkey");
    await screenshot(page, "9-unknown-passkey-signalled");
  } finally {
    await browser.close();
  }
});

/** Every request the page makes to /passkeys/registration/* (with its answer's status, once answered). */
function registrationRequests(page) {
  const seen = [];
  page.on("request", (request) => {
    const path = new URL(request.url()).pathname;
    if (path.startsWith("/passkeys/registration/")) seen.push({ request, path, body: request.postData() });
  });
  page.on("response", (response) => {
    const entry = seen.find((s) => s.request === response.request());
    if (entry) entry.status = response.status();
  });
  return seen;
}

for (const [label, setUp] of [
  ["getClientCapabilities says no conditionalCreate", async () => {}],
  ["getClientCapabilities is absent", async (context) => {
    await context.addInitScript(() => { delete PublicKeyCredential.getClientCapabilities; });
  }],
]) {
  test(`upgradeToPasskey is a quiet no-op where ${label}`, async () => {
    const browser = await launch();
    try {
      const { context, page, cdp, authenticatorId } = await pageWithAuthenticator(browser);
      await setUp(context);
      const errors = [];
      page.on("pageerror", (error) => errors.push(error));
      const registrations = registrationRequests(page);
      const upgrade = () => page.evaluate(async () => (await import("/passkeys/client.js")).upgradeToPasskey());

      // The demo asks right after the password sign-up...
      const email = newEmail();
      await signUp(page, email);
      assert.equal(await upgrade(), null);
      assert.equal(await page.isVisible("#screen-welcome"), true, "still the welcome screen");
      // ...and right after a password sign-in.
      await page.click("#btn-skip");
      await page.waitForSelector("#screen-home:not([hidden])");
      await signOut(page);
      await page.fill("#signin-email", email);
      await page.fill("#signin-password", PASSWORD);
      await page.click("#form-signin button[type=submit]");
      await page.waitForSelector("#screen-home:not([hidden])");
      assert.equal(await upgrade(), null);

      assert.deepEqual(registrations, [], "no request to /passkeys/registration/*");
      assert.deepEqual(await credentials(cdp, authenticatorId), [], "no passkey created");
      assert.deepEqual(await passkeyNames(page), []);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
}

test("where Chromium offers conditional creation, a pending upgrade never blocks Set up passkey", async () => {
  const browser = await launch();
  try {
    const { page, cdp, authenticatorId } = await pageWithAuthenticator(browser, { conditionalCreate: true });
    const errors = [];
    page.on("pageerror", (error) => errors.push(error));
    const registrations = registrationRequests(page);
    await signUp(page, newEmail());
    assert.equal(
      await page.evaluate(async () => (await import("/passkeys/client.js")).conditionalCreateSupported()),
      true, "this Chromium reports conditionalCreate",
    );
    // The demo started the upgrade: the service was asked for conditional
    // options. Headless Chromium has no password manager to act on it, so
    // the creation stays pending and makes no passkey. Waits for the
    // options' answer, not for a time that must be long enough.
    for (let i = 0; i < 200 && !registrations.some((r) => r.status !== undefined); i++) await sleep(50);
    assert.deepEqual(registrations.map((r) => [r.path, JSON.parse(r.body), r.status]), [
      ["/passkeys/registration/options", { mediation: "conditional" }, 200],
    ]);
    assert.deepEqual(await credentials(cdp, authenticatorId), []);

    // The person asks for a passkey: the pending upgrade gives way.
    await addPasskeyFromWelcome(page);
    assert.match(await message(page), /Passkey added/);
    assert.equal((await credentials(cdp, authenticatorId)).length, 1);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
});
