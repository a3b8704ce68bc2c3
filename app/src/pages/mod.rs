pub mod device;
pub mod overview;
