// Types for @kratos-passkeys/client (index.js): the browser client of
// kratos-passkeys, also served by the service at /passkeys/client.js.

/**
 * Every error id the service answers with (the table of docs/src/error-ids.md).
 * The admin-only ones (`session_not_minted`, `webhook_unauthorized`,
 * `admin_unauthorized`) are listed too, so the union is the service's whole
 * vocabulary.
 */
export type ServiceErrorId =
  | "session_required"
  | "session_aal2_required"
  | "session_refresh_required"
  | "origin_not_allowed"
  | "malformed_request"
  | "unsupported_media_type"
  | "body_too_large"
  | "invalid_passkey_name"
  | "prf_salt_invalid"
  | "prf_needs_identifier"
  | "prf_disabled"
  | "prf_output_present"
  | "ceremony_not_found"
  | "ceremony_expired"
  | "origin_mismatch"
  | "rp_id_mismatch"
  | "challenge_mismatch"
  | "user_verification_missing"
  | "user_presence_missing"
  | "resident_key_missing"
  | "attachment_mismatch"
  | "signature_invalid"
  | "attestation_invalid"
  | "attestation_required"
  | "authenticator_not_allowed"
  | "authenticator_not_certified"
  | "authenticator_revoked"
  | "credential_invalid"
  | "user_handle_mismatch"
  | "user_handle_missing"
  | "credential_already_registered"
  | "passkey_name_taken"
  | "passkey_limit_reached"
  | "passkey_not_found"
  | "last_sign_in_method"
  | "credential_unknown"
  | "credential_cloned"
  | "signature_counter_behind"
  | "identity_inactive"
  | "identity_not_found"
  | "session_not_minted"
  | "webhook_unauthorized"
  | "admin_unauthorized"
  | "rate_limited"
  | "not_found"
  | "method_not_allowed"
  | "kratos_unavailable"
  | "kratos_error"
  | "kratos_mint_failed"
  | "database_unavailable"
  | "internal_error";

/** The ids the client itself throws with. */
export type ClientErrorId =
  /** `fetch` failed: the service could not be reached. */
  | "network_error"
  /** The service answered an error without an id (a proxy's page, say). */
  | "unexpected_response"
  /** The browser refused the WebAuthn call for a reason other than a cancelled prompt. */
  | "browser_error"
  /** `addPasskey`: this authenticator already holds a passkey for the person (`InvalidStateError`). */
  | "passkey_exists";

/** Every id a `PasskeyError` can carry. */
export type PasskeyErrorId = ServiceErrorId | ClientErrorId;

/** The service's error body: `{"error": {...}, "redirect_browser_to"?}`. */
export interface ServiceErrorBody {
  error: {
    id: ServiceErrorId;
    code: number;
    status: string;
    reason: string;
    message: string;
  };
  redirect_browser_to?: string;
}

/** A refusal from kratos-passkeys (or the network, or the browser), with a stable `id`. */
export class PasskeyError extends Error {
  constructor(
    id: PasskeyErrorId,
    message: string,
    details?: { status?: number; redirectTo?: string | null; body?: unknown },
  );
  name: "PasskeyError";
  /** The stable id to branch on. */
  id: PasskeyErrorId;
  /** The HTTP status; 0 when the error did not come from an answer. */
  status: number;
  /** `redirect_browser_to` of the answer (Kratos's re-authentication or aal2 login). */
  redirectTo: string | null;
  /**
   * The service's parsed error body (`ServiceErrorBody`, or null when the
   * answer was not JSON), or the browser's / network's error.
   */
  body: unknown;
}

/**
 * The passkey's provider icon for light and dark backgrounds: paths on the
 * service (`/passkeys/authenticators/{aaguid}/icon/{theme}`; prefix them
 * with `baseUrl` for a service on another origin). A neutral key icon when
 * the provider is unknown.
 */
export interface PasskeyIcon {
  light: string;
  dark: string;
}

