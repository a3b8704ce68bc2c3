//! The hub's HTTPS certificate: the one it serves ([`ServedCertificate`], from files or from an
//! ACME certificate authority), and how an ACME certificate is obtained, kept in the data
//! folder and renewed (`--acme-domain`).
//!
//! The path of a certificate: [`acme`] asks the CA for one, answering its TLS-ALPN-01
//! challenge through the [`ServedCertificate`] the HTTPS listener already uses; [`files`]
//! keeps it (and the ACME account) in the data folder; [`renewal`] says when to ask again.

pub mod acme;
mod files;
pub mod renewal;
mod served;

pub use served::{certified_key, ServedCertificate, ACME_TLS_ALPN};
