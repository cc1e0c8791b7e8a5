// The kratos-passkeys demo page: Kratos for sign-up, password sign-in,
// re-authentication and sign-out (its public API, from the browser), and
// /passkeys/client.js for everything about passkeys.

import {
  PasskeyError, addPasskey, autofillSupported, dismissEnrollment, enrollmentOffer,
  listPasskeys, loginWithPasskey, passkeysSupported, removePasskey, renamePasskey, signIn,
  upgradeToPasskey,
} from "/passkeys/client.js";

const config = await (await fetch("/demo/config.json")).json();
const KRATOS = config.kratos_url.replace(/\/$/, "");
const $ = (id) => document.getElementById(id);
// What to do after Kratos's re-authentication brings the person back.
const PENDING = "kratos-passkeys-demo:pending";

// --- Kratos, as a browser app talks to it -----------------------------------

async function kratos(path, { method = "GET", body } = {}) {
  const response = await fetch(KRATOS + path, {
    method,
    credentials: "include",
    headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : null };
}

const csrfToken = (flow) =>
  flow.ui.nodes.find((n) => n.attributes?.name === "csrf_token")?.attributes.value;

// Kratos puts validation problems on the flow's UI nodes and messages.
function kratosProblem(flow) {
  const texts = [...(flow?.ui?.messages ?? []), ...(flow?.ui?.nodes ?? []).flatMap((n) => n.messages ?? [])]
    .filter((m) => m.type === "error")
    .map((m) => m.text);
  return texts.join(" ") || flow?.error?.reason || flow?.error?.message || "Something went wrong. Please try again.";
}

async function whoami() {
  const { status, data } = await kratos("/sessions/whoami");
  if (status === 403 && data?.redirect_browser_to) {
    // Signed in, but Kratos wants the second factor first: its aal2 login.
    window.location.assign(data.redirect_browser_to);
    return new Promise(() => {});
  }
  return status === 200 ? data : null;
}

// --- screens and messages ---------------------------------------------------

const screens = ["loading", "signin", "signup", "welcome", "refresh", "aal2", "home"];
function show(name) {
  for (const s of screens) $(`screen-${s}`).hidden = s !== name;
}

function say(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = !text;
}

// Our error ids, in words a person understands.
const WORDS = {
  credential_unknown: "This passkey is no longer registered here. It may have been removed. Sign in with your password instead.",
  credential_cloned: "This passkey has been disabled for your protection. Sign in with your password instead.",
  identity_inactive: "This account is disabled.",
  identity_not_found: "This account no longer exists.",
  ceremony_expired: "That took too long. Please try again.",
  ceremony_not_found: "That attempt is no longer valid. Please try again.",
  passkey_exists: "This device already has a passkey for your account.",
  passkey_name_taken: "You already have a passkey with that name.",
  last_sign_in_method: "This passkey is your only way to sign in, so it was kept. Set a password or add another passkey first, then remove it.",
  invalid_passkey_name: "Please choose a name of 1 to 64 characters.",
  session_required: "Your session has ended. Please sign in again.",
  kratos_unavailable: "Sign-in is temporarily unavailable. Please try again in a moment.",
  database_unavailable: "The service is temporarily unavailable. Please try again in a moment.",
  network_error: "The service could not be reached. Check your connection and try again.",
};

function explain(error) {
  if (error instanceof PasskeyError) {
    return WORDS[error.id] ?? (error.status >= 500
      ? "Something went wrong on our side. Please try again."
      : "The passkey could not be used. Please try again.");
  }
  return "Something went wrong. Please try again.";
}

const CANCELLED = "The passkey prompt was closed before it finished. Nothing was changed; you can try again.";

async function busy(button, work) {
  button.disabled = true;
  try { return await work(); } finally { button.disabled = false; }
}

// --- signed-in home ---------------------------------------------------------

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const when = (iso) => (iso ? dateFormat.format(new Date(iso)) : "never");

async function renderHome(session) {
  const email = session.identity.traits.email;
  $("home-email").textContent = email;
  $("who").textContent = email;
  $("who").hidden = false;
  // Reading the list also tells the password manager which passkeys are
  // still valid here (the Signal API, where the browser has it).
  const [{ passkeys }, offer] = await Promise.all([listPasskeys(), enrollmentOffer()]);
  $("offer").hidden = !offer.offer;
  const list = $("passkeys");
  list.replaceChildren(...passkeys.map(passkeyRow));
  $("no-passkeys").hidden = passkeys.length > 0;
  show("home");
}

// The provider's icon (the service's neutral key when it is unknown): the
// light one, the dark one when the system prefers a dark scheme.
function passkeyIcon(passkey) {
  const picture = document.createElement("picture");
  picture.className = "passkey-icon";
  const dark = document.createElement("source");
  dark.media = "(prefers-color-scheme: dark)";
  dark.srcset = passkey.icon.dark;
  const img = document.createElement("img");
  img.src = passkey.icon.light;
  img.alt = "";
  img.width = img.height = 20;
  picture.append(dark, img);
  return picture;
}

function passkeyRow(passkey) {
  const row = $("passkey-row").content.firstElementChild.cloneNode(true);
  row.dataset.id = passkey.id;
  if (passkey.icon) row.querySelector(".passkey-main").prepend(passkeyIcon(passkey));
  row.querySelector(".passkey-name").textContent = passkey.name;
  row.querySelector(".synced").hidden = !passkey.backup_state;
  row.querySelector(".device").hidden = passkey.backup_state;
  row.querySelector(".disabled").hidden = !passkey.disabled;
  row.querySelector(".prf").hidden = passkey.prf_enabled !== true;
  const provider = passkey.authenticator ?? "Unknown provider";
  row.querySelector(".passkey-meta").textContent = [
    provider === passkey.name ? null : provider,
    `Created ${when(passkey.created_at)}`,
    `Last used ${when(passkey.last_used_at)}`,
  ].filter(Boolean).join(" · ");

  const form = row.querySelector(".rename");
  row.querySelector(".rename-btn").addEventListener("click", () => {
    form.hidden = false;
    form.elements.name.value = passkey.name;
    form.elements.name.focus();
  });
  form.querySelector(".cancel").addEventListener("click", () => { form.hidden = true; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await renamePasskey(passkey.id, form.elements.name.value);
      say("Passkey renamed.", "ok");
      await refreshHome();
    } catch (error) {
      say(explain(error), "error");
    }
  });
  row.querySelector(".remove-btn").addEventListener("click", async (event) => {
    if (!window.confirm(`Remove the passkey "${passkey.name}"? You will no longer be able to sign in with it.`)) return;
    await busy(event.currentTarget, async () => {
      try {
        sessionStorage.setItem(PENDING, JSON.stringify({ action: "remove", id: passkey.id }));
        await removePasskey(passkey.id);
        sessionStorage.removeItem(PENDING);
        say(`Removed "${passkey.name}". It can no longer be used to sign in.`, "ok");
        await refreshHome();
      } catch (error) {
        sessionStorage.removeItem(PENDING);
        say(explain(error), "error");
      }
    });
  });
  return row;
}

