//! One integration binary: every file is an endpoint group.

mod helpers;

mod admin;
mod architecture;
mod attestation;
mod dashboards;
mod demo;
mod docs;
mod durable;
mod enrollment;
mod events;
mod existing_kratos;
mod faults;
mod hardening;
mod health;
mod login;
mod login_accounting;
mod login_limits;
mod migration;
mod openapi;
mod passkeys;
mod policy;
mod prf;
mod registration;
mod related_origins;
mod scale;
mod secrets;
mod signals;
mod store;
mod tracing;
mod upgrade;
mod well_known;
