//! The Slipway portal: the server-rendered site and JSON API (accounts so far; projects, groups,
//! courses and admin follow), the mail queue and its worker, and `slipway up`, which runs the
//! embedded shape on one machine (private PostgreSQL and Redis when none are configured).
//!
//! Layers point one way: `startup` and `cli` wire adapters (`db`, `cache`, `mail`, `services`)
//! to the pure modules (`domain`, `config` validation, `i18n`, `crypto`).

pub mod access;
pub mod accounts;
pub mod audit;
pub mod build_worker;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod courses;
pub mod crypto;
pub mod custom_domains;
pub mod db;
pub mod deploys;
pub mod domain;
pub mod error;
pub mod git_sources;
pub mod groups;
pub mod i18n;
pub mod mail;
pub mod monitor;
pub mod projects;
pub mod quotas;
pub mod routes;
pub mod secrets;
pub mod services;
pub mod startup;
pub mod state;
pub mod web;

/// Makes rustls' ring provider the process default (one TLS stack for reqwest and lettre).
/// Safe to call more than once.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
