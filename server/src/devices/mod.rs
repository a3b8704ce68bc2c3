//! Everything that talks to devices. The transports do I/O only and hand each line to the
//! device's [`session::DeviceSession`], which parses it ([`crate::protocol`]), records it in the
//! [`crate::registry`] and queues it for the [`crate::storage`] writer:
//!
//! - [`websocket`]: `/ws/device`, frames of text lines;
//! - [`tcp`]: raw TCP (`--tcp-listen`), lines or `|START|…|END|` frames;
//! - [`serial`]: serial ports (`--serial`), read like raw TCP;
//! - [`mqtt`]: a broker's topics (`--mqtt-url`): the bridge hands each device its messages;
//! - [`stream`]: what raw TCP and serial share: the decoder of a byte stream and the writer
//!   back;
//! - [`conversation`]: the one loop every connection runs (input, commands out, keepalive,
//!   shutdown); each transport plugs in as its `Wire`.
//!
//! Every connection holds one [`DeviceContext`] (an `Arc`): the registry, the store, the token
//! check, the limits and the shutdown signal. Nothing here sees the rest of the server's state
//! or settings; a transport's own flags are its own `*Args` group.

pub mod context;
pub mod conversation;
pub mod mqtt;
pub mod serial;
pub mod session;
pub mod stream;
pub mod tcp;
pub mod websocket;

pub use context::{DeviceArgs, DeviceContext, DeviceLimits};