async function refreshHome() {
  const session = await whoami();
  if (session) await renderHome(session); else await showSignin();
}

async function setUpPasskey(button) {
  await busy(button, async () => {
    say("");
    try {
      // Remembered in case Kratos first asks the person to confirm it's them.
      sessionStorage.setItem(PENDING, JSON.stringify({ action: "add" }));
      const passkey = await addPasskey();
      sessionStorage.removeItem(PENDING);
      if (passkey === null) {
        say(CANCELLED, "info");
      } else {
        say(`Passkey added${passkey.authenticator ? ` (${passkey.authenticator})` : ""}. Next time, sign in with it.`, "ok");
      }
    } catch (error) {
      sessionStorage.removeItem(PENDING);
      say(explain(error), "error");
    }
    await refreshHome();
  });
}

// --- signed out ---------------------------------------------------------------

let autofill = null;

async function showSignin() {
  $("who").hidden = true;
  show("signin");
  // Offer passkeys in the email field's autofill where the browser can.
  if (!autofill && (await autofillSupported())) {
    autofill = loginWithPasskey({ mediation: "conditional" })
      .then((result) => result && signedInWithPasskey(result))
      .catch((error) => say(explain(error), "error"))
      .finally(() => { autofill = null; });
  }
}

async function signedInWithPasskey() {
  // The relayed cookie is Kratos's own: Kratos answers the session.
  const session = await whoami();
  if (!session) return say("Signed in, but Kratos did not answer with the session.", "error");
  say(`Signed in with a passkey. Welcome back, ${session.identity.traits.email}.`, "ok");
  await renderHome(session);
}

