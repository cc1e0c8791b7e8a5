// PRF in the client: salts go to the service as base64url, the browser gets
// them as bytes, the outputs come back to the application and are stripped
// from every credential sent to the service.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createClient, prfSalt, toBase64url, withoutPrfOutputs } from "../index.js";
import { LOGIN_OPTIONS, REGISTRATION_OPTIONS, bytes, fakeAssertion, fakeRegistration, installBrowser } from "../testing/fake-browser.js";

let env;
afterEach(() => env?.restore());

const OUTPUT = new Uint8Array(32).fill(7).buffer;
const withPrfResults = (credential, prf) => ({ ...credential, getClientExtensionResults: () => ({ prf }) });
const PASSKEY = { id: "p1", name: "Laptop", prf_enabled: true };

test("salts: text as UTF-8, bytes as they are, anything else a TypeError", () => {
  assert.equal(prfSalt("abc"), "YWJj");
  assert.equal(prfSalt(new Uint8Array([1, 2, 3])), "AQID");
  assert.equal(prfSalt(new Uint8Array([1, 2, 3]).buffer), "AQID");
  assert.throws(() => prfSalt(42), TypeError);
});

test("withoutPrfOutputs removes only prf.results", () => {
  const json = { id: "x", clientExtensionResults: { credProps: { rk: true }, prf: { enabled: true, results: { first: "AAAA" } } } };
  assert.deepEqual(withoutPrfOutputs(json), { id: "x", clientExtensionResults: { credProps: { rk: true }, prf: { enabled: true } } });
  assert.equal(json.clientExtensionResults.prf.results.first, "AAAA", "the input is left alone");
  const plain = { id: "y", clientExtensionResults: {} };
  assert.equal(withoutPrfOutputs(plain), plain);
});

test("loginWithPasskey({prf}): salts to the service, bytes to the browser, outputs to the caller and never to the service", async () => {
  const options = structuredClone(LOGIN_OPTIONS);
  options.publicKey.extensions = {
    prf: { eval: { first: "YWJj" }, evalByCredential: { "Y3JlZC0x": { first: "AQID" } } },
  };
  const assertion = fakeAssertion();
  // A browser's toJSON() carries the outputs (base64url).
  assertion.toJSON = () => ({ id: "cred-1", rawId: "Y3JlZC0x", type: "public-key", response: {},
    clientExtensionResults: { prf: { results: { first: toBase64url(OUTPUT) } } } });
  env = installBrowser({
    routes: {
      "POST /passkeys/login/options": { body: options },
      "POST /passkeys/login/verify": { body: { identity_id: "i1" } },
    },
    get: async () => withPrfResults(assertion, { results: { first: OUTPUT } }),
  });
  const result = await createClient().loginWithPasskey({ identifier: "ada@example.com", prf: { eval: { first: "abc" }, byCredential: true } });
  assert.deepEqual(env.requests[0].body, { identifier: "ada@example.com", prf: { eval: { first: "YWJj" }, by_credential: true } });
  const prf = env.gets[0].publicKey.extensions.prf;
  assert.deepEqual(new Uint8Array(prf.eval.first), new Uint8Array([97, 98, 99]));
  assert.deepEqual(new Uint8Array(prf.evalByCredential["Y3JlZC0x"].first), new Uint8Array([1, 2, 3]));
  assert.equal(result.identityId, "i1");
  assert.deepEqual(new Uint8Array(result.prf.results.first), new Uint8Array(OUTPUT));
  const sent = JSON.stringify(env.requests[1].body);
  assert.ok(!sent.includes(toBase64url(OUTPUT)), sent);
  assert.deepEqual(env.requests[1].body.credential.clientExtensionResults, { prf: {} });
});

test("without prf nothing about it is sent, and the result has no prf", async () => {
  env = installBrowser({
    routes: {
      "POST /passkeys/login/options": { body: LOGIN_OPTIONS },
      "POST /passkeys/login/verify": { body: { identity_id: "i1" } },
    },
  });
  const result = await createClient().loginWithPasskey();
  assert.deepEqual(env.requests[0].body, {});
  assert.equal("prf" in result, false);
  assert.equal(env.gets[0].publicKey.extensions, undefined);
});

