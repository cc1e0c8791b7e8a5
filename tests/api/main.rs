//! One integration binary: every file is an endpoint group.

mod helpers;

mod health;
mod passkeys;
