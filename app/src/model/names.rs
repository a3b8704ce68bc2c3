//! Enums without data, decoded from their names (`#[serde(try_from = "String")]`).
//!
//! Why: serde's derived decoder for such an enum also reads the `{"name": null}` form, and
//! costs about 1.3 KiB of every browser bundle that decodes it; finding the name in the list of
//! variants costs a fraction of that, and the strings decoder it starts from is there anyway.

/// The variant among `all` that `name_of` names `name`, or serde's own message for a name that
/// is none of them.
pub(crate) fn variant_named<T: Copy>(
    all: &[T],
    name_of: fn(T) -> &'static str,
    name: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|variant| name_of(*variant) == name)
        .ok_or_else(|| {
            let expected: Vec<String> = all.iter().map(|v| format!("`{}`", name_of(*v))).collect();
            format!(
                "unknown variant `{name}`, expected one of {}",
                expected.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::super::{Direction, Role};

    #[test]
    fn names_decode_to_their_variants_and_nothing_else_does() {
        assert_eq!(
            serde_json::from_str::<Role>(r#""operator""#).unwrap(),
            Role::Operator
        );
        assert_eq!(
            serde_json::from_str::<Direction>(r#""error""#).unwrap(),
            Direction::Error
        );
        for (json, message) in [
            (
                r#""Operator""#,
                "unknown variant `Operator`, expected one of `viewer`, `operator`, `admin`",
            ),
            (r#""""#, "unknown variant ``"),
            (r#"{"admin":null}"#, "invalid type: map"),
            (r#"7"#, "invalid type: integer"),
        ] {
            let err = serde_json::from_str::<Role>(json).unwrap_err().to_string();
            assert!(err.contains(message), "{json}: {err}");
        }
        for direction in Direction::ALL {
            let json = serde_json::to_string(&direction).unwrap();
            assert_eq!(serde_json::from_str::<Direction>(&json).unwrap(), direction);
        }
    }
}
