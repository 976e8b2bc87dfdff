//! The local terminal for `crust ctl exec/attach -t`: raw mode while the session runs
//! (restored on drop), the current size, and SIGWINCH turned into resize messages, as
//! kubectl's `term.TTY` and `remotecommand` size queue do.

use rustix::termios::{OptionalActions, Termios, isatty, tcgetattr, tcgetwinsize, tcsetattr};
use tokio::sync::mpsc;

use crate::streaming::protocol::TermSize;

/// Raw mode on stdin while alive.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Put stdin into raw mode if it is a terminal.
    pub fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        if !isatty(&stdin) {
            return None;
        }
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// The size of the terminal on stdout (or stdin), if any.
pub fn size() -> Option<TermSize> {
    let ws = tcgetwinsize(std::io::stdout())
        .or_else(|_| tcgetwinsize(std::io::stdin()))
        .ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some(TermSize {
        width: ws.ws_col,
        height: ws.ws_row,
    })
}

/// Sizes to send: the current one, then one per SIGWINCH.
pub fn resizes() -> mpsc::Receiver<TermSize> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Some(s) = size()
            && tx.send(s).await.is_err()
        {
            return;
        }
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some(s) = size()
                && tx.send(s).await.is_err()
            {
                return;
            }
        }
    });
    rx
}
