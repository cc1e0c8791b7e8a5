// Mirrors migrations/. `tests/api/store.rs` selects every column from a
// migrated database, and the endpoint tests round-trip every table.

diesel::table! {
    identities (identity_id) {
        identity_id -> Uuid,
        user_handle -> Uuid,
        registered_at -> Nullable<Timestamptz>,
        enrollment_dismissed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        user_name -> Nullable<Text>,
        display_name -> Nullable<Text>,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Uuid,
        identity_id -> Uuid,
        credential_id -> Bytea,
        credential -> Jsonb,
        name -> Text,
        aaguid -> Uuid,
        transports -> Array<Text>,
        backup_eligible -> Bool,
        backup_state -> Bool,
        sign_count -> Int8,
        flagged_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        user_handle -> Bytea,
        unconfirmed_user_handles -> Array<Bytea>,
        prf_enabled -> Nullable<Bool>,
        prf_salt -> Nullable<Bytea>,
    }
}

diesel::table! {
    consumed_ceremonies (challenge) {
        challenge -> Bytea,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    minted_sessions (id) {
        kratos_session_id -> Nullable<Uuid>,
        identity_id -> Uuid,
        passkey_id -> Nullable<Uuid>,
        delivery -> Text,
        created_at -> Timestamptz,
        id -> Uuid,
        recovery_flow_id -> Nullable<Uuid>,
        state -> Text,
        client_ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        passkey_name -> Nullable<Text>,
    }
}

diesel::table! {
    events (seq) {
        seq -> Int8,
        id -> Uuid,
        #[sql_name = "type"]
        kind -> Text,
        identity_id -> Uuid,
        occurred_at -> Timestamptz,
        payload -> Jsonb,
        settled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    event_deliveries (event_seq, endpoint) {
        event_seq -> Int8,
        endpoint -> Text,
        identity_id -> Uuid,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    passkey_attestations (passkey_id) {
        passkey_id -> Uuid,
        format -> Text,
        aaguid -> Uuid,
        description -> Text,
        certification -> Nullable<Text>,
        metadata_no -> Int4,
        revoked_at -> Nullable<Timestamptz>,
        revoked_status -> Nullable<Text>,
        acted_status -> Nullable<Text>,
    }
}

diesel::table! {
    authenticator_metadata (no) {
        no -> Int4,
        blob -> Text,
        sha256 -> Bytea,
        next_update -> Date,
        stored_at -> Timestamptz,
    }
}

diesel::joinable!(passkeys -> identities (identity_id));
diesel::joinable!(passkey_attestations -> passkeys (passkey_id));
diesel::joinable!(event_deliveries -> events (event_seq));
diesel::allow_tables_to_appear_in_same_query!(
    identities,
    passkeys,
    consumed_ceremonies,
    minted_sessions,
    events,
    event_deliveries,
    passkey_attestations,
    authenticator_metadata
);
