mod command_form;
mod connection_badge;
mod console;
mod device_list;
mod device_panel;

pub use command_form::{CommandForm, RecentCommands};
pub use connection_badge::ConnectionBadge;
pub use console::Console;
pub use device_list::DeviceList;
pub use device_panel::DevicePanel;