/** One passkey, as the service shows it. */
export interface Passkey {
  id: string;
  name: string;
  /** The WebAuthn credential id, base64url without padding. */
  credential_id: string;
  /** RFC 3339. */
  created_at: string;
  /** RFC 3339; null until first used. */
  last_used_at: string | null;
  aaguid: string;
  /** The provider's name from the AAGUID, when known. */
  authenticator: string | null;
  icon: PasskeyIcon;
  backup_eligible: boolean;
  /** Synced to a cloud account. */
  backup_state: boolean;
  transports: string[];
  /** Disabled after its signature counter went backwards (possible clone); cannot sign in. */
  disabled: boolean;
  /** Can derive PRF secrets (the browser said so when it was added); null: not said. */
  prf_enabled: boolean | null;
}

/** A PRF salt: a string is taken as UTF-8 text; bytes as they are (1 to 64 bytes). */
export type PrfSalt = string | ArrayBuffer | ArrayBufferView;

export interface PrfValues {
  first: PrfSalt;
  second?: PrfSalt;
}

/** The PRF outputs: 32 bytes each, only ever in the page's JavaScript. */
export interface PrfResults {
  first: ArrayBuffer;
  second?: ArrayBuffer;
}

/** What the browser reported of PRF for a ceremony. */
export interface PrfReport {
  /** At registration: whether the passkey can do PRF; null when not said. */
  enabled: boolean | null;
  /** The outputs, when salts were evaluated; null otherwise. */
  results: PrfResults | null;
}

/** `addPasskey()` with `prf`: the passkey and what the browser said of PRF. */
export interface PasskeyWithPrf extends Passkey {
  prf: PrfReport;
}

/** The person as their passkeys know them. */
export interface PasskeyUser {
  /** The WebAuthn user handle, base64url without padding. */
  id: string;
  name: string;
  display_name: string;
}

/** What `listPasskeys()` resolves to (`GET /passkeys`). */
export interface PasskeyList {
  /** The relying party id the passkeys belong to. */
  rp_id: string;
  /** Null for a person who never had a passkey. */
  user: PasskeyUser | null;
  /** Newest first. */
  passkeys: Passkey[];
}

/** What `loginWithPasskey()` resolves to. */
export interface LoginResult {
  identityId: string;
  /** Only with `session: "token"`. */
  sessionToken: string | null;
  /** Kratos's session object, only with `includeSession: true`. */
  session: Record<string, unknown> | null;
  /** Set when Kratos issued the session at aal1 and wants the person's second factor. */
  secondFactor: SecondFactor | null;
  /** Only with `prf`: the outputs for the salts asked (they never left the browser). */
  prf?: PrfReport;
}

/** What `signIn()` resolves to. */
export type SignInResult =
  | { status: "signed_in"; login: LoginResult }
  /** Immediate sign-in: no passkey on this device (or the person dismissed it). */
  | { status: "no_passkey" }
  /** The modal prompt was closed. */
  | { status: "cancelled" }
  /** Immediate sign-in unsupported and `fallback: "return"`. */
  | { status: "unsupported" };

export interface SignInOptions {
  /** `"immediate"` (default): the prompt only when this device has a passkey. */
  mediation?: "immediate" | "modal";
  /** Where immediate sign-in is unsupported: `"modal"` (default) prompts as today; `"return"` resolves `{status: "unsupported"}`. */
  fallback?: "modal" | "return";
  session?: "cookie" | "token";
  includeSession?: boolean;
  prf?: LoginPrfOptions;
  signal?: AbortSignal;
}

export interface LoginPrfOptions {
  /** The application's salts, for whichever passkey answers. */
  eval?: PrfValues;
  /** Each passkey's own salt kept by the service (needs `identifier`). */
  byCredential?: boolean;
}

export interface SecondFactor {
  /** Kratos's aal2 browser login. */
  redirectBrowserTo: string;
  /** Kratos's aal2 API login, for token clients. */
  apiLoginUrl: string;
}

/** The service's answer to a login verify (passed to an `onSecondFactorRequired` function). */
export interface LoginVerifyAnswer {
  identity_id: string;
  session_token?: string;
  session?: Record<string, unknown>;
  second_factor?: { redirect_browser_to: string; api_login_url: string };
}

export interface EnrollmentOffer {
  /** Whether to offer "set up a passkey" now. */
  offer: boolean;
  /** How many passkeys the person has. */
  passkeys: number;
}

