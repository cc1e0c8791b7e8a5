// How the client turns answers into results and PasskeyErrors, from a fake
// fetch: the service's refusals keep their id, the network and odd answers
// get the client's own, and Kratos's redirects follow the client's policy.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { PasskeyError, addPasskey, createClient, listPasskeys, loginWithPasskey } from "../index.js";
import {
  LOGIN_OPTIONS, REGISTRATION_OPTIONS, fakeAssertion, fakeRegistration, installBrowser, refusal,
} from "../testing/fake-browser.js";

let env;
afterEach(() => env?.restore());

const PENDING = Symbol("pending");
const pendingOr = (promise) => Promise.race([promise, new Promise((r) => setTimeout(() => r(PENDING), 50))]);
const PASSKEY = { id: "p1", name: "Passkey", credential_id: "Y3JlZC0x", disabled: false };

async function refusedWith(promise) {
  const error = await promise.then(() => assert.fail("expected a PasskeyError"), (e) => e);
  assert.ok(error instanceof PasskeyError, `a PasskeyError, got ${error}`);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "PasskeyError");
  return error;
}

test("requests carry the cookie, JSON only with a body, and the base URL", async () => {
  env = installBrowser({ routes: { "GET /passkeys": { body: { rp_id: "localhost", user: null, passkeys: [] } },
                                   "PATCH /passkeys/a%2Fb": { body: PASSKEY } } });
  const client = createClient({ baseUrl: "https://passkeys.example.com" });
  assert.deepEqual(await client.listPasskeys(), { rp_id: "localhost", user: null, passkeys: [] });
  await client.renamePasskey("a/b", "Work");
  const [list, rename] = env.requests;
  assert.equal(list.url, "https://passkeys.example.com/passkeys");
  assert.equal(list.init.credentials, "include");
  assert.deepEqual(list.init.headers, {});
  assert.equal(list.init.body, undefined);
  assert.equal(rename.url, "https://passkeys.example.com/passkeys/a%2Fb", "the id is escaped");
  assert.equal(rename.method, "PATCH");
  assert.deepEqual(rename.init.headers, { "Content-Type": "application/json" });
  assert.deepEqual(rename.body, { name: "Work" });
});

test("a refusal keeps the service's id, status, message, body and redirect", async () => {
  const answer = refusal(409, "passkey_name_taken");
  env = installBrowser({ routes: { "PATCH /passkeys/p1": answer } });
  const error = await refusedWith(createClient().renamePasskey("p1", "Taken"));
  assert.equal(error.id, "passkey_name_taken");
  assert.equal(error.status, 409);
  assert.equal(error.message, "refused: passkey_name_taken");
  assert.deepEqual(error.body, answer.body);
  assert.equal(error.redirectTo, null);
});

test("an unreachable service is network_error", async () => {
  const cause = new TypeError("Failed to fetch");
  env = installBrowser({ routes: { "GET /passkeys": cause } });
  const error = await refusedWith(listPasskeys());
  assert.equal(error.id, "network_error");
  assert.equal(error.status, 0);
  assert.equal(error.body, cause);
});

test("an answer that is not the service's error is unexpected_response", async () => {
  env = installBrowser({ routes: {
    "GET /passkeys": { status: 502, statusText: "Bad Gateway", raw: "<html>proxy error</html>" },
    "GET /passkeys/enrollment": { status: 500, body: { message: "no id here" } },
  } });
  const html = await refusedWith(listPasskeys());
  assert.equal(html.id, "unexpected_response");
  assert.equal(html.status, 502);
  assert.equal(html.message, "Bad Gateway");
  assert.equal(html.body, null);
  const bare = await refusedWith(createClient().enrollmentOffer());
  assert.equal(bare.id, "unexpected_response");
  assert.equal(bare.status, 500);
});

test("session_refresh_required: the browser goes to Kratos by default, and the call never settles", async () => {
  const to = "http://kratos.test/self-service/login/browser?refresh=true";
  env = installBrowser({ routes: { "DELETE /passkeys/p1": refusal(403, "session_refresh_required", { redirect_browser_to: to }) } });
  assert.equal(await pendingOr(createClient().removePasskey("p1")), PENDING);
  assert.deepEqual(env.assigned, [to]);
  assert.equal(env.requests.length, 1, "nothing else is asked while the page leaves");
});

test("session_refresh_required with onRefreshRequired: 'throw' or a function", async () => {
  const to = "http://kratos.test/refresh";
  env = installBrowser({ routes: { "POST /passkeys/registration/options": refusal(403, "session_refresh_required", { redirect_browser_to: to }) } });
  const thrown = await refusedWith(createClient({ onRefreshRequired: "throw" }).addPasskey());
  assert.equal(thrown.id, "session_refresh_required");
  assert.equal(thrown.redirectTo, to);
  assert.deepEqual(env.assigned, []);

  const seen = [];
  const error = await refusedWith(createClient({ onRefreshRequired: (url, e) => seen.push([url, e.id]) }).addPasskey());
  assert.equal(error.id, "session_refresh_required");
  assert.deepEqual(seen, [[to, "session_refresh_required"]]);
  assert.deepEqual(env.assigned, []);
});

