// upgradeToPasskey(): a passkey created quietly after a password sign-in,
// only where the browser says it can (getClientCapabilities().conditionalCreate),
// and never a dialog, a network call, an exception or a redirect otherwise.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { conditionalCreateSupported, createClient, upgradeToPasskey } from "../index.js";
import { REGISTRATION_OPTIONS, fakeRegistration, installBrowser, refusal } from "../testing/fake-browser.js";

let env;
afterEach(() => env?.restore());

const PASSKEY = { id: "p1", name: "Chromium", credential_id: "Y3JlZC0x", disabled: false };
const ROUTES = {
  "POST /passkeys/registration/options": { body: REGISTRATION_OPTIONS },
  "POST /passkeys/registration/verify": { status: 201, body: PASSKEY },
};

function assertUntouched() {
  assert.deepEqual(env.requests, [], "no network call");
  assert.deepEqual(env.creates, [], "no WebAuthn call");
  assert.deepEqual(env.assigned, [], "no navigation");
}

test("conditionalCreate false: null, quietly", async () => {
  env = installBrowser({ routes: ROUTES, capabilities: { conditionalCreate: false, conditionalGet: true } });
  assert.equal(await conditionalCreateSupported(), false);
  assert.equal(await upgradeToPasskey(), null);
  assertUntouched();
});

test("capabilities without conditionalCreate, or not even an object: null", async () => {
  for (const capabilities of [{}, { conditionalCreate: "yes" }, null]) {
    env = installBrowser({ routes: ROUTES });
    PublicKeyCredential.getClientCapabilities = async () => capabilities;
    assert.equal(await upgradeToPasskey(), null, JSON.stringify(capabilities));
    assertUntouched();
    env.restore();
  }
});

test("no getClientCapabilities (an older browser): null", async () => {
  env = installBrowser({ routes: ROUTES, capabilities: null });
  assert.equal(typeof PublicKeyCredential.getClientCapabilities, "undefined");
  assert.equal(await conditionalCreateSupported(), false);
  assert.equal(await upgradeToPasskey(), null);
  assertUntouched();
});

test("getClientCapabilities failing: null", async () => {
  env = installBrowser({ routes: ROUTES });
  PublicKeyCredential.getClientCapabilities = async () => { throw new Error("boom"); };
  assert.equal(await upgradeToPasskey(), null);
  PublicKeyCredential.getClientCapabilities = () => { throw new Error("sync boom"); };
  assert.equal(await upgradeToPasskey(), null);
  assertUntouched();
});

test("no WebAuthn at all: null", async () => {
  env = installBrowser({ routes: ROUTES });
  delete globalThis.PublicKeyCredential;
  assert.equal(await upgradeToPasskey(), null);
  env.restore();
  env = installBrowser({ routes: ROUTES });
  delete globalThis.navigator;
  assert.equal(await upgradeToPasskey(), null);
  assert.deepEqual(env.requests, []);
});

test("supported: options with mediation conditional, a conditional create, then verify", async () => {
  env = installBrowser({ routes: ROUTES, create: async () => fakeRegistration("cred-u") });
  assert.equal(await conditionalCreateSupported(), true);
  assert.deepEqual(await upgradeToPasskey(), PASSKEY);
  const [options, verify] = env.requests;
  assert.equal(options.method, "POST");
  assert.ok(options.url.endsWith("/passkeys/registration/options"));
  assert.deepEqual(options.body, { mediation: "conditional" });
  assert.equal(env.creates.length, 1);
  assert.equal(env.creates[0].mediation, "conditional");
  assert.ok(env.creates[0].publicKey.challenge instanceof ArrayBuffer);
  assert.ok(verify.url.endsWith("/passkeys/registration/verify"));
  assert.equal(verify.body.ceremony_id, "ceremony-r");
  assert.equal(verify.body.credential.id, "cred-u");
});

test("a name goes with the options and the verify", async () => {
  env = installBrowser({ routes: ROUTES });
  await createClient().upgradeToPasskey({ name: "Laptop" });
  assert.deepEqual(env.requests[0].body, { mediation: "conditional", name: "Laptop" });
  assert.equal(env.requests[1].body.name, "Laptop");
});

test("the password manager declines (NotAllowedError), or the browser fails otherwise: null, nothing verified", async () => {
  for (const name of ["NotAllowedError", "AbortError", "InvalidStateError", "SecurityError"]) {
    env = installBrowser({ routes: ROUTES, create: async () => { throw new DOMException("declined", name); } });
    assert.equal(await upgradeToPasskey(), null, name);
    assert.equal(env.requests.length, 1, `${name}: only the options`);
    assert.ok(env.debug.length > 0, "logged with console.debug");
    env.restore();
  }
  env = installBrowser({ routes: ROUTES, create: async () => null });
  assert.equal(await upgradeToPasskey(), null);
  assert.equal(env.requests.length, 1);
});

