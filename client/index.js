// kratos-passkeys browser client: a plain ES module, no build step, no
// dependencies. The npm package @kratos-passkeys/client (client/ in the
// kratos-passkeys repository); kratos-passkeys also serves this very file
// at /passkeys/client.js.
//
//   import { addPasskey, loginWithPasskey } from "@kratos-passkeys/client";
//   import { addPasskey, loginWithPasskey } from "/passkeys/client.js";
//
// Every call sends the Kratos session cookie (credentials: "include").
// Refusals become PasskeyError with the service's stable error id.
// A prompt the person cancels resolves to null: a quiet outcome, not an error.
// Types: index.d.ts.

/** A refusal from kratos-passkeys (or the network, or the browser), with a stable `id`. */
export class PasskeyError extends Error {
  constructor(id, message, { status = 0, redirectTo = null, body = null } = {}) {
    super(message);
    this.name = "PasskeyError";
    this.id = id;
    this.status = status;
    this.redirectTo = redirectTo;
    this.body = body;
  }
}

// The browser's WebAuthn pieces, read when used (never at import), so the
// module also loads where there are none (a server render, node's tests).
const credentialClass = () => globalThis.PublicKeyCredential;

/** True when the browser can run WebAuthn at all. */
export function passkeysSupported() {
  return typeof credentialClass() !== "undefined" &&
    typeof globalThis.navigator?.credentials?.create === "function";
}

/** True when the browser can offer passkeys in the username field's autofill. */
export async function autofillSupported() {
  if (!passkeysSupported()) return false;
  const check = credentialClass().isConditionalMediationAvailable;
  if (typeof check !== "function") return false;
  try { return Boolean(await check.call(credentialClass())); } catch { return false; }
}

/**
 * True when the browser can create a passkey quietly right after a password
 * sign-in (`mediation: "conditional"` creation, which `upgradeToPasskey`
 * uses): `PublicKeyCredential.getClientCapabilities()` says `conditionalCreate`.
 */
export async function conditionalCreateSupported() {
  if (!passkeysSupported()) return false;
  const capabilities = credentialClass().getClientCapabilities;
  if (typeof capabilities !== "function") return false;
  try { return (await capabilities.call(credentialClass()))?.conditionalCreate === true; } catch { return false; }
}

// --- base64url and the WebAuthn JSON forms, for browsers without the
// WebAuthn JSON helpers (parseCreationOptionsFromJSON, toJSON) -------------

/** An ArrayBuffer or view as base64url without padding. */
export function toBase64url(buffer) {
  const bytes = ArrayBuffer.isView(buffer)
    ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    : new Uint8Array(buffer);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** base64url (with or without padding) as an ArrayBuffer. */
export function fromBase64url(text) {
  const base64 = text.replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

const withIds = (list) => (list ?? []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

/**
 * The service's creation options (`publicKey` of the registration options)
 * as `navigator.credentials.create()` takes them: the browser's own
 * `parseCreationOptionsFromJSON` where it has one, else decoded here.
 */
export function parseCreationOptions(json) {
  const parse = credentialClass()?.parseCreationOptionsFromJSON;
  if (typeof parse === "function") {
    try { return parse.call(credentialClass(), json); } catch { /* fall back below */ }
  }
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  };
}

/** The same for login (request) options and `navigator.credentials.get()`. */
export function parseRequestOptions(json) {
  const parse = credentialClass()?.parseRequestOptionsFromJSON;
  if (typeof parse === "function") {
    try { return parse.call(credentialClass(), json); } catch { /* fall back below */ }
  }
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: withIds(json.allowCredentials) };
}

/** A PublicKeyCredential (registration or login) as the JSON the service verifies. */
export function credentialToJSON(credential) {
  if (typeof credential.toJSON === "function") {
    try { return credential.toJSON(); } catch { /* fall back below */ }
  }
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment ?? null,
    clientExtensionResults: credential.getClientExtensionResults?.() ?? {},
    response,
  };
}

