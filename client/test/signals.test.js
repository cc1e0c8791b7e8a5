// The WebAuthn Signal API: what the client tells the passkey provider, when,
// and that a missing or failing signal never fails the call it rides on.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { PasskeyError, createClient } from "../index.js";
import { LOGIN_OPTIONS, fakeAssertion, installBrowser, refusal, settle } from "../testing/fake-browser.js";

let env;
afterEach(() => env?.restore());

const USER = { id: "dXNlci0x", name: "ada@example.com", display_name: "Ada" };
const passkey = (n, extra = {}) => ({ id: `p${n}`, name: `Passkey ${n}`, credential_id: `Y3JlZC0${n}`, disabled: false, ...extra });
const list = (passkeys, user = USER) => ({ rp_id: "localhost", user, passkeys });
const named = (name) => env.signals.filter(([n]) => n === name).map(([, details]) => details);

const unhandled = [];
process.on("unhandledRejection", (reason) => unhandled.push(reason));
afterEach(async () => {
  await settle();
  assert.deepEqual(unhandled.splice(0), [], "no unhandled rejections");
});

test("listPasskeys resolves to the whole answer and signals the accepted credentials and the user", async () => {
  const answer = list([passkey(1), passkey(2)]);
  env = installBrowser({ routes: { "GET /passkeys": { body: answer } } });
  assert.deepEqual(await createClient().listPasskeys(), answer);
  await settle();
  assert.deepEqual(named("signalAllAcceptedCredentials"), [
    { rpId: "localhost", userId: USER.id, allAcceptedCredentialIds: ["Y3JlZC01", "Y3JlZC02"] },
  ]);
  assert.deepEqual(named("signalCurrentUserDetails"), [
    { rpId: "localhost", userId: USER.id, name: "ada@example.com", displayName: "Ada" },
  ]);
});

test("a disabled passkey (possible clone) is not among the accepted ones", async () => {
  env = installBrowser({ routes: { "GET /passkeys": { body: list([passkey(1), passkey(2, { disabled: true })]) } } });
  await createClient().listPasskeys();
  assert.deepEqual(named("signalAllAcceptedCredentials")[0].allAcceptedCredentialIds, ["Y3JlZC01"]);
});

test("the user's details are signalled once, and again when they change", async () => {
  const routes = { "GET /passkeys": { body: list([passkey(1)]) } };
  env = installBrowser({ routes });
  const client = createClient();
  await client.listPasskeys();
  await settle();
  await client.listPasskeys();
  await settle();
  assert.equal(named("signalAllAcceptedCredentials").length, 2, "the accepted credentials on every read");
  assert.equal(named("signalCurrentUserDetails").length, 1, "the details only when new");

  routes["GET /passkeys"] = { body: list([passkey(1)], { ...USER, name: "ada@new.example.com" }) };
  await client.listPasskeys();
  await settle();
  routes["GET /passkeys"] = { body: list([passkey(1)], { ...USER, name: "ada@new.example.com", display_name: "Ada L." }) };
  await client.listPasskeys();
  await settle();
  assert.deepEqual(named("signalCurrentUserDetails").map((d) => [d.name, d.displayName]), [
    ["ada@example.com", "Ada"], ["ada@new.example.com", "Ada"], ["ada@new.example.com", "Ada L."],
  ]);
});

test("what was signalled is remembered per relying party and user", async () => {
  const routes = { "GET /passkeys": { body: list([passkey(1)]) } };
  env = installBrowser({ routes });
  const client = createClient();
  await client.listPasskeys();
  await settle();
  routes["GET /passkeys"] = { body: list([passkey(3)], { ...USER, id: "dXNlci0y" }) };
  await client.listPasskeys();
  await settle();
  routes["GET /passkeys"] = { body: { ...list([passkey(1)]), rp_id: "example.com" } };
  await client.listPasskeys();
  await settle();
  assert.deepEqual(named("signalCurrentUserDetails").map((d) => [d.rpId, d.userId]), [
    ["localhost", "dXNlci0x"], ["localhost", "dXNlci0y"], ["example.com", "dXNlci0x"],
  ]);
});

test("a person who never had a passkey (user null): no signal", async () => {
  env = installBrowser({ routes: { "GET /passkeys": { body: list([], null) } } });
  assert.deepEqual((await createClient().listPasskeys()).passkeys, []);
  await settle();
  assert.deepEqual(env.signals, []);
});

test("a browser without the Signal API: the list is read as usual", async () => {
  const answer = list([passkey(1)]);
  env = installBrowser({ routes: { "GET /passkeys": { body: answer } }, signals: false });
  assert.deepEqual(await createClient().listPasskeys(), answer);
  delete globalThis.PublicKeyCredential;
  assert.deepEqual(await createClient().listPasskeys(), answer);
});

test("a signal that rejects or throws never fails the call, and a rejected details signal is tried again", async () => {
  const answer = list([passkey(1)]);
  env = installBrowser({ routes: { "GET /passkeys": { body: answer } } });
  const client = createClient();
  PublicKeyCredential.signalAllAcceptedCredentials = async () => { throw new DOMException("no", "NotAllowedError"); };
  PublicKeyCredential.signalCurrentUserDetails = () => { throw new TypeError("sync failure"); };
  assert.deepEqual(await client.listPasskeys(), answer);
  let details = 0;
  PublicKeyCredential.signalCurrentUserDetails = () => { details += 1; return Promise.reject(new Error("later")); };
  assert.deepEqual(await client.listPasskeys(), answer);
  await settle();
  assert.deepEqual(await client.listPasskeys(), answer);
  await settle();
  assert.equal(details, 2, "not remembered as signalled");
  PublicKeyCredential.signalCurrentUserDetails = () => "not a promise";
  assert.deepEqual(await client.listPasskeys(), answer);
});

