// Shared by the browser scenarios: real headless Chromium (Debian's) driven
// by playwright-core, with a CDP virtual authenticator.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { chromium } from "playwright-core";

export const BASE = process.env.E2E_BASE_URL ?? "http://localhost:18080";
export const KRATOS = process.env.E2E_KRATOS_PUBLIC ?? "http://localhost:4533";
export const KRATOS_ADMIN = process.env.E2E_KRATOS_ADMIN ?? "http://127.0.0.1:4534";
// The service's admin listener (support revoking passkeys).
export const ADMIN = process.env.E2E_ADMIN_URL ?? "http://127.0.0.1:18081";
export const OUT = process.env.E2E_OUTPUT ?? join(process.cwd(), "..", "test-output", "e2e");
export const PRIVILEGED_MAX_AGE_MS = Number(process.env.E2E_PRIVILEGED_MAX_AGE_MS ?? 30000);
export const PASSWORD = "a long demo password 7q2w";
// The demo in front of the production-configured Kratos (second factors).
export const EXISTING_BASE = process.env.E2E_EXISTING_BASE_URL ?? "http://localhost:18090";
export const EXISTING_KRATOS = process.env.E2E_EXISTING_KRATOS_PUBLIC ?? "http://localhost:4833";
export const EXISTING_KRATOS_ADMIN = process.env.E2E_EXISTING_KRATOS_ADMIN ?? "http://127.0.0.1:4834";

mkdirSync(OUT, { recursive: true });

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // Root in a container, and no background traffic on a closed network.
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/**
 * A page with a platform passkey authenticator (CTAP2, internal transport,
 * resident keys, user verification). `verifies: false` makes it fail user
 * verification, which the browser reports like a cancelled prompt.
 * `autofill: true` leaves passkey autofill (conditional mediation) on.
 * `conditionalCreate: true` leaves the browser's conditional creation (the
 * passkey upgrade after a password sign-in) as Chromium reports it.
 * `prf: true` gives the authenticator the `prf` extension (`hasPrf`).
 */
export async function pageWithAuthenticator(browser, { verifies = true, autofill = false, conditionalCreate = false, prf = false } = {}) {
  const context = await browser.newContext();
  if (!autofill) {
    // Chromium's virtual authenticator answers a conditional (autofill)
    // request at once, as if the person had picked the passkey from the
    // email field's suggestions. Scenarios about the button turn autofill
    // off; the autofill scenario keeps it on.
    await context.addInitScript(() => {
      PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    });
  }
  if (!conditionalCreate) {
    // Chromium says it can create a passkey conditionally, but with no
    // password manager acting in a headless browser such a request stays
    // pending. Scenarios not about the upgrade see a browser without it.
    await context.addInitScript(() => {
      const capabilities = PublicKeyCredential.getClientCapabilities;
      if (typeof capabilities === "function") {
        PublicKeyCredential.getClientCapabilities = async () =>
          ({ ...(await capabilities.call(PublicKeyCredential)), conditionalCreate: false });
      }
    });
  }
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: verifies,
      automaticPresenceSimulation: true,
      // The WebAuthn `prf` extension (CTAP2 hmac-secret).
      ...(prf ? { hasPrf: true } : {}),
    },
  });
  page.on("dialog", (dialog) => dialog.accept());
  return { context, page, cdp, authenticatorId };
}

export const newEmail = () => `e2e-${randomUUID().slice(0, 8)}@example.test`;

export async function screenshot(page, name) {
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Sign up through the demo page (Kratos's browser registration flow). */
export async function signUp(page, email, base = BASE) {
  await page.goto(base + "/");
  await page.click("#link-signup");
  await page.fill("#signup-email", email);
  await page.fill("#signup-password", PASSWORD);
  await page.click("#form-signup button[type=submit]");
  await page.waitForSelector("#screen-welcome:not([hidden])");
}

export async function signOut(page) {
  await page.click("#btn-signout");
  await page.waitForSelector("#screen-signin:not([hidden])");
}

export async function message(page) {
  return (await page.textContent("#message"))?.trim() ?? "";
}

export async function passkeyNames(page) {
  return page.$$eval("#passkeys .passkey-name", (nodes) => nodes.map((n) => n.textContent));
}

/** Kratos's own whoami, with the cookies the browser holds for it. */
export async function kratosWhoami(context) {
  const cookies = await context.cookies(KRATOS);
  const response = await fetch(KRATOS + "/sessions/whoami", {
    headers: { Cookie: cookies.map((c) => `${c.name}=${c.value}`).join("; ") },
  });
  const body = await response.json().catch(() => null);
  return { status: response.status, email: body?.identity?.traits?.email };
}

export async function credentials(cdp, authenticatorId) {
  return (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
}

/** CDP's base64 as WebAuthn's base64url without padding. */
export const base64url = (base64) => Buffer.from(base64, "base64").toString("base64url");

/** The Kratos identity id of the browser's session. */
export async function identityId(context) {
  const cookies = await context.cookies(KRATOS);
  const response = await fetch(KRATOS + "/sessions/whoami", {
    headers: { Cookie: cookies.map((c) => `${c.name}=${c.value}`).join("; ") },
  });
  return (await response.json()).identity.id;
}

/**
 * Records every Signal API call the page makes into window.__signals
 * ({name, details}), then lets Chromium's own run (a recording stub where
 * Chromium has none).
 */
export async function recordSignals(context) {
  await context.addInitScript(() => {
    window.__signals = [];
    for (const name of ["signalAllAcceptedCredentials", "signalCurrentUserDetails", "signalUnknownCredential"]) {
      const original = PublicKeyCredential[name];
      PublicKeyCredential[name] = function (details) {
        window.__signals.push({ name, details: JSON.parse(JSON.stringify(details)) });
        return typeof original === "function" ? original.call(this, details) : Promise.resolve();
      };
    }
  });
}

/** The details of the page's recorded signals called `name`, oldest first. */
export async function signals(page, name) {
  return page.evaluate((n) => window.__signals.filter((s) => s.name === n).map((s) => s.details), name);
}