async function passwordSignin(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form.querySelector("button"), async () => {
    const flow = await kratos("/self-service/login/browser");
    const { status, data } = await kratos(`/self-service/login?flow=${flow.data.id}`, {
      method: "POST",
      body: { method: "password", identifier: form.elements.identifier.value,
              password: form.elements.password.value, csrf_token: csrfToken(flow.data) },
    });
    if (status !== 200) return say(kratosProblem(data), "error");
    form.reset();
    say("");
    await renderHome(data.session);
    upgradeAfterPassword();
  });
}

// Right after a password sign-in or sign-up: where the browser can, the
// password manager creates a passkey without asking (conditional creation).
// Elsewhere nothing happens: no prompt, no request.
async function upgradeAfterPassword() {
  const passkey = await upgradeToPasskey();
  if (!passkey) return;
  say(`Your password manager created a passkey${passkey.authenticator ? ` (${passkey.authenticator})` : ""}. Next time, sign in with it.`, "ok");
  await refreshHome();
}

async function signup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form.querySelector("button"), async () => {
    const flow = await kratos("/self-service/registration/browser");
    const { status, data } = await kratos(`/self-service/registration?flow=${flow.data.id}`, {
      method: "POST",
      body: { method: "password", traits: { email: form.elements.email.value },
              password: form.elements.password.value, csrf_token: csrfToken(flow.data) },
    });
    if (status !== 200) return say(kratosProblem(data), "error");
    form.reset();
    say("");
    $("who").textContent = data.identity.traits.email;
    $("who").hidden = false;
    show("welcome");
    upgradeAfterPassword();
  });
}

// Kratos's aal2 login (after a passkey, for a person with a second factor)
// sends the browser here with ?flow=…: ask for the TOTP code.
function secondFactorFlow(flow) {
  show("aal2");
  $("aal2-code").focus();
  $("form-aal2").onsubmit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    await busy(form.querySelector("button"), async () => {
      const answer = await kratos(`/self-service/login?flow=${flow.id}`, {
        method: "POST",
        body: { method: "totp", totp_code: form.elements.totp_code.value, csrf_token: csrfToken(flow) },
      });
      if (answer.status === 422 && answer.data?.redirect_browser_to) {
        return window.location.assign(answer.data.redirect_browser_to);
      }
      if (answer.status !== 200) return say(kratosProblem(answer.data), "error");
      form.reset();
      say(`Signed in. Welcome back, ${answer.data.session.identity.traits.email}.`, "ok");
      await renderHome(answer.data.session);
    });
  };
}

// Kratos's login flows send the browser back here with ?flow=…: the
// second factor (aal2), or re-authentication (`refresh=true`): confirm the
// password, then finish what was started.
async function loginFlow(flowId) {
  const { status, data } = await kratos(`/self-service/login/flows?id=${encodeURIComponent(flowId)}`);
  history.replaceState(null, "", "/");
  if (status !== 200) return false;
  if (data.requested_aal === "aal2") {
    secondFactorFlow(data);
    return true;
  }
  if (!data.refresh) return false;
  const identifier = data.ui.nodes.find((n) => n.attributes?.name === "identifier")?.attributes.value ?? "";
  $("refresh-email").value = identifier;
  show("refresh");
  $("form-refresh").onsubmit = async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    await busy(form.querySelector("button"), async () => {
      const answer = await kratos(`/self-service/login?flow=${data.id}`, {
        method: "POST",
        body: { method: "password", identifier, password: form.elements.password.value,
                csrf_token: csrfToken(data) },
      });
      if (answer.status !== 200) return say(kratosProblem(answer.data), "error");
      form.reset();
      await resumePending();
    });
  };
  return true;
}

async function resumePending() {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null");
  sessionStorage.removeItem(PENDING);
  if (pending?.action === "add") {
    say("Thanks. Now create your passkey.", "info");
    await renderHome(await whoami());
    return setUpPasskey($("btn-add-passkey"));
  }
  if (pending?.action === "remove") {
    try {
      await removePasskey(pending.id);
      say("Passkey removed. It can no longer be used to sign in.", "ok");
    } catch (error) {
      say(explain(error), "error");
    }
  }
  await refreshHome();
}

async function signout(event) {
  await busy(event.currentTarget, async () => {
    const { data } = await kratos("/self-service/logout/browser");
    await kratos(`/self-service/logout?token=${encodeURIComponent(data.logout_token)}`);
    say("You have signed out.", "info");
    await showSignin();
  });
}

// --- wiring -----------------------------------------------------------------