/** A credential descriptor in WebAuthn's JSON form (id in base64url). */
export interface CredentialDescriptorJSON {
  type: "public-key";
  id: string;
  transports?: string[];
}

/** `publicKey` of `POST /passkeys/registration/options`: WebAuthn's creation options JSON. */
export interface CreationOptionsJSON {
  rp: { id?: string; name: string };
  user: { id: string; name: string; displayName: string };
  challenge: string;
  pubKeyCredParams: { type: "public-key"; alg: number }[];
  timeout?: number;
  excludeCredentials?: CredentialDescriptorJSON[];
  authenticatorSelection?: {
    authenticatorAttachment?: string;
    residentKey?: string;
    requireResidentKey?: boolean;
    userVerification?: string;
  };
  hints?: string[];
  attestation?: string;
  extensions?: Record<string, unknown>;
}

/** `publicKey` of `POST /passkeys/login/options`: WebAuthn's request options JSON. */
export interface RequestOptionsJSON {
  challenge: string;
  rpId?: string;
  timeout?: number;
  allowCredentials?: CredentialDescriptorJSON[];
  userVerification?: string;
  hints?: string[];
  extensions?: Record<string, unknown>;
}

/** A PublicKeyCredential in WebAuthn's JSON form (`toJSON()`), binary fields in base64url. */
export interface CredentialJSON {
  id: string;
  rawId: string;
  type: string;
  authenticatorAttachment: string | null;
  clientExtensionResults: Record<string, unknown>;
  response: {
    clientDataJSON: string;
    /** Registration. */
    attestationObject?: string;
    transports?: string[];
    /** Login. */
    authenticatorData?: string;
    signature?: string;
    userHandle?: string;
  };
}

export interface AddPasskeyOptions {
  /** 1 to 64 characters; without it the passkey is named after its provider. */
  name?: string;
  /** Resolve with `prf` (whether the passkey can do PRF); `eval` also asks for outputs now, which some authenticators give. */
  prf?: { eval?: PrfValues };
}

export interface UpgradeToPasskeyOptions {
  /** 1 to 64 characters; without it the passkey is named after its provider. */
  name?: string;
  /** Ends a pending conditional creation (it then resolves to null). */
  signal?: AbortSignal;
}

export interface LoginOptions {
  /** Start the login for one account (its passkeys in `allowCredentials`). */
  identifier?: string;
  /** `"conditional"`: the autofill request on the username field. */
  mediation?: "conditional";
  /** `"cookie"` (default, browsers) or `"token"` (apps). */
  session?: "cookie" | "token";
  /** Ask for Kratos's session object in the answer. */
  includeSession?: boolean;
  /** Aborts the request (mostly for the conditional one). */
  signal?: AbortSignal;
  /** PRF salts; the result's `prf.results` has the outputs. */
  prf?: LoginPrfOptions;
}

export interface ClientOptions {
  /** Where the service's public listener is; "" (default) is the page's origin. */
  baseUrl?: string;
  /**
   * `session_refresh_required`: follow Kratos's re-authentication
   * (`"redirect"`, default), throw the PasskeyError (`"throw"`), or call a
   * function with the redirect URL (then throw).
   */
  onRefreshRequired?: "redirect" | "throw" | ((url: string, error: PasskeyError) => void);
  /**
   * Kratos wants the person's second factor (a cookie login answered with
   * `second_factor`, or `session_aal2_required` from any call): follow
   * Kratos's aal2 login (`"redirect"`, default); `"return"`: the login
   * resolves with `secondFactor` and calls throw; or a function called with
   * the redirect URL.
   */
  onSecondFactorRequired?:
    | "redirect"
    | "return"
    | ((url: string, detail: PasskeyError | LoginVerifyAnswer) => void);
}

