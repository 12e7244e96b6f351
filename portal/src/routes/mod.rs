//! URL map: the JSON API under `/api/v1` (registered first), server-rendered pages at the root.

pub mod api;
pub mod pages;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(api::configure).configure(pages::configure);
}
