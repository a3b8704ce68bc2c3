mod connection_badge;
mod device_list;
mod device_panel;

pub use connection_badge::ConnectionBadge;
pub use device_list::DeviceList;
pub use device_panel::DevicePanel;
