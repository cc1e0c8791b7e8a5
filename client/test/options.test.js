// The WebAuthn JSON forms: the service's options into what
// navigator.credentials takes, a credential into what the service verifies.
// With the browser's own JSON helpers where it has them, else the fallback.
import { test, afterEach } from "node:test";
import assert from "node:assert/strict";
import { credentialToJSON, parseCreationOptions, parseRequestOptions, toBase64url } from "../index.js";
import {
  LOGIN_OPTIONS, REGISTRATION_OPTIONS, bytes, fakeAssertion, fakeRegistration, installBrowser,
} from "../testing/fake-browser.js";

let env;
afterEach(() => env?.restore());

const text = (buffer) => new TextDecoder().decode(buffer);

test("creation options are decoded without the browser's helper, leaving the JSON as it was", () => {
  env = installBrowser();
  const json = structuredClone(REGISTRATION_OPTIONS.publicKey);
  const options = parseCreationOptions(json);
  assert.ok(options.challenge instanceof ArrayBuffer);
  assert.equal(text(options.challenge), "challenge");
  assert.equal(text(options.user.id), "user-1");
  assert.equal(options.user.name, "ada@example.com");
  assert.equal(options.user.displayName, "Ada");
  assert.equal(text(options.excludeCredentials[0].id), "old");
  assert.equal(options.excludeCredentials[0].type, "public-key");
  assert.deepEqual(options.rp, json.rp);
  assert.deepEqual(options.pubKeyCredParams, json.pubKeyCredParams);
  assert.deepEqual(json, REGISTRATION_OPTIONS.publicKey, "the input is not changed");
});

test("creation options without excludeCredentials get an empty list", () => {
  env = installBrowser();
  const { excludeCredentials, ...json } = REGISTRATION_OPTIONS.publicKey;
  assert.deepEqual(parseCreationOptions(json).excludeCredentials, []);
});

test("request options are decoded without the browser's helper", () => {
  env = installBrowser();
  const options = parseRequestOptions({ ...LOGIN_OPTIONS.publicKey, allowCredentials: [{ type: "public-key", id: "Y3JlZA" }] });
  assert.equal(text(options.challenge), "challenge");
  assert.equal(options.rpId, "localhost");
  assert.equal(text(options.allowCredentials[0].id), "cred");
  const { allowCredentials, ...bare } = LOGIN_OPTIONS.publicKey;
  assert.deepEqual(parseRequestOptions(bare).allowCredentials, []);
});

test("the browser's parse helpers are used where they exist, and a throwing one falls back", () => {
  env = installBrowser();
  const calls = [];
  env.PublicKeyCredential.parseCreationOptionsFromJSON = function (json) {
    calls.push(["create", this, json]);
    return { parsedByBrowser: true };
  };
  env.PublicKeyCredential.parseRequestOptionsFromJSON = function (json) {
    calls.push(["get", this, json]);
    return { parsedByBrowser: true };
  };
  assert.deepEqual(parseCreationOptions(REGISTRATION_OPTIONS.publicKey), { parsedByBrowser: true });
  assert.deepEqual(parseRequestOptions(LOGIN_OPTIONS.publicKey), { parsedByBrowser: true });
  assert.equal(calls.length, 2);
  assert.equal(calls[0][1], env.PublicKeyCredential, "called on PublicKeyCredential");

  env.PublicKeyCredential.parseCreationOptionsFromJSON = () => { throw new TypeError("unknown member"); };
  env.PublicKeyCredential.parseRequestOptionsFromJSON = () => { throw new TypeError("unknown member"); };
  assert.equal(text(parseCreationOptions(REGISTRATION_OPTIONS.publicKey).challenge), "challenge");
  assert.equal(text(parseRequestOptions(LOGIN_OPTIONS.publicKey).challenge), "challenge");
});

test("the options decode with no PublicKeyCredential at all", () => {
  env = installBrowser();
  delete globalThis.PublicKeyCredential;
  assert.equal(text(parseCreationOptions(REGISTRATION_OPTIONS.publicKey).user.id), "user-1");
  assert.equal(text(parseRequestOptions(LOGIN_OPTIONS.publicKey).challenge), "challenge");
});

test("a registration credential without toJSON() becomes the registration JSON", () => {
  assert.deepEqual(credentialToJSON(fakeRegistration("cred-1")), {
    id: "cred-1",
    rawId: toBase64url(bytes("cred-1")),
    type: "public-key",
    authenticatorAttachment: "platform",
    clientExtensionResults: { credProps: { rk: true } },
    response: {
      clientDataJSON: toBase64url(bytes('{"type":"webauthn.create"}')),
      attestationObject: toBase64url(bytes("attestation")),
      transports: ["internal", "hybrid"],
    },
  });
  const bare = fakeRegistration();
  delete bare.response.getTransports;
  delete bare.getClientExtensionResults;
  delete bare.authenticatorAttachment;
  const json = credentialToJSON(bare);
  assert.deepEqual(json.response.transports, []);
  assert.deepEqual(json.clientExtensionResults, {});
  assert.equal(json.authenticatorAttachment, null);
});

test("a login credential without toJSON() becomes the login JSON, userHandle only when there is one", () => {
  assert.deepEqual(credentialToJSON(fakeAssertion("cred-2", "user-1")), {
    id: "cred-2",
    rawId: toBase64url(bytes("cred-2")),
    type: "public-key",
    authenticatorAttachment: "platform",
    clientExtensionResults: {},
    response: {
      clientDataJSON: toBase64url(bytes('{"type":"webauthn.get"}')),
      authenticatorData: toBase64url(bytes("authdata")),
      signature: toBase64url(bytes("signature")),
      userHandle: toBase64url(bytes("user-1")),
    },
  });
  assert.equal("userHandle" in credentialToJSON(fakeAssertion("cred-2", null)).response, false);
});

test("the credential's own toJSON() is used, and a throwing one falls back", () => {
  const credential = fakeRegistration("cred-3");
  credential.toJSON = () => ({ fromBrowser: true });
  assert.deepEqual(credentialToJSON(credential), { fromBrowser: true });
  credential.toJSON = () => { throw new Error("not serializable"); };
  assert.equal(credentialToJSON(credential).id, "cred-3");
});