export interface PasskeysClient {
  /** Adds a passkey for the signed-in person. Resolves to the passkey, or null if the prompt was cancelled. */
  addPasskey(options: AddPasskeyOptions & { prf: { eval?: PrfValues } }): Promise<PasskeyWithPrf | null>;
  addPasskey(options?: AddPasskeyOptions): Promise<Passkey | null>;
  /**
   * Right after a password sign-in or sign-up: asks the password manager to
   * create a passkey without a dialog. Resolves to the passkey, or null
   * (unsupported, declined, refused, aborted). Never rejects, never
   * redirects. A pending one is ended by `addPasskey` and `loginWithPasskey`
   * (the browser runs one WebAuthn request at a time).
   */
  upgradeToPasskey(options?: UpgradeToPasskeyOptions): Promise<Passkey | null>;
  /** Signs in with a passkey; resolves to null if the prompt was cancelled. */
  loginWithPasskey(options?: LoginOptions): Promise<LoginResult | null>;
  /** A "Sign in" button: immediate sign-in, "no passkey on this device", or the caller's fallback. */
  signIn(options?: SignInOptions): Promise<SignInResult>;
  /** Aborts a pending autofill (conditional) login. */
  abortAutofill(): void;
  /**
   * The person's passkeys, the relying party id and the WebAuthn user.
   * Signals the accepted credentials (and a changed name) to the passkey
   * provider where the browser supports it.
   */
  listPasskeys(): Promise<PasskeyList>;
  renamePasskey(id: string, name: string): Promise<Passkey>;
  /**
   * Removes a passkey, then signals the remaining ones where the browser
   * supports it. Rejects with `last_sign_in_method` (409) when it is the
   * person's last way to sign in (no other passkey, and no password, social
   * sign-in or code login in Kratos): the passkey is kept; ask them to add a
   * password or another passkey first.
   */
  removePasskey(id: string): Promise<void>;
  enrollmentOffer(): Promise<EnrollmentOffer>;
  /** Records "Skip for now". */
  dismissEnrollment(): Promise<void>;
}

/** Makes a client for a kratos-passkeys deployment. */
export function createClient(options?: ClientOptions): PasskeysClient;

/** True when the browser can run WebAuthn at all. */
export function passkeysSupported(): boolean;
/** True when the browser can offer passkeys in the username field's autofill. */
export function autofillSupported(): Promise<boolean>;
/** True when `PublicKeyCredential.getClientCapabilities()` says `conditionalCreate`. */
export function conditionalCreateSupported(): Promise<boolean>;

/** An ArrayBuffer or view as base64url without padding. */
export function toBase64url(buffer: ArrayBuffer | ArrayBufferView): string;
/** base64url (with or without padding) as an ArrayBuffer. */
export function fromBase64url(text: string): ArrayBuffer;
/** The service's creation options JSON as `navigator.credentials.create()` takes them. */
export function parseCreationOptions(json: CreationOptionsJSON): PublicKeyCredentialCreationOptions;
/** The service's request options JSON as `navigator.credentials.get()` takes them. */
export function parseRequestOptions(json: RequestOptionsJSON): PublicKeyCredentialRequestOptions;
/** A PublicKeyCredential as the JSON the service verifies. */
export function credentialToJSON(credential: PublicKeyCredential): CredentialJSON;
/** The credential JSON without `clientExtensionResults.prf.results`. */
export function withoutPrfOutputs(json: CredentialJSON): CredentialJSON;
/** A PRF salt as base64url (a string is UTF-8 text). */
export function prfSalt(salt: PrfSalt): string;
/** `getClientCapabilities().immediateGet`. */
export function immediateSupported(): Promise<boolean>;
/** `signIn()`'s status when immediate sign-in found no passkey here. */
export const NO_PASSKEY: "no_passkey";

// The default client (same origin, default policies).
export const addPasskey: PasskeysClient["addPasskey"];
export const upgradeToPasskey: PasskeysClient["upgradeToPasskey"];
export const loginWithPasskey: PasskeysClient["loginWithPasskey"];
export const signIn: PasskeysClient["signIn"];
export const abortAutofill: PasskeysClient["abortAutofill"];
export const listPasskeys: PasskeysClient["listPasskeys"];
export const renamePasskey: PasskeysClient["renamePasskey"];
export const removePasskey: PasskeysClient["removePasskey"];
export const enrollmentOffer: PasskeysClient["enrollmentOffer"];
export const dismissEnrollment: PasskeysClient["dismissEnrollment"];
