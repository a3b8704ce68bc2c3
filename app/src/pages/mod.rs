pub mod alarms;
pub mod device;
pub mod login;
pub mod overview;
pub mod tokens;
