//! One integration binary: every file is an endpoint group.

mod helpers;

mod admin;
mod demo;
mod enrollment;
mod hardening;
mod health;
mod login;
mod passkeys;
mod registration;
mod store;
mod openapi;