test("addPasskey({prf}): the service's prf request goes to create(), the app's eval too; the result says enabled and has the outputs", async () => {
  const options = structuredClone(REGISTRATION_OPTIONS);
  options.publicKey.extensions = { credProps: true, prf: {} };
  env = installBrowser({
    routes: {
      "POST /passkeys/registration/options": { body: options },
      "POST /passkeys/registration/verify": { status: 201, body: PASSKEY },
    },
    create: async () => withPrfResults(fakeRegistration(), { enabled: true, results: { first: OUTPUT } }),
  });
  const passkey = await createClient().addPasskey({ prf: { eval: { first: "note" } } });
  const extensions = env.creates[0].publicKey.extensions;
  assert.equal(extensions.credProps, true);
  assert.deepEqual(new Uint8Array(extensions.prf.eval.first), new TextEncoder().encode("note"));
  assert.equal(passkey.prf.enabled, true);
  assert.deepEqual(new Uint8Array(passkey.prf.results.first), new Uint8Array(OUTPUT));
  assert.equal(passkey.name, "Laptop");
  assert.deepEqual(env.requests[1].body.credential.clientExtensionResults, { prf: { enabled: true } });
  // Without prf the answer is the service's, unchanged.
  env.restore();
  env = installBrowser({
    routes: {
      "POST /passkeys/registration/options": { body: options },
      "POST /passkeys/registration/verify": { status: 201, body: PASSKEY },
    },
  });
  assert.deepEqual(await createClient().addPasskey(), PASSKEY);
  assert.deepEqual(env.creates[0].publicKey.extensions.prf, {});
});

// --- signIn ---------------------------------------------------------------

const LOGIN_ROUTES = {
  "POST /passkeys/login/options": { body: LOGIN_OPTIONS },
  "POST /passkeys/login/verify": { body: { identity_id: "i1" } },
};
const rejecting = (name) => async () => { throw new DOMException("no", name); };

test("signIn immediate: a passkey here signs in with mediation immediate", async () => {
  env = installBrowser({ routes: LOGIN_ROUTES, capabilities: { immediateGet: true } });
  const result = await createClient().signIn();
  assert.equal(result.status, "signed_in");
  assert.equal(result.login.identityId, "i1");
  assert.deepEqual(env.gets.map((g) => g.mediation), ["immediate"]);
});

test("signIn immediate: NotAllowedError resolves to no_passkey, no prompt follows", async () => {
  env = installBrowser({ routes: LOGIN_ROUTES, capabilities: { immediateGet: true }, get: rejecting("NotAllowedError") });
  assert.deepEqual(await createClient().signIn({ fallback: "modal" }), { status: "no_passkey" });
  assert.equal(env.gets.length, 1);
  assert.equal(env.requests.length, 1, "no verify");
});

test("signIn unsupported: fallback return makes no request; fallback modal prompts", async () => {
  for (const capabilities of [{ immediateGet: false }, {}, null]) {
    env = installBrowser({ routes: LOGIN_ROUTES, capabilities });
    assert.deepEqual(await createClient().signIn({ fallback: "return" }), { status: "unsupported" });
    assert.deepEqual(env.requests, []);
    const prompted = await createClient().signIn();
    assert.equal(prompted.status, "signed_in");
    assert.deepEqual(env.gets.map((g) => g.mediation), [undefined]);
    env.restore();
  }
  env = null;
});

test("signIn: a browser that says immediateGet but refuses the enum (TypeError) takes the fallback", async () => {
  let calls = 0;
  const get = async (options) => {
    calls += 1;
    if (options.mediation === "immediate") throw new TypeError("not a valid enum value");
    return fakeAssertion();
  };
  env = installBrowser({ routes: LOGIN_ROUTES, capabilities: { immediateGet: true }, get });
  assert.deepEqual(await createClient().signIn({ fallback: "return" }), { status: "unsupported" });
  const prompted = await createClient().signIn({ fallback: "modal" });
  assert.equal(prompted.status, "signed_in");
  assert.equal(calls, 3);
});

test("signIn: a modal prompt closed is cancelled; another browser failure rejects", async () => {
  env = installBrowser({ routes: LOGIN_ROUTES, capabilities: {}, get: rejecting("NotAllowedError") });
  assert.deepEqual(await createClient().signIn(), { status: "cancelled" });
  env.restore();
  env = installBrowser({ routes: LOGIN_ROUTES, capabilities: { immediateGet: true }, get: rejecting("SecurityError") });
  await assert.rejects(createClient().signIn(), (error) => error.id === "browser_error");
});
