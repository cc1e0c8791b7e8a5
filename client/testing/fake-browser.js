// A browser made of plain objects for the client's unit tests (node --test):
// fetch answered from a table, navigator.credentials, PublicKeyCredential
// with the Signal API and getClientCapabilities, localStorage, location.
// Everything the client calls is recorded. No real browser, no network.

const encoder = new TextEncoder();
export const bytes = (text) => encoder.encode(text).buffer;

function define(name, value) {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
}

/** A registration (create) credential without toJSON(): the fallback path. */
export function fakeRegistration(id = "cred-1") {
  return {
    id,
    rawId: bytes(id),
    type: "public-key",
    authenticatorAttachment: "platform",
    getClientExtensionResults: () => ({ credProps: { rk: true } }),
    response: {
      clientDataJSON: bytes('{"type":"webauthn.create"}'),
      attestationObject: bytes("attestation"),
      getTransports: () => ["internal", "hybrid"],
    },
  };
}

/** A login (get) credential without toJSON(). */
export function fakeAssertion(id = "cred-1", userHandle = "user-1") {
  return {
    id,
    rawId: bytes(id),
    type: "public-key",
    authenticatorAttachment: "platform",
    getClientExtensionResults: () => ({}),
    response: {
      clientDataJSON: bytes('{"type":"webauthn.get"}'),
      authenticatorData: bytes("authdata"),
      signature: bytes("signature"),
      userHandle: userHandle === null ? null : bytes(userHandle),
    },
  };
}

export const REGISTRATION_OPTIONS = {
  ceremony_id: "ceremony-r",
  publicKey: {
    rp: { id: "localhost", name: "kratos-passkeys" },
    user: { id: "dXNlci0x", name: "ada@example.com", displayName: "Ada" },
    challenge: "Y2hhbGxlbmdl",
    pubKeyCredParams: [{ type: "public-key", alg: -7 }],
    excludeCredentials: [{ type: "public-key", id: "b2xk" }],
  },
};

export const LOGIN_OPTIONS = {
  ceremony_id: "ceremony-l",
  publicKey: { challenge: "Y2hhbGxlbmdl", rpId: "localhost", allowCredentials: [] },
};

export const refusal = (status, id, extra = {}) => ({
  status,
  body: { error: { id, code: status, status: "Refused", reason: id, message: `refused: ${id}` }, ...extra },
});

/**
 * Installs the fake browser on globalThis and answers `routes`
 * ({"METHOD /path": {status, body} | (init) => {status, body} | Error}).
 * `capabilities`: what getClientCapabilities answers (null: the function
 * is absent). `signals`: whether the Signal API functions exist.
 */
export function installBrowser({
  routes = {},
  capabilities = { conditionalCreate: true },
  signals = true,
  create = async () => fakeRegistration(),
  get = async () => fakeAssertion(),
  storage = "memory",
} = {}) {
  const env = { requests: [], signals: [], creates: [], gets: [], assigned: [], debug: [], routes };

  define("fetch", async (url, init = {}) => {
    const request = { url, method: init.method ?? "GET", init, body: init.body ? JSON.parse(init.body) : undefined };
    env.requests.push(request);
    let answer = env.routes[`${request.method} ${new URL(url, "http://localhost").pathname}`];
    if (typeof answer === "function") answer = await answer(request);
    if (answer instanceof Error) throw answer;
    if (!answer) answer = { status: 404, body: { error: { id: "not_found", message: "no such route" } } };
    const text = answer.raw ?? (answer.body === undefined ? null : JSON.stringify(answer.body));
    return new Response(answer.status === 204 ? null : text, {
      status: answer.status ?? 200,
      statusText: answer.statusText ?? "",
    });
  });

  class PublicKeyCredential {}
  if (capabilities !== null) {
    PublicKeyCredential.getClientCapabilities = async () => capabilities;
  }
  PublicKeyCredential.isConditionalMediationAvailable = async () => true;
  if (signals) {
    for (const name of ["signalAllAcceptedCredentials", "signalCurrentUserDetails", "signalUnknownCredential"]) {
      PublicKeyCredential[name] = async (details) => { env.signals.push([name, details]); };
    }
  }
  define("PublicKeyCredential", PublicKeyCredential);
  env.PublicKeyCredential = PublicKeyCredential;

  define("navigator", {
    credentials: {
      create: async (options) => { env.creates.push(options); return create(options); },
      get: async (options) => { env.gets.push(options); return get(options); },
    },
  });

  const store = new Map();
  env.storage = store;
  define("localStorage", storage === "memory"
    ? {
        getItem: (key) => (store.has(key) ? store.get(key) : null),
        setItem: (key, value) => { store.set(key, String(value)); },
        removeItem: (key) => { store.delete(key); },
      }
    : storage);

  define("location", { hostname: "localhost", assign: (url) => { env.assigned.push(url); } });
  // The client logs quiet outcomes with console.debug; keep them, not print them.
  const original = console.debug;
  console.debug = (...args) => { env.debug.push(args); };
  env.restore = () => { console.debug = original; };
  return env;
}

/** Lets queued promise callbacks (the fire-and-forget signals) run. */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
