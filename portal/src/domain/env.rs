//! Environment variable names and values as users set them on a project.

use super::ValidationError;

/// Names the platform sets itself; users cannot override them.
const RESERVED: &[&str] = &["PORT", "HOME", "PATH", "USER", "HOSTNAME", "PWD", "SHELL", "LANG", "TERM"];

pub const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVarName(String);

impl EnvVarName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        let valid = !name.is_empty()
            && name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ValidationError::new(
                "invalid_env_name",
                "name",
                format!("`{name}` is not a variable name (letters, digits and _, not starting with a digit)"),
            )
            .with("value", name));
        }
        if RESERVED.contains(&name) || name.starts_with("SLIPWAY_") {
            return Err(ValidationError::new(
                "reserved_env_name",
                "name",
                format!("`{name}` is set by the platform and cannot be changed"),
            )
            .with("value", name));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub fn check_env_value(value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_ENV_VALUE_BYTES {
        return Err(ValidationError::new(
            "env_value_too_long",
            "value",
            format!("the value has {} bytes; at most {MAX_ENV_VALUE_BYTES} are allowed", value.len()),
        ));
    }
    if value.contains('\0') {
        return Err(ValidationError::new("invalid_env_value", "value", "the value contains a NUL character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&str, &str>) {
        assert_eq!(EnvVarName::parse(raw).map(|n| n.as_str().to_owned()).map_err(|e| e.code), expected.map(str::to_owned), "{raw:?}");
    }

    #[test]
    fn env_names_are_shell_identifiers_and_not_the_platforms() {
        check("DATABASE_URL", Ok("DATABASE_URL"));
        check("_x1", Ok("_x1"));
        check(" API_KEY ", Ok("API_KEY"));
        check("1ABC", Err("invalid_env_name"));
        check("A-B", Err("invalid_env_name"));
        check("", Err("invalid_env_name"));
        check("PORT", Err("reserved_env_name"));
        check("SLIPWAY_TOKEN", Err("reserved_env_name"));
    }

    #[test]
    fn env_values_have_a_size_limit() {
        assert!(check_env_value("x").is_ok());
        assert!(check_env_value(&"x".repeat(MAX_ENV_VALUE_BYTES + 1)).is_err());
        assert!(check_env_value("a\0b").is_err());
    }
}
