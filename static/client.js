// kratos-passkeys browser client: a plain ES module, no build step.
// Served by kratos-passkeys at /passkeys/client.js.
//
//   import { addPasskey, loginWithPasskey } from "/passkeys/client.js";
//
// Every call sends the Kratos session cookie (credentials: "include").
// Refusals become PasskeyError with the service's stable error id.
// A prompt the person cancels resolves to null: a quiet outcome, not an error.

/** A refusal from kratos-passkeys (or the network), with a stable `id`. */
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

/** True when the browser can run WebAuthn at all. */
export function passkeysSupported() {
  return typeof window !== "undefined" && "PublicKeyCredential" in window &&
    typeof navigator.credentials?.create === "function";
}

/** True when the browser can offer passkeys in the username field's autofill. */
export async function autofillSupported() {
  if (!passkeysSupported()) return false;
  const check = window.PublicKeyCredential.isConditionalMediationAvailable;
  return typeof check === "function" ? Boolean(await check.call(window.PublicKeyCredential)) : false;
}

// --- base64url, for browsers without the WebAuthn JSON helpers -------------

function toBase64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "===".slice((base64.length + 3) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

const withIds = (list) => (list ?? []).map((c) => ({ ...c, id: fromBase64url(c.id) }));

function creationOptions(json) {
  const parse = window.PublicKeyCredential?.parseCreationOptionsFromJSON;
  if (typeof parse === "function") {
    try { return parse.call(window.PublicKeyCredential, json); } catch { /* fall back below */ }
  }
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  };
}

function requestOptions(json) {
  const parse = window.PublicKeyCredential?.parseRequestOptionsFromJSON;
  if (typeof parse === "function") {
    try { return parse.call(window.PublicKeyCredential, json); } catch { /* fall back below */ }
  }
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: withIds(json.allowCredentials) };
}

function credentialJSON(credential) {
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

  // Sends the browser to Kratos when asked to; true when the page is leaving.
  function follow(policy, url, detail) {
    if (!url) return false;
    if (policy === "redirect") {
      window.location.assign(url);
      return true;
    }
    if (typeof policy === "function") policy(url, detail);
    return false;
  }

  async function call(method, path, body) {
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
    if (policy && follow(policy, failure.redirectTo, failure)) {
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

  /** Adds a passkey for the signed-in person. Resolves to the passkey, or null if cancelled. */
  async function addPasskey({ name } = {}) {
    abortAutofill();
    const options = await call("POST", "/passkeys/registration/options", name ? { name } : {});
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) });
    } catch (error) {
      if (isCancellation(error)) return null;
      if (error?.name === "InvalidStateError") {
        throw new PasskeyError("passkey_exists", "This device already holds a passkey for your account.", { body: error });
      }
      throw new PasskeyError("browser_error", error?.message ?? String(error), { body: error });
    }
    return call("POST", "/passkeys/registration/verify", {
      ceremony_id: options.ceremony_id,
      credential: credentialJSON(credential),
      ...(name ? { name } : {}),
    });
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
  async function loginWithPasskey({
    identifier,
    mediation,
    session = "cookie",
    includeSession = false,
    signal,
  } = {}) {
    const conditional = mediation === "conditional";
    abortAutofill();
    const controller = new AbortController();
    if (conditional) autofill = controller;
    signal?.addEventListener("abort", () => controller.abort(), { once: true });
    const options = await call("POST", "/passkeys/login/options", identifier ? { identifier } : {});
    let credential;
    try {
      credential = await navigator.credentials.get({
        publicKey: requestOptions(options.publicKey),
        signal: controller.signal,
        ...(conditional ? { mediation: "conditional" } : {}),
      });
    } catch (error) {
      if (isCancellation(error)) return null;
      throw new PasskeyError("browser_error", error?.message ?? String(error), { body: error });
    } finally {
      if (autofill === controller) autofill = null;
    }
    if (!credential) return null;
    try {
      const answer = await call("POST", "/passkeys/login/verify", {
        ceremony_id: options.ceremony_id,
        credential: credentialJSON(credential),
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
      return {
        identityId: answer.identity_id,
        sessionToken: answer.session_token ?? null,
        session: answer.session ?? null,
        secondFactor,
      };
    } catch (error) {
      // Tell the passkey provider this credential is gone, where supported,
      // so it stops offering it.
      if (error instanceof PasskeyError && error.id === "credential_unknown") {
        window.PublicKeyCredential?.signalUnknownCredential?.({
          rpId: options.publicKey.rpId,
          credentialId: credential.id,
        })?.catch?.(() => {});
      }
      throw error;
    }
  }

  return {
    addPasskey,
    loginWithPasskey,
    abortAutofill,
    /** The signed-in person's passkeys, newest first. */
    listPasskeys: () => call("GET", "/passkeys"),
    renamePasskey: (id, name) => call("PATCH", `/passkeys/${encodeURIComponent(id)}`, { name }),
    removePasskey: (id) => call("DELETE", `/passkeys/${encodeURIComponent(id)}`),
    /** `{offer, passkeys}`: whether to show "set up a passkey" now. */
    enrollmentOffer: () => call("GET", "/passkeys/enrollment"),
    /** Records "Skip for now". */
    dismissEnrollment: () => call("POST", "/passkeys/enrollment/dismiss", {}),
  };
}

function safeJSON(text) {
  try { return JSON.parse(text); } catch { return null; }
}

const defaultClient = createClient();
export const {
  addPasskey, loginWithPasskey, abortAutofill, listPasskeys, renamePasskey, removePasskey,
  enrollmentOffer, dismissEnrollment,
} = defaultClient;
