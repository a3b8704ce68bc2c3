//! Who may do what, for every route in one table: the session middleware ([`super::web`])
//! asks [`needed`] for each request and refuses (403) one whose role falls short, whether it
//! came from a page, a server function, the REST API or the live stream. The pages hide what a
//! role cannot use by asking [`app::model::Role::may`] the same question.
//!
//! Anything not named here that changes something needs an admin: a new route is closed until
//! it is given its place.

use app::api;
use app::model::Permission;
use axum::http::Method;
use leptos::server_fn::ServerFn;

/// What a request to `path` with `method` does.
pub fn needed(method: &Method, path: &str) -> Permission {
    if let Some(rest) = path.strip_prefix(crate::paths::API_V1) {
        return api_route(method, rest);
    }
    if let Some(action) = server_function(path) {
        return action;
    }
    if path == app::links::TOKENS_PAGE {
        return Permission::Administer;
    }
    if *method == Method::GET || *method == Method::HEAD {
        Permission::View
    } else {
        // Such as `POST /devices/{id}/remove`.
        Permission::Administer
    }
}

/// The dashboard's server functions, by path. One missing here needs an admin.
fn server_function(path: &str) -> Option<Permission> {
    let table: [(&str, Permission); 20] = [
        (api::LoadDashboard::PATH, Permission::View),
        (api::LiveUpdates::PATH, Permission::View),
        (api::DeviceHistory::PATH, Permission::View),
        (api::DeviceSeries::PATH, Permission::View),
        (api::SendCommand::PATH, Permission::Control),
        (api::SendConsoleLine::PATH, Permission::Control),
        (api::ListAlarmRules::PATH, Permission::View),
        (api::ListAlarms::PATH, Permission::View),
        (api::ListAutomationRuns::PATH, Permission::View),
        (api::AcknowledgeAlarm::PATH, Permission::Control),
        (api::CreateAlarmRule::PATH, Permission::Administer),
        (api::UpdateAlarmRule::PATH, Permission::Administer),
        (api::DeleteAlarmRule::PATH, Permission::Administer),
        (api::ListDeviceTokens::PATH, Permission::Administer),
        (api::CreateDeviceToken::PATH, Permission::Administer),
        (api::RevokeDeviceToken::PATH, Permission::Administer),
        (api::RemoveDevice::PATH, Permission::Administer),
        (api::ListApiTokens::PATH, Permission::Administer),
        (api::CreateApiToken::PATH, Permission::Administer),
        (api::RevokeApiToken::PATH, Permission::Administer),
    ];
    if let Some((_, action)) = table.iter().find(|(known, _)| *known == path) {
        return Some(*action);
    }
    // Server functions live under one prefix: an unknown one there is closed.
    path.starts_with(app::SERVER_FN_PREFIX)
        .then_some(Permission::Administer)
}

/// `/api/v1/…` (`rest` is what follows the prefix).
fn api_route(method: &Method, rest: &str) -> Permission {
    let reading = *method == Method::GET || *method == Method::HEAD;
    if rest.starts_with("device-tokens") || rest.starts_with("api-tokens") {
        Permission::Administer
    } else if (rest == "commands" || (rest.starts_with("alarms/") && rest.ends_with("/ack")))
        && *method == Method::POST
    {
        // Commands, and acknowledging alarms.
        Permission::Control
    } else if reading {
        Permission::View
    } else {
        // Renaming or deleting devices, and anything new.
        Permission::Administer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_for_everyone_controlling_for_operators_and_the_rest_for_admins() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(needed(&get, "/"), Permission::View);
        assert_eq!(needed(&get, "/devices/7"), Permission::View);
        assert_eq!(needed(&get, "/export/7"), Permission::View);
        assert_eq!(needed(&get, "/tokens"), Permission::Administer);
        assert_eq!(needed(&post, "/devices/7/remove"), Permission::Administer);
        assert_eq!(needed(&post, api::SendCommand::PATH), Permission::Control);
        assert_eq!(needed(&post, api::LoadDashboard::PATH), Permission::View);
        assert_eq!(
            needed(&post, api::CreateDeviceToken::PATH),
            Permission::Administer
        );
        let unknown = format!("{}/something_new", app::SERVER_FN_PREFIX);
        assert_eq!(needed(&post, &unknown), Permission::Administer);
        assert_eq!(needed(&get, "/api/v1/devices"), Permission::View);
        assert_eq!(needed(&post, "/api/v1/commands"), Permission::Control);
        assert_eq!(
            needed(&Method::DELETE, "/api/v1/devices/7"),
            Permission::Administer
        );
        assert_eq!(
            needed(&Method::PATCH, "/api/v1/devices/7"),
            Permission::Administer
        );
        assert_eq!(
            needed(&get, "/api/v1/device-tokens"),
            Permission::Administer
        );
        assert_eq!(
            needed(&Method::PUT, "/api/v1/anything"),
            Permission::Administer
        );
        assert_eq!(needed(&post, "/api/v1/alarms/3/ack"), Permission::Control);
        assert_eq!(needed(&post, "/api/v1/alarm-rules"), Permission::Administer);
        assert_eq!(needed(&get, "/api/v1/alarms"), Permission::View);
    }
}
