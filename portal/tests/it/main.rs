//! The portal's one integration-test binary: real PostgreSQL (a fresh database per test), real
//! Redis (a key prefix per test), a real SMTP server (Debian's aiosmtpd) where mail is tested,
//! and the real `slipway` binary for the command-line tests.

mod access;
mod accounts;
mod api;
mod audit;
mod cli;
mod cli_deploy;
mod cli_groups;
mod cluster;
mod courses;
mod custom_domains;
mod deploys;
mod git_deploy;
mod groups;
mod helpers;
mod hostile;
mod hostile_zips;
mod lifecycle;
mod mail;
mod migrations;
mod monitor;
mod outbound;
mod permissions;
mod projects;
mod quotas;
mod scaling;
mod templates;
mod terminal;
mod tiers;
mod vault;
