//! What a person (or a program with an API token) may do: three roles, each allowing what the
//! one below it does and more. The server decides with [`Role::may`] in one place for pages,
//! server functions, the REST API and the live stream; the pages ask the same question to hide
//! what a role cannot use.

use serde::{Deserialize, Serialize};

/// A user's role, lowest first (the order is the permission order).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Role {
    /// Sees devices, readings, charts and commands; changes nothing.
    #[default]
    Viewer,
    /// Also sends commands and console lines to devices.
    Operator,
    /// Also manages users, API and device tokens, and removes devices.
    Admin,
}

/// What a request does, as far as permission goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Look: pages, readings, history, exports, the live stream.
    View,
    /// Act on devices: commands, console lines.
    Control,
    /// Change the hub: users, tokens, removing devices, metrics.
    Administer,
}

impl Permission {
    /// The lowest role allowed to do it.
    pub fn needs(self) -> Role {
        match self {
            Permission::View => Role::Viewer,
            Permission::Control => Role::Operator,
            Permission::Administer => Role::Admin,
        }
    }
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn may(self, action: Permission) -> bool {
        self >= action.needs()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == raw.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("{raw:?} is not a role: viewer, operator or admin"))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_do_what_the_one_below_does_and_more() {
        let table = [
            (Role::Viewer, [true, false, false]),
            (Role::Operator, [true, true, false]),
            (Role::Admin, [true, true, true]),
        ];
        for (role, allowed) in table {
            for (action, expected) in [
                Permission::View,
                Permission::Control,
                Permission::Administer,
            ]
            .into_iter()
            .zip(allowed)
            {
                assert_eq!(role.may(action), expected, "{role} {action:?}");
            }
        }
    }

    #[test]
    fn roles_are_named_in_lower_case() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role.as_str())
            );
        }
        assert_eq!(Role::parse(" Operator "), Ok(Role::Operator));
        assert!(Role::parse("root").is_err());
    }
}