test("session_aal2_required follows onSecondFactorRequired", async () => {
  const to = "http://kratos.test/self-service/login/browser?aal=aal2";
  env = installBrowser({ routes: { "GET /passkeys": refusal(403, "session_aal2_required", { redirect_browser_to: to }) } });
  assert.equal(await pendingOr(createClient().listPasskeys()), PENDING);
  assert.deepEqual(env.assigned, [to]);
  const error = await refusedWith(createClient({ onSecondFactorRequired: "return" }).listPasskeys());
  assert.equal(error.id, "session_aal2_required");
  assert.deepEqual(env.assigned, [to], "no second redirect");
});

test("addPasskey: a cancelled prompt is null, an existing passkey passkey_exists, anything else browser_error", async () => {
  const prompt = { error: null };
  env = installBrowser({
    routes: { "POST /passkeys/registration/options": { body: REGISTRATION_OPTIONS } },
    create: async () => { throw prompt.error; },
  });
  for (const name of ["NotAllowedError", "AbortError"]) {
    prompt.error = new DOMException("closed", name);
    assert.equal(await addPasskey(), null, name);
  }
  prompt.error = new DOMException("excluded", "InvalidStateError");
  const exists = await refusedWith(addPasskey());
  assert.equal(exists.id, "passkey_exists");
  assert.equal(exists.body, prompt.error);
  prompt.error = new DOMException("bad rp id", "SecurityError");
  const browser = await refusedWith(addPasskey());
  assert.equal(browser.id, "browser_error");
  assert.equal(browser.message, "bad rp id");
  assert.ok(env.requests.every((r) => !r.url.endsWith("/verify")), "nothing verified");
});

test("addPasskey sends the decoded options to the browser and the credential JSON to verify", async () => {
  const passkey = { ...PASSKEY, name: "Work laptop" };
  env = installBrowser({
    routes: {
      "POST /passkeys/registration/options": { body: REGISTRATION_OPTIONS },
      "POST /passkeys/registration/verify": { status: 201, body: passkey },
    },
    create: async () => fakeRegistration("cred-9"),
  });
  assert.deepEqual(await addPasskey({ name: "Work laptop" }), passkey);
  const [options, verify] = env.requests;
  assert.deepEqual(options.body, { name: "Work laptop" });
  assert.equal(env.creates.length, 1);
  assert.equal("mediation" in env.creates[0], false, "a modal prompt");
  assert.ok(env.creates[0].publicKey.challenge instanceof ArrayBuffer);
  assert.equal(verify.body.ceremony_id, "ceremony-r");
  assert.equal(verify.body.name, "Work laptop");
  assert.equal(verify.body.credential.id, "cred-9");
  assert.ok(verify.body.credential.response.attestationObject);
});

test("loginWithPasskey: the result, a cancelled prompt, and a browser failure", async () => {
  const outcome = { error: null };
  env = installBrowser({
    routes: {
      "POST /passkeys/login/options": { body: LOGIN_OPTIONS },
      "POST /passkeys/login/verify": { body: { identity_id: "i1", session_token: "ory_st_x" } },
    },
    get: async () => { if (outcome.error) throw outcome.error; return fakeAssertion(); },
  });
  assert.deepEqual(await loginWithPasskey({ session: "token", identifier: "ada@example.com" }), {
    identityId: "i1", sessionToken: "ory_st_x", session: null, secondFactor: null,
  });
  assert.deepEqual(env.requests[0].body, { identifier: "ada@example.com" });
  assert.equal(env.requests[1].body.session, "token");
  outcome.error = new DOMException("closed", "NotAllowedError");
  assert.equal(await loginWithPasskey(), null);
  outcome.error = new DOMException("no", "SecurityError");
  assert.equal((await refusedWith(loginWithPasskey())).id, "browser_error");
});

test("loginWithPasskey with a second factor: redirect by default, or return it", async () => {
  const second = { redirect_browser_to: "http://kratos.test/aal2", api_login_url: "http://kratos.test/api?aal=aal2" };
  env = installBrowser({ routes: {
    "POST /passkeys/login/options": { body: LOGIN_OPTIONS },
    "POST /passkeys/login/verify": { body: { identity_id: "i1", second_factor: second } },
  } });
  assert.equal(await pendingOr(createClient().loginWithPasskey()), PENDING);
  assert.deepEqual(env.assigned, [second.redirect_browser_to]);
  const result = await createClient({ onSecondFactorRequired: "return" }).loginWithPasskey();
  assert.deepEqual(result.secondFactor, { redirectBrowserTo: second.redirect_browser_to, apiLoginUrl: second.api_login_url });
  assert.equal(env.assigned.length, 1);
});
