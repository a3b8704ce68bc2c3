//! Pieces the pages are built from. Each takes the shared [`crate::live::Live`] context.

mod alarms;
mod api_tokens;
mod chart_figure;
mod charts;
mod command_form;
mod connection_badge;
mod console;
mod controls;
mod device_card;
mod device_details;
mod first_paint;
mod online_badge;
mod remove_device;
mod shown;
mod top_bar;

pub use alarms::ActiveAlarms;
pub use api_tokens::ApiTokens;
pub use charts::{DeviceCharts, WindowPicker};
pub use command_form::{CommandForm, DeviceCommandForm, RecentCommands};
pub use connection_badge::ConnectionBadge;
pub use console::Console;
pub use controls::DeviceControls;
pub use device_card::DeviceCard;
pub use device_details::{DeviceDetails, DeviceHeader};
pub use first_paint::first_paint;
pub use online_badge::OnlineBadge;
pub use remove_device::RemoveDevice;
pub use shown::{shown, shown_or};
pub use top_bar::TopBar;
