//! Where the secret comes from: a passphrase (environment or prompt) or a key file.

use std::io::IsTerminal;
use std::path::Path;

use tresor::{Passphrase, RawKey, Secret};

use crate::CliError;

/// Environment variable holding the passphrase.
pub const ENV: &str = "TRESOR_PASSPHRASE";
/// Environment variable holding the new passphrase of `tresor passwd`.
pub const NEW_ENV: &str = "TRESOR_NEW_PASSPHRASE";

/// Reads the passphrase from `TRESOR_PASSPHRASE`, else prompts on the terminal (twice, to
/// confirm, when `confirm` is set: a new store). Never echoes it.
///
/// # Errors
/// [`CliError::NoPassphrase`] when the variable is unset and standard input is not a terminal,
/// [`CliError::PassphraseMismatch`] when the two entries differ, [`CliError::EmptyPassphrase`].
pub fn obtain(confirm: bool) -> Result<Passphrase, CliError> {
    from_env_or_prompt(ENV, "passphrase", confirm)
}

/// The secret of the store: the raw key in `key_file` if given (32 bytes, or 64 hex digits),
/// else the passphrase as [`obtain`] reads it.
///
/// # Errors
/// [`CliError::KeyFile`] if the key file cannot be read or is malformed; as [`obtain`].
pub fn secret(key_file: Option<&Path>, confirm: bool) -> Result<Secret, CliError> {
    match key_file {
        Some(path) => Ok(Secret::RawKey(read_key_file(path)?)),
        None => Ok(Secret::Passphrase(obtain(confirm)?)),
    }
}

/// The new secret of `tresor passwd`: the raw key in `new_key_file` if given, else the new
/// passphrase from `TRESOR_NEW_PASSPHRASE` or a confirmed prompt.
///
/// # Errors
/// As [`secret`]; [`CliError::NoPassphrase`] when neither the variable nor a terminal exists.
pub fn new_secret(new_key_file: Option<&Path>) -> Result<Secret, CliError> {
    match new_key_file {
        Some(path) => Ok(Secret::RawKey(read_key_file(path)?)),
        None => Ok(Secret::Passphrase(from_env_or_prompt(
            NEW_ENV,
            "new passphrase",
            true,
        )?)),
    }
}

fn read_key_file(path: &Path) -> Result<RawKey, CliError> {
    let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| CliError::KeyFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?);
    RawKey::from_key_file(&bytes).map_err(|e| CliError::KeyFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn from_env_or_prompt(env: &str, what: &str, confirm: bool) -> Result<Passphrase, CliError> {
    if let Some(value) = std::env::var_os(env) {
        let value = zeroize::Zeroizing::new(
            value
                .into_string()
                .map_err(|_| CliError::NonUtf8Passphrase)?,
        );
        if value.is_empty() {
            return Err(CliError::EmptyPassphrase);
        }
        return Ok(Passphrase::from(value.as_str()));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NoPassphrase);
    }
    let first = Passphrase::from(
        zeroize::Zeroizing::new(
            rpassword::prompt_password(format!("{what}: ")).map_err(CliError::Prompt)?,
        )
        .as_str(),
    );
    if first.expose().is_empty() {
        return Err(CliError::EmptyPassphrase);
    }
    if confirm {
        let second = Passphrase::from(
            zeroize::Zeroizing::new(
                rpassword::prompt_password(format!("{what} (again): "))
                    .map_err(CliError::Prompt)?,
            )
            .as_str(),
        );
        if !first.ct_eq(&second) {
            return Err(CliError::PassphraseMismatch);
        }
    }
    Ok(first)
}
