//! Integration tests: the real server on port 0 with a temporary data folder, real WebSocket
//! devices, and the dashboard's server functions called over HTTP exactly as the page calls them.

// Panicking on the unexpected is what a test is for.
#![allow(clippy::unwrap_used)]

mod helpers;

mod acme;
mod alarms;
mod attacks;
mod auth;
mod cluster;
mod cluster_alarms;
mod cluster_tls;
mod devices;
mod gateway;
mod lifecycle;
mod live;
mod migration;
mod mqtt;
mod operations;
mod pages;
mod presence;
mod rest;
mod roles;
mod scale_out;
mod security;
mod serial;
mod storage;
mod tcp;
mod tls;
mod websocket;