$("form-signin").addEventListener("submit", passwordSignin);
$("form-signup").addEventListener("submit", signup);
$("link-signup").addEventListener("click", (e) => { e.preventDefault(); say(""); show("signup"); });
$("link-signin").addEventListener("click", (e) => { e.preventDefault(); say(""); showSignin(); });
$("btn-setup-passkey").addEventListener("click", (e) => setUpPasskey(e.currentTarget));
$("btn-offer-setup").addEventListener("click", (e) => setUpPasskey(e.currentTarget));
$("btn-add-passkey").addEventListener("click", (e) => setUpPasskey(e.currentTarget));
$("btn-skip").addEventListener("click", async (e) => {
  await busy(e.currentTarget, async () => {
    await dismissEnrollment();
    say("No problem. You can add a passkey any time from this page.", "info");
    await refreshHome();
  });
});
$("btn-signout").addEventListener("click", signout);
// "Sign in with a passkey": immediate sign-in where the browser has it (the
// prompt only when this device holds a passkey; otherwise the password form
// at once), today's prompt elsewhere.
$("btn-passkey-signin").addEventListener("click", async (e) => {
  await busy(e.currentTarget, async () => {
    say("");
    try {
      const result = await signIn({ mediation: "immediate", fallback: "modal" });
      if (result.status === "no_passkey") {
        say("No passkey for this site on this device: sign in with your password.", "info");
        $("form-signin").dataset.noPasskey = "true";
        $("signin-email").focus();
        return showSignin();
      }
      if (result.status !== "signed_in") {
        say(CANCELLED, "info");
        return showSignin();
      }
      await signedInWithPasskey(result.login);
    } catch (error) {
      say(explain(error), "error");
      await showSignin();
    }
  });
});

// --- the encrypted note: a key derived from the passkey's PRF output --------
//
// The passkey evaluates PRF over NOTE_SALT at a sign-in; HKDF turns the
// 32-byte output into an AES-GCM key, in this page only. The service gets
// the salt and never the output (the client strips it).

const NOTE_SALT = "kratos-passkeys demo note v1";
const NOTE_KEY = "kratos-passkeys-demo:note";
const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

async function noteKey() {
  const login = await loginWithPasskey({ prf: { eval: { first: NOTE_SALT } } });
  if (login === null) return null;
  const output = login.prf?.results?.first;
  if (!output) throw new Error("This passkey cannot derive keys (no PRF). Try another passkey.");
  const material = await crypto.subtle.importKey("raw", output, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: new TextEncoder().encode("demo note AES-GCM") },
    material, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

function showStoredNote() {
  const stored = localStorage.getItem(NOTE_KEY);
  $("note-cipher").textContent = stored ? JSON.parse(stored).ciphertext : "nothing yet";
}

$("btn-note-encrypt").addEventListener("click", async (e) => {
  await busy(e.currentTarget, async () => {
    try {
      const key = await noteKey();
      if (!key) return say(CANCELLED, "info");
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const ciphertext = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, new TextEncoder().encode($("note-text").value));
      localStorage.setItem(NOTE_KEY, JSON.stringify({ iv: b64(iv), ciphertext: b64(ciphertext) }));
      $("note-text").value = "";
      showStoredNote();
      say("Note encrypted with your passkey.", "ok");
    } catch (error) {
      say(error instanceof PasskeyError ? explain(error) : error.message, "error");
    }
  });
});

$("btn-note-decrypt").addEventListener("click", async (e) => {
  await busy(e.currentTarget, async () => {
    const stored = localStorage.getItem(NOTE_KEY);
    if (!stored) return say("There is no encrypted note yet.", "info");
    try {
      const key = await noteKey();
      if (!key) return say(CANCELLED, "info");
      const { iv, ciphertext } = JSON.parse(stored);
      const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: unb64(iv) }, key, unb64(ciphertext));
      $("note-text").value = new TextDecoder().decode(plain);
      say("Note decrypted with your passkey.", "ok");
    } catch (error) {
      say(error instanceof PasskeyError ? explain(error)
        : error?.name === "OperationError" ? "This note was encrypted with another passkey." : error.message, "error");
    }
  });
});
showStoredNote();

if (!passkeysSupported()) say("This browser cannot use passkeys; sign in with your password.", "info");

const flowId = new URLSearchParams(location.search).get("flow");
if (!(flowId && (await loginFlow(flowId)))) await refreshHome();
