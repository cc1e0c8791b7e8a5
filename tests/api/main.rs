//! One integration binary: every file is an endpoint group.

mod helpers;

mod admin;
mod architecture;
mod dashboards;
mod demo;
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
mod registration;
mod related_origins;
mod scale;
mod secrets;
mod signals;
mod store;
mod upgrade;
mod well_known;
