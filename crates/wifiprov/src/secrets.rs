//! Where secrets come from: a flag, a file, an environment variable, or a no-echo prompt, in that order.
//!
//! Secrets live in [`Secret`] (zeroized on drop) from the moment they are read, and nothing here prints them.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use zeroize::Zeroizing;

use crate::exit::{Code, classified};

/// A secret string, wiped from memory when dropped.
pub(crate) type Secret = Zeroizing<String>;

/// The places one secret may come from.
#[derive(Clone)]
pub(crate) struct SecretSource {
    /// What the secret is, for prompts and errors ("proof of possession").
    pub(crate) what: &'static str,
    /// How to give it, for errors ("--pop, --pop-file or WIFIPROV_POP").
    pub(crate) how: &'static str,
    /// The value given directly (a flag, or a field of a fleet file).
    pub(crate) value: Option<Secret>,
    /// A file holding it.
    pub(crate) file: Option<PathBuf>,
    /// An environment variable holding it.
    pub(crate) env: Option<&'static str>,
    /// Whether to prompt for it when stdin is a terminal.
    pub(crate) prompt: Prompt,
}

/// Whether a missing secret may be asked for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Prompt {
    /// Ask on the terminal (no echo) when stdin is a terminal.
    IfTerminal,
    /// Never ask (fleet mode, scripts).
    Never,
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSource")
            .field("what", &self.what)
            .field("value", &self.value.as_ref().map(|_| "<redacted>"))
            .field("file", &self.file)
            .field("env", &self.env)
            .field("prompt", &self.prompt)
            .finish()
    }
}

impl SecretSource {
    /// A source with nothing given yet.
    pub(crate) fn new(what: &'static str, how: &'static str, env: Option<&'static str>) -> Self {
        Self { what, how, value: None, file: None, env, prompt: Prompt::IfTerminal }
    }

    /// Whether a value, file or environment variable is available without asking.
    pub(crate) fn is_given(&self) -> bool {
        self.value.is_some() || self.file.is_some() || self.env.is_some_and(|name| std::env::var_os(name).is_some())
    }

    /// The secret, or `None` when it was given nowhere and cannot be asked for.
    pub(crate) async fn resolve(&self, prompt_text: &str) -> anyhow::Result<Option<Secret>> {
        if let Some(value) = &self.value {
            return Ok(Some(value.clone()));
        }
        if let Some(path) = &self.file {
            return read_file(path, self.what).map(Some);
        }
        if let Some(name) = self.env
            && let Some(value) = std::env::var_os(name)
        {
            let value = value.into_string().map_err(|_| anyhow::anyhow!("{name} is not valid UTF-8"))?;
            return Ok(Some(Zeroizing::new(value)));
        }
        if self.prompt == Prompt::IfTerminal && std::io::stdin().is_terminal() {
            return ask(prompt_text.to_owned()).await.map(Some);
        }
        Ok(None)
    }

    /// The secret; an error naming the ways to give it when there is none.
    pub(crate) async fn require(&self, prompt_text: &str) -> anyhow::Result<Secret> {
        match self.resolve(prompt_text).await? {
            Some(secret) => Ok(secret),
            None => Err(classified(Code::Usage, format!("a {} is needed: give {}", self.what, self.how))),
        }
    }
}

/// Reads a secret from the first line of `path` (without its line ending).
fn read_file(path: &Path, what: &str) -> anyhow::Result<Secret> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} from {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or_default();
    Ok(Zeroizing::new(line.to_owned()))
}

/// Asks on the terminal without echo. The prompt goes to the terminal, never to stdout.
pub(crate) async fn ask(prompt: String) -> anyhow::Result<Secret> {
    let answer = tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
        .await
        .context("the prompt task failed")?
        .context("cannot read from the terminal")?;
    Ok(Zeroizing::new(answer))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn flag_beats_file_and_file_drops_its_line_ending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pop");
        std::fs::write(&path, "from-file\r\nsecond line\n").unwrap();
        let mut source = SecretSource::new("proof of possession", "--pop", None);
        source.prompt = Prompt::Never;
        assert!(source.resolve("").await.unwrap().is_none());
        source.file = Some(path);
        assert_eq!(source.resolve("").await.unwrap().unwrap().as_str(), "from-file");
        source.value = Some(Zeroizing::new("from-flag".into()));
        assert_eq!(source.resolve("").await.unwrap().unwrap().as_str(), "from-flag");
        assert!(!format!("{source:?}").contains("from-flag"));
    }

    #[tokio::test]
    async fn a_missing_secret_is_a_usage_error_naming_the_options() {
        let mut source = SecretSource::new("proof of possession", "--pop, --pop-file or WIFIPROV_POP", None);
        source.prompt = Prompt::Never;
        let err = source.require("").await.unwrap_err();
        assert_eq!(crate::exit::classify(&err), Code::Usage);
        assert!(err.to_string().contains("--pop-file"));
    }
}