// A prompt the person closed, or one that timed out, or one replaced by a
// newer request: not an error worth showing as a failure.
const isCancellation = (error) => error?.name === "NotAllowedError" || error?.name === "AbortError";

// --- PRF (the WebAuthn `prf` extension): secrets only the authenticator can
// compute, for end-to-end encryption keys. Salts go to the service as
// base64url; the outputs stay here: they are stripped from every credential
// before it is sent (the service refuses a credential that carries them). --

const textBytes = (text) => new TextEncoder().encode(text);

/** A PRF salt as base64url: a string is taken as UTF-8 text, else bytes. */
export function prfSalt(salt) {
  if (typeof salt === "string") return toBase64url(textBytes(salt));
  if (salt instanceof ArrayBuffer || ArrayBuffer.isView(salt)) return toBase64url(salt);
  throw new TypeError("A PRF salt is a string (UTF-8 text) or bytes.");
}

const prfValuesJSON = (values) => values && {
  first: prfSalt(values.first),
  ...(values.second !== undefined ? { second: prfSalt(values.second) } : {}),
};

const prfValuesBytes = (values) => values && {
  first: fromBase64url(values.first),
  ...(values.second !== undefined ? { second: fromBase64url(values.second) } : {}),
};

// Takes `extensions.prf` out of options JSON (the browser's parser is not
// trusted with it everywhere) and returns it decoded, as get()/create() take it.
function takePrfInputs(json) {
  const prf = json?.extensions?.prf;
  if (prf === undefined) return { json, prf: undefined };
  const { prf: _, ...extensions } = json.extensions;
  const decoded = {};
  if (prf.eval) decoded.eval = prfValuesBytes(prf.eval);
  if (prf.evalByCredential) {
    decoded.evalByCredential = Object.fromEntries(
      Object.entries(prf.evalByCredential).map(([id, values]) => [id, prfValuesBytes(values)]));
  }
  return { json: { ...json, extensions }, prf: decoded };
}

const withPrf = (publicKey, prf) =>
  prf === undefined ? publicKey : { ...publicKey, extensions: { ...(publicKey.extensions ?? {}), prf } };

/** What the browser reported of PRF: `{enabled, results}` with ArrayBuffer results. */
function prfReport(credential) {
  let prf;
  try { prf = credential.getClientExtensionResults?.()?.prf; } catch { prf = undefined; }
  if (!prf) return null;
  const results = prf.results
    ? { first: prf.results.first, ...(prf.results.second ? { second: prf.results.second } : {}) }
    : null;
  return { enabled: typeof prf.enabled === "boolean" ? prf.enabled : null, results };
}

/** The credential JSON without PRF outputs: they never leave the browser. */
export function withoutPrfOutputs(json) {
  const results = json?.clientExtensionResults;
  if (!results?.prf || !("results" in results.prf)) return json;
  const { results: _, ...prf } = results.prf;
  return { ...json, clientExtensionResults: { ...results, prf } };
}

/** The credential as the service verifies it: JSON, PRF outputs removed. */
const credentialForService = (credential) => withoutPrfOutputs(credentialToJSON(credential));

/**
 * True when the browser says it can run immediate sign-in
 * (`getClientCapabilities().immediateGet`). A browser may say so and still
 * refuse the request (see `signIn`).
 */
export async function immediateSupported() {
  if (!passkeysSupported()) return false;
  const capabilities = credentialClass().getClientCapabilities;
  if (typeof capabilities !== "function") return false;
  try { return (await capabilities.call(credentialClass()))?.immediateGet === true; } catch { return false; }
}

/** `signIn`'s result when immediate sign-in found no passkey on this device. */
export const NO_PASSKEY = "no_passkey";

// --- the WebAuthn Signal API: telling the passkey provider what the service
// knows, where the browser supports it. A signal never fails a call: a
// missing function is skipped, a rejection swallowed. ---------------------

