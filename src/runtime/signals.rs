//! What each signal does to a running agent (docs/commands.md, "Signals"). The handlers are
//! installed before anything else, so no signal systemd or a person sends kills the agent
//! without the fencing a leader owes the rack:
//!
//! | signal | what the agent does |
//! |---|---|
//! | SIGTERM, SIGINT, SIGQUIT | stop: a leader steps down and fences first (bounded), then exit 0 |
//! | SIGHUP | re-read the keyring (`systemctl reload`); a bad file keeps the old keyring |
//! | SIGUSR1, SIGUSR2 | logged and ignored |
//! | SIGTSTP, SIGTTIN, SIGTTOU | logged and ignored: a stopped leader would be a failover |
//! | SIGPIPE | ignored (the Rust runtime ignores it; a write to a closed socket is an error) |
//!
//! Other signals keep the kernel's default action (most end the process like a crash: the rack
//! replaces a crashed leader through its lease). SIGKILL and SIGSTOP cannot be caught: a killed leader is replaced once its lease ends, and a
//! frozen one loses the VIP by the address's kernel lifetime (see ARCHITECTURE.md).

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// A signal, by what it asks of the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    /// Fence if leading, then exit.
    Stop(&'static str),
    /// Re-read the keyring.
    Reload,
    /// Nothing: logged only.
    Ignore(&'static str),
}

/// The signal streams the loop waits on.
pub(super) struct Signals {
    term: Signal,
    int: Signal,
    quit: Signal,
    hup: Signal,
    usr1: Signal,
    usr2: Signal,
    tstp: Signal,
    ttin: Signal,
    ttou: Signal,
}

impl Signals {
    /// Installs the handlers (replacing the default actions, which would kill the agent).
    pub(super) fn install() -> anyhow::Result<Signals> {
        let on = |kind: SignalKind, name: &str| {
            signal(kind).with_context(|| format!("installing the {name} handler"))
        };
        Ok(Signals {
            term: on(SignalKind::terminate(), "SIGTERM")?,
            int: on(SignalKind::interrupt(), "SIGINT")?,
            quit: on(SignalKind::quit(), "SIGQUIT")?,
            hup: on(SignalKind::hangup(), "SIGHUP")?,
            usr1: on(SignalKind::user_defined1(), "SIGUSR1")?,
            usr2: on(SignalKind::user_defined2(), "SIGUSR2")?,
            tstp: on(SignalKind::from_raw(libc::SIGTSTP), "SIGTSTP")?,
            ttin: on(SignalKind::from_raw(libc::SIGTTIN), "SIGTTIN")?,
            ttou: on(SignalKind::from_raw(libc::SIGTTOU), "SIGTTOU")?,
        })
    }

    /// The next signal received.
    pub(super) async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.term.recv() => Asked::Stop("SIGTERM"),
            _ = self.int.recv() => Asked::Stop("SIGINT"),
            _ = self.quit.recv() => Asked::Stop("SIGQUIT"),
            _ = self.hup.recv() => Asked::Reload,
            _ = self.usr1.recv() => Asked::Ignore("SIGUSR1"),
            _ = self.usr2.recv() => Asked::Ignore("SIGUSR2"),
            _ = self.tstp.recv() => Asked::Ignore("SIGTSTP"),
            _ = self.ttin.recv() => Asked::Ignore("SIGTTIN"),
            _ = self.ttou.recv() => Asked::Ignore("SIGTTOU"),
        }
    }
}