test("a stale session never leaves the page during an upgrade", async () => {
  const to = "http://kratos.test/self-service/login/browser?refresh=true";
  env = installBrowser({ routes: {
    "POST /passkeys/registration/options": refusal(403, "session_refresh_required", { redirect_browser_to: to }),
  } });
  // The default policy for every other call is to follow the redirect.
  assert.equal(await upgradeToPasskey(), null);
  assert.equal(await createClient({ onRefreshRequired: () => assert.fail("not called") }).upgradeToPasskey(), null);
  assert.deepEqual(env.assigned, []);
  assert.deepEqual(env.creates, []);
});

test("a second factor wanted, a refused verify, a malformed answer, an unreachable service: null", async () => {
  const cases = {
    aal2: { "POST /passkeys/registration/options": refusal(403, "session_aal2_required", { redirect_browser_to: "http://kratos.test/aal2" }) },
    verify: { ...ROUTES, "POST /passkeys/registration/verify": refusal(409, "credential_already_registered") },
    malformed: { "POST /passkeys/registration/options": { body: { unexpected: true } } },
    network: { "POST /passkeys/registration/options": new TypeError("Failed to fetch") },
    signed_out: { "POST /passkeys/registration/options": refusal(401, "session_required") },
  };
  for (const [name, routes] of Object.entries(cases)) {
    env = installBrowser({ routes });
    assert.equal(await upgradeToPasskey(), null, name);
    assert.deepEqual(env.assigned, [], name);
    env.restore();
  }
  env = undefined;
});

test("an upgrade aborts a pending autofill request", async () => {
  env = installBrowser({
    routes: { ...ROUTES, "POST /passkeys/login/options": { body: { ceremony_id: "l", publicKey: { challenge: "AA", rpId: "localhost" } } } },
    get: (options) => new Promise((_, reject) => options.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")))),
  });
  const client = createClient();
  const autofill = client.loginWithPasskey({ mediation: "conditional" });
  while (env.gets.length === 0) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(await client.upgradeToPasskey(), PASSKEY);
  assert.equal(await autofill, null, "the autofill request ended as cancelled");
});

// A conditional creation the password manager sits on stays pending, and
// the browser refuses any other WebAuthn call meanwhile: a prompt the person
// asks for ends it.
const pendingUntilAborted = (options) => new Promise((resolve, reject) => {
  if (options.mediation !== "conditional") return resolve(fakeRegistration("modal"));
  options.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
});

test("addPasskey ends a pending upgrade, then prompts", async () => {
  env = installBrowser({ routes: ROUTES, create: pendingUntilAborted });
  const client = createClient();
  const upgrade = client.upgradeToPasskey();
  while (env.creates.length === 0) await new Promise((r) => setTimeout(r, 1));
  assert.deepEqual(await client.addPasskey(), PASSKEY);
  assert.equal(await upgrade, null);
  assert.equal(env.creates.length, 2);
  assert.equal(env.creates[0].signal.aborted, true, "the conditional creation was aborted");
  assert.equal(env.requests.filter((r) => r.url.endsWith("/verify")).length, 1, "only the prompt's passkey is verified");
});

test("loginWithPasskey ends a pending upgrade too", async () => {
  env = installBrowser({
    routes: { ...ROUTES, "POST /passkeys/login/options": { body: { ceremony_id: "l", publicKey: { challenge: "AA", rpId: "localhost" } } },
              "POST /passkeys/login/verify": { body: { identity_id: "i1" } } },
    create: pendingUntilAborted,
  });
  const client = createClient();
  const upgrade = client.upgradeToPasskey();
  while (env.creates.length === 0) await new Promise((r) => setTimeout(r, 1));
  assert.equal((await client.loginWithPasskey()).identityId, "i1");
  assert.equal(await upgrade, null);
});

test("upgradeToPasskey takes a signal: aborted before, nothing is asked; aborted during, null", async () => {
  env = installBrowser({ routes: ROUTES, create: pendingUntilAborted });
  const before = new AbortController();
  before.abort();
  assert.equal(await upgradeToPasskey({ signal: before.signal }), null);
  assert.deepEqual(env.requests, []);
  const during = new AbortController();
  const upgrade = upgradeToPasskey({ signal: during.signal });
  while (env.creates.length === 0) await new Promise((r) => setTimeout(r, 1));
  during.abort();
  assert.equal(await upgrade, null);
  assert.equal(env.requests.length, 1, "only the options");
});
