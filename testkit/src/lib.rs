//! Shared by kratos-passkeys's integration tests and its load tool.

pub mod authenticator;
pub mod kratos_flow;
pub mod load;

pub use authenticator::{
    as_none_attestation, as_packed_attestation, b64, prf_output, rewrite_auth_data,
    rewrite_client_data, strip_prf_results, unb64, Authenticator, Remembered,
};
