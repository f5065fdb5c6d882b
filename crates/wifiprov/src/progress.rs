//! Progress on stderr: a spinner when stderr is a terminal, nothing otherwise. Notes (attempts remaining) are
//! printed either way, above the spinner when there is one.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether progress should be drawn at all.
pub(crate) fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix}{wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// A spinner with a message, or nothing.
pub(crate) struct Spinner(Option<ProgressBar>);

impl Spinner {
    /// Starts a spinner showing `message`, when stderr is a terminal.
    pub(crate) fn start(message: impl Into<String>) -> Self {
        if !stderr_is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(spinner_style());
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Self(Some(bar))
    }

    /// Replaces the message.
    pub(crate) fn set(&self, message: impl Into<String>) {
        if let Some(bar) = &self.0 {
            bar.set_message(message.into());
        }
    }

    /// Prints a line on stderr (above the spinner).
    pub(crate) fn note(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.println(line),
            None => crate::output::note(format_args!("{line}")),
        }
    }

    /// Removes the spinner, e.g. before printing a list or asking a question.
    pub(crate) fn clear(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.clear();
    }
}

/// One spinner per fleet device, drawn together, or nothing when stderr is not a terminal.
pub(crate) struct Board(MultiProgress);

impl Board {
    /// A board on stderr when it is a terminal, a hidden one otherwise.
    pub(crate) fn new() -> Self {
        let target = if stderr_is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        Self(MultiProgress::with_draw_target(target))
    }

    /// A line for one device.
    pub(crate) fn line(&self, prefix: &str) -> ProgressBar {
        let bar = self.0.add(ProgressBar::new_spinner());
        bar.set_style(spinner_style());
        bar.set_prefix(format!("{prefix}: "));
        bar.set_message("waiting");
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// Removes every line (before the final table is printed).
    pub(crate) fn clear(&self) {
        let _ = self.0.clear();
    }
}
