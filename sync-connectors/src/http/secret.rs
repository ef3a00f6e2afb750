//! [`Secret`]: a string that never shows in `Debug`, `Display` or serialized output.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string that never shows: `Debug`, `Display` and serialization all print `***`.
///
/// Deserializes from a plain string or from `{"env": "VAR_NAME"}`, read from the environment
/// when deserialized; a missing variable is an error naming the variable.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value. This is the only way to read it: call it where the value is sent, nowhere
    /// else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct SecretVisitor;

        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a string or {"env": "VARIABLE"}"#)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Secret, E> {
                Ok(Secret::new(v))
            }

            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Secret, E> {
                Ok(Secret(v))
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Secret, A::Error> {
                let mut variable: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "env" {
                        return Err(de::Error::unknown_field(&key, &["env"]));
                    }
                    if variable.is_some() {
                        return Err(de::Error::duplicate_field("env"));
                    }
                    variable = Some(map.next_value()?);
                }
                let variable = variable.ok_or_else(|| de::Error::missing_field("env"))?;
                match std::env::var(&variable) {
                    Ok(value) => Ok(Secret(value)),
                    Err(std::env::VarError::NotPresent) => Err(de::Error::custom(format_args!(
                        "environment variable {variable} is not set"
                    ))),
                    Err(std::env::VarError::NotUnicode(_)) => Err(de::Error::custom(format_args!(
                        "environment variable {variable} is not valid unicode"
                    ))),
                }
            }
        }

        d.deserialize_any(SecretVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_shows() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), r#""***""#);
        assert_eq!(s.expose(), "hunter2");
    }
}