function sendSignal(name, details) {
  const target = credentialClass();
  const send = target?.[name];
  if (typeof send !== "function") return Promise.resolve(false);
  try {
    return Promise.resolve(send.call(target, details)).then(
      () => true,
      (error) => { quietly(`${name} was refused`, error); return false; },
    );
  } catch (error) {
    quietly(`${name} failed`, error);
    return Promise.resolve(false);
  }
}

const signalSupported = (name) => typeof credentialClass()?.[name] === "function";

// What this browser last told the provider about a user, per relying party
// and user handle, so a changed name is signalled once.
const DETAILS_KEY = "kratos-passkeys:signalled-user:";

function remembered(key) {
  try { return globalThis.localStorage?.getItem(key) ?? null; } catch { return null; }
}

function remember(key, value) {
  try { globalThis.localStorage?.setItem(key, value); } catch { /* storage off or full */ }
}

/**
 * After the service answered the person's passkeys: the credential ids it
 * accepts (the provider may hide or remove the others) and, when changed
 * since this browser last said so, the person's name and display name.
 */
function signalFromList(list) {
  const user = list?.user;
  if (!user?.id || !list.rp_id || !Array.isArray(list.passkeys)) return;
  const rpId = list.rp_id;
  sendSignal("signalAllAcceptedCredentials", {
    rpId,
    userId: user.id,
    allAcceptedCredentialIds: list.passkeys.filter((p) => !p.disabled).map((p) => p.credential_id),
  });
  if (!signalSupported("signalCurrentUserDetails")) return;
  const details = { rpId, userId: user.id, name: user.name, displayName: user.display_name ?? user.name };
  const key = `${DETAILS_KEY}${rpId}:${user.id}`;
  const value = JSON.stringify([details.name, details.displayName]);
  if (remembered(key) === value) return;
  sendSignal("signalCurrentUserDetails", details).then((sent) => sent && remember(key, value));
}

function quietly(what, error) {
  try { globalThis.console?.debug?.(`kratos-passkeys: ${what}`, error); } catch { /* no console */ }
}

// --- the client ------------------------------------------------------------

/**
 * Makes a client for a kratos-passkeys deployment.
 *
 * @param {object} [options]
 * @param {string} [options.baseUrl] where kratos-passkeys's public listener is ("" = same origin)
 * @param {"redirect"|"throw"|function} [options.onRefreshRequired] what to do with
 *   `session_refresh_required`: follow Kratos's re-authentication (default),
 *   throw the PasskeyError, or call a function with the redirect URL.
 * @param {"redirect"|"return"|function} [options.onSecondFactorRequired] what to
 *   do when Kratos wants the person's second factor (a passkey login that
 *   Kratos issued at aal1, or `session_aal2_required` from any call): follow
 *   Kratos's aal2 login (default), leave it to the caller (the login resolves
 *   with `secondFactor`; calls throw the PasskeyError), or call a function
 *   with the redirect URL.
 */
