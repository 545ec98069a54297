//! Where the passphrase comes from.

use std::io::IsTerminal;

use tresor::Passphrase;

use crate::CliError;

/// Environment variable holding the passphrase.
pub const ENV: &str = "TRESOR_PASSPHRASE";

/// Reads the passphrase from `TRESOR_PASSPHRASE`, else prompts on the terminal (twice, to
/// confirm, when `confirm` is set: a new store). Never echoes it.
///
/// # Errors
/// [`CliError::NoPassphrase`] when the variable is unset and standard input is not a terminal,
/// [`CliError::PassphraseMismatch`] when the two entries differ, [`CliError::EmptyPassphrase`].
pub fn obtain(confirm: bool) -> Result<Passphrase, CliError> {
    if let Some(value) = std::env::var_os(ENV) {
        let value = value
            .into_string()
            .map_err(|_| CliError::NonUtf8Passphrase)?;
        if value.is_empty() {
            return Err(CliError::EmptyPassphrase);
        }
        return Ok(Passphrase::from(value));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::NoPassphrase);
    }
    let first = zeroize::Zeroizing::new(
        rpassword::prompt_password("passphrase: ").map_err(CliError::Prompt)?,
    );
    if first.is_empty() {
        return Err(CliError::EmptyPassphrase);
    }
    if confirm {
        let second = zeroize::Zeroizing::new(
            rpassword::prompt_password("passphrase (again): ").map_err(CliError::Prompt)?,
        );
        if *first != *second {
            return Err(CliError::PassphraseMismatch);
        }
    }
    Ok(Passphrase::from(first.as_str()))
}