test("storage that throws or is absent: the details are signalled every time, nothing fails", async () => {
  const throwing = { getItem() { throw new DOMException("denied", "SecurityError"); }, setItem() { throw new DOMException("full", "QuotaExceededError"); } };
  env = installBrowser({ routes: { "GET /passkeys": { body: list([passkey(1)]) } }, storage: throwing });
  const client = createClient();
  await client.listPasskeys();
  await settle();
  delete globalThis.localStorage;
  await client.listPasskeys();
  await settle();
  assert.equal(named("signalCurrentUserDetails").length, 2);
});

test("removePasskey reads the list again and signals the passkeys that remain", async () => {
  const routes = {
    "DELETE /passkeys/p2": { status: 204 },
    "GET /passkeys": { body: list([passkey(1)]) },
  };
  env = installBrowser({ routes });
  assert.equal(await createClient().removePasskey("p2"), undefined);
  await settle();
  assert.deepEqual(env.requests.map((r) => `${r.method} ${new URL(r.url, "http://x").pathname}`), ["DELETE /passkeys/p2", "GET /passkeys"]);
  assert.deepEqual(named("signalAllAcceptedCredentials"), [
    { rpId: "localhost", userId: USER.id, allAcceptedCredentialIds: ["Y3JlZC01"] },
  ]);
});

test("removePasskey without the Signal API makes no second request", async () => {
  env = installBrowser({ routes: { "DELETE /passkeys/p2": { status: 204 } }, signals: false });
  await createClient().removePasskey("p2");
  assert.deepEqual(env.requests.map((r) => r.method), ["DELETE"]);
});

test("removePasskey succeeds whatever the second read answers, and never follows a redirect from it", async () => {
  const to = "http://kratos.test/aal2";
  for (const answer of [refusal(500, "internal_error"), new TypeError("Failed to fetch"),
                        refusal(403, "session_aal2_required", { redirect_browser_to: to }), { raw: "not json" }]) {
    env = installBrowser({ routes: { "DELETE /passkeys/p2": { status: 204 }, "GET /passkeys": answer } });
    assert.equal(await createClient().removePasskey("p2"), undefined);
    await settle();
    assert.deepEqual(env.assigned, []);
    assert.deepEqual(named("signalAllAcceptedCredentials"), []);
    env.restore();
  }
  env = undefined;
});

test("a refused removal rejects, with no second read and no signal", async () => {
  env = installBrowser({ routes: { "DELETE /passkeys/p2": refusal(404, "passkey_not_found") } });
  const error = await createClient().removePasskey("p2").catch((e) => e);
  assert.equal(error.id, "passkey_not_found");
  assert.equal(env.requests.length, 1);
  assert.deepEqual(env.signals, []);
});

test("credential_unknown at login signals the unknown credential; other refusals do not", async () => {
  const verify = { answer: refusal(400, "credential_unknown") };
  env = installBrowser({
    routes: { "POST /passkeys/login/options": { body: LOGIN_OPTIONS }, "POST /passkeys/login/verify": () => verify.answer },
    get: async () => fakeAssertion("Z29uZQ"),
  });
  const client = createClient();
  const unknown = await client.loginWithPasskey().catch((e) => e);
  assert.ok(unknown instanceof PasskeyError);
  assert.equal(unknown.id, "credential_unknown");
  await settle();
  assert.deepEqual(named("signalUnknownCredential"), [{ rpId: "localhost", credentialId: "Z29uZQ" }]);

  for (const id of ["identity_inactive", "credential_cloned", "signature_invalid", "ceremony_expired"]) {
    verify.answer = refusal(400, id);
    assert.equal((await client.loginWithPasskey().catch((e) => e)).id, id);
  }
  await settle();
  assert.equal(named("signalUnknownCredential").length, 1, "only for credential_unknown");
});

test("credential_unknown with a missing or failing signalUnknownCredential still rejects with the PasskeyError", async () => {
  env = installBrowser({
    routes: { "POST /passkeys/login/options": { body: LOGIN_OPTIONS }, "POST /passkeys/login/verify": refusal(400, "credential_unknown") },
  });
  const client = createClient();
  for (const signal of [undefined, async () => { throw new Error("refused"); }, () => { throw new Error("sync"); }]) {
    PublicKeyCredential.signalUnknownCredential = signal;
    const error = await client.loginWithPasskey().catch((e) => e);
    assert.ok(error instanceof PasskeyError);
    assert.equal(error.id, "credential_unknown");
  }
});

test("without rpId in the options, the unknown credential is signalled for the page's host", async () => {
  const { rpId, ...publicKey } = LOGIN_OPTIONS.publicKey;
  env = installBrowser({
    routes: { "POST /passkeys/login/options": { body: { ...LOGIN_OPTIONS, publicKey } }, "POST /passkeys/login/verify": refusal(400, "credential_unknown") },
    get: async () => fakeAssertion("eA"),
  });
  await createClient().loginWithPasskey().catch(() => {});
  await settle();
  assert.deepEqual(named("signalUnknownCredential"), [{ rpId: "localhost", credentialId: "eA" }]);
});