export function createClient({
  baseUrl = "",
  onRefreshRequired = "redirect",
  onSecondFactorRequired = "redirect",
} = {}) {
  let autofill = null; // the AbortController of a pending conditional request
  let upgrade = null; // the AbortController of a pending conditional creation

  // Sends the browser to Kratos when asked to; true when the page is leaving.
  function follow(policy, url, detail) {
    if (!url) return false;
    if (policy === "redirect") {
      globalThis.location.assign(url);
      return true;
    }
    if (typeof policy === "function") policy(url, detail);
    return false;
  }

  // `quiet`: never follow a redirect (the caller swallows the refusal).
  async function call(method, path, body, { quiet = false } = {}) {
    let response;
    try {
      response = await fetch(baseUrl + path, {
        method,
        credentials: "include",
        headers: body === undefined ? {} : { "Content-Type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new PasskeyError("network_error", "The passkey service could not be reached.", { body: error });
    }
    const text = await response.text();
    const data = text ? safeJSON(text) : null;
    if (response.ok) return data;
    const error = data?.error ?? {};
    const failure = new PasskeyError(error.id ?? "unexpected_response", error.message ?? response.statusText, {
      status: response.status,
      redirectTo: data?.redirect_browser_to ?? null,
      body: data,
    });
    const policy = {
      session_refresh_required: onRefreshRequired,
      session_aal2_required: onSecondFactorRequired,
    }[failure.id];
    if (!quiet && policy && follow(policy, failure.redirectTo, failure)) {
      return new Promise(() => {}); // the page is leaving
    }
    throw failure;
  }

  function abortAutofill() {
    if (autofill) {
      autofill.abort();
      autofill = null;
    }
  }

  // A conditional creation can stay pending for as long as the password
  // manager waits, and the browser refuses any other WebAuthn request
  // meanwhile ("A request is already pending"): a prompt the person asked
  // for ends it.
  function abortUpgrade() {
    if (upgrade) {
      upgrade.abort();
      upgrade = null;
    }
  }

  /** Adds a passkey for the signed-in person. Resolves to the passkey, or null if cancelled. */
  async function addPasskey({ name, prf } = {}) {
    abortAutofill();
    abortUpgrade();
    const options = await call("POST", "/passkeys/registration/options", name ? { name } : {});
    const taken = takePrfInputs(options.publicKey);
    // The service asks whether the passkey can do PRF; the application may
    // also ask for outputs at once (`eval`), which some authenticators give.
    const prfInputs = prf?.eval
      ? { ...(taken.prf ?? {}), eval: prfValuesBytes(prfValuesJSON(prf.eval)) }
      : taken.prf;
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: withPrf(parseCreationOptions(taken.json), prfInputs) });
    } catch (error) {
      if (isCancellation(error)) return null;
      if (error?.name === "InvalidStateError") {
        throw new PasskeyError("passkey_exists", "This device already holds a passkey for your account.", { body: error });
      }
      throw new PasskeyError("browser_error", error?.message ?? String(error), { body: error });
    }
    if (!credential) return null;
    const passkey = await call("POST", "/passkeys/registration/verify", {
      ceremony_id: options.ceremony_id,
      credential: credentialForService(credential),
      ...(name ? { name } : {}),
    });
    return prf ? { ...passkey, prf: prfReport(credential) ?? { enabled: null, results: null } } : passkey;
  }

  /**
   * Right after a password sign-in or sign-up: asks the password manager to
   * create a passkey without a dialog (conditional creation). Resolves to
   * the new passkey, or null: where the browser cannot (no network call, no
   * prompt), when the password manager declines, when it is aborted (with
   * `signal`, or by `addPasskey` or `loginWithPasskey`), or on any refusal.
   * Never throws, never leaves the page.
   */
  async function upgradeToPasskey({ name, signal } = {}) {
    const controller = new AbortController();
    try {
      if (!(await conditionalCreateSupported()) || signal?.aborted) return null;
      abortAutofill();
      abortUpgrade();
      upgrade = controller;
      signal?.addEventListener("abort", () => controller.abort(), { once: true });
      const options = await call("POST", "/passkeys/registration/options",
        { mediation: "conditional", ...(name ? { name } : {}) }, { quiet: true });
      if (controller.signal.aborted) return null;
      const taken = takePrfInputs(options.publicKey);
      const credential = await navigator.credentials.create({
        publicKey: withPrf(parseCreationOptions(taken.json), taken.prf),
        mediation: "conditional",
        signal: controller.signal,
      });
      if (!credential) return null;
      return await call("POST", "/passkeys/registration/verify", {
        ceremony_id: options.ceremony_id,
        credential: credentialForService(credential),
        ...(name ? { name } : {}),
      }, { quiet: true });
    } catch (error) {
      quietly("no passkey upgrade", error);
      return null;
    } finally {
      if (upgrade === controller) upgrade = null;
    }
  }

  /**
   * Signs in with a passkey and ends with a genuine Kratos session.
   * `mediation: "conditional"` runs the autofill request (abort it with
   * `signal`, or by starting a modal login). Resolves to
   * `{identityId, sessionToken, session, secondFactor}`, or null if the
   * person cancelled. `sessionToken` is set only with `session: "token"`;
   * `session` (Kratos's session object) only with `includeSession: true`.
   * `secondFactor` (`{redirectBrowserTo, apiLoginUrl}`) is set when Kratos
   * issued the session at aal1 and wants the person's second factor: with
   * cookies the browser is sent to Kratos's aal2 login unless
   * `onSecondFactorRequired` says otherwise; token clients finish it through
   * `apiLoginUrl` with their token.
   */
  async function runLogin({
    identifier,
    mediation,
    session = "cookie",
    includeSession = false,
    signal,
    prf,
  } = {}, onNoPasskey = undefined) {
    const conditional = mediation === "conditional";
    const immediate = mediation === "immediate";
    abortAutofill();
    abortUpgrade();
    const controller = new AbortController();
    if (conditional) autofill = controller;
    signal?.addEventListener("abort", () => controller.abort(), { once: true });
    const body = identifier ? { identifier } : {};
    if (prf) {
      body.prf = {
        ...(prf.eval ? { eval: prfValuesJSON(prf.eval) } : {}),
        ...(prf.byCredential ? { by_credential: true } : {}),
      };
    }
    const options = await call("POST", "/passkeys/login/options", body);
    const taken = takePrfInputs(options.publicKey);
    let credential;
    try {
      credential = await navigator.credentials.get({
        publicKey: withPrf(parseRequestOptions(taken.json), taken.prf),
        signal: controller.signal,
        ...(conditional || immediate ? { mediation } : {}),
      });
    } catch (error) {
      if (immediate && typeof onNoPasskey === "function" && error?.name !== "AbortError") {
        return onNoPasskey(error);
      }
      if (isCancellation(error)) return null;
      throw new PasskeyError("browser_error", error?.message ?? String(error), { body: error });
    } finally {
      if (autofill === controller) autofill = null;
    }
    if (!credential) return null;
    try {
      const answer = await call("POST", "/passkeys/login/verify", {
        ceremony_id: options.ceremony_id,
        credential: credentialForService(credential),
        session,
        ...(includeSession ? { include_session: true } : {}),
      });
      const secondFactor = answer.second_factor
        ? {
            redirectBrowserTo: answer.second_factor.redirect_browser_to,
            apiLoginUrl: answer.second_factor.api_login_url,
          }
        : null;
      if (secondFactor && session === "cookie"
          && follow(onSecondFactorRequired, secondFactor.redirectBrowserTo, answer)) {
        return new Promise(() => {}); // the page is leaving
      }
      const result = {
        identityId: answer.identity_id,
        sessionToken: answer.session_token ?? null,
        session: answer.session ?? null,
        secondFactor,
      };
      if (prf) result.prf = prfReport(credential) ?? { enabled: null, results: null };
      return result;
    } catch (error) {
      // No identity has this credential: tell the passkey provider, so it
      // stops offering it.
      if (error instanceof PasskeyError && error.id === "credential_unknown") {
        sendSignal("signalUnknownCredential", {
          rpId: options.publicKey.rpId ?? globalThis.location?.hostname,
          credentialId: credential.id,
        });
      }
      throw error;
    }
  }

  const loginWithPasskey = (options) => runLogin(options);

  /**
   * A "Sign in" button. With `mediation: "immediate"` (the default) the
   * browser shows its passkey prompt at once when this device has a passkey
   * for the site, and otherwise answers at once, so the page can show its
   * password form without a dead end. Resolves to one of:
   *   `{status: "signed_in", login}`: `login` is what `loginWithPasskey` gives;
   *   `{status: "no_passkey"}` (`NO_PASSKEY`): immediate sign-in found no
   *     passkey on this device (or the person dismissed it; browsers do not
   *     tell these apart, on purpose);
   *   `{status: "cancelled"}`: the modal prompt was closed;
   *   `{status: "unsupported"}`: the browser cannot do immediate sign-in and
   *     `fallback` is "return".
   * `fallback` ("modal", the default, or "return") is what happens where
   * immediate sign-in is unsupported: today's modal prompt, or nothing. It
   * is unsupported when `getClientCapabilities()` does not say `immediateGet`,
   * and also when the browser says so but refuses `mediation: "immediate"`
   * as unknown (a TypeError; Chromium 156 without the origin trial does).
   * Other options (`session`, `includeSession`, `prf`, `signal`) are
   * `loginWithPasskey`'s.
   */
  async function signIn({ mediation = "immediate", fallback = "modal", ...login } = {}) {
    const fallBack = async () => {
      if (fallback === "return") return { status: "unsupported" };
      const result = await loginWithPasskey({ ...login, identifier: undefined });
      return result ? { status: "signed_in", login: result } : { status: "cancelled" };
    };
    if (mediation !== "immediate") {
      const result = await loginWithPasskey({ ...login, mediation });
      return result ? { status: "signed_in", login: result } : { status: "cancelled" };
    }
    if (!(await immediateSupported())) return fallBack();
    let unsupported = false;
    const result = await runLogin({
      ...login,
      // Immediate sign-in is for discoverable passkeys: the browser offers
      // what this device holds for the site.
      identifier: undefined,
      mediation: "immediate",
    }, (error) => {
      if (error?.name === "TypeError") unsupported = true;
      else if (error?.name !== "NotAllowedError") throw new PasskeyError("browser_error", error?.message ?? String(error), { body: error });
      return NO_PASSKEY;
    });
    if (unsupported) return fallBack();
    if (result === NO_PASSKEY) return { status: NO_PASSKEY };
    return result ? { status: "signed_in", login: result } : { status: "cancelled" };
  }

  /**
   * The signed-in person's passkeys, newest first, with the relying party id
   * and the person's WebAuthn user (null before their first passkey):
   * `{rp_id, user, passkeys}`. Signals the accepted credentials (and a
   * changed name) to the passkey provider where the browser supports it.
   */
  async function listPasskeys() {
    const list = await call("GET", "/passkeys");
    signalFromList(list);
    return list;
  }

  /**
   * Removes a passkey; then tells the passkey provider which remain, where
   * supported. The service refuses the person's last way in with
   * `last_sign_in_method` (409), and the passkey stays.
   */
  async function removePasskey(id) {
    await call("DELETE", `/passkeys/${encodeURIComponent(id)}`);
    if (signalSupported("signalAllAcceptedCredentials")) {
      try {
        signalFromList(await call("GET", "/passkeys", undefined, { quiet: true }));
      } catch (error) {
        quietly("the passkeys could not be read again after the removal", error);
      }
    }
  }

  return {
    addPasskey,
    upgradeToPasskey,
    loginWithPasskey,
    signIn,
    abortAutofill,
    listPasskeys,
    renamePasskey: (id, name) => call("PATCH", `/passkeys/${encodeURIComponent(id)}`, { name }),
    removePasskey,
    /** `{offer, passkeys}`: whether to show "set up a passkey" now. */
    enrollmentOffer: () => call("GET", "/passkeys/enrollment"),
    /** Records "Skip for now". */
    dismissEnrollment: async () => { await call("POST", "/passkeys/enrollment/dismiss", {}); },
  };
}

function safeJSON(text) {
  try { return JSON.parse(text); } catch { return null; }
}

const defaultClient = createClient();
export const {
  addPasskey, upgradeToPasskey, loginWithPasskey, signIn, abortAutofill, listPasskeys, renamePasskey,
  removePasskey, enrollmentOffer, dismissEnrollment,
} = defaultClient;
