//! crust-pause: the pod-level PID namespace holder, started only for pods that ask for a
//! shared PID namespace (CRI `NamespaceMode::POD`).
//!
//! Net, IPC and UTS namespaces are pinned by bind mounts (see the daemon's
//! `src/sandbox/ns.rs`), but a PID namespace dies with its init, so a pod-shared one needs
//! a process to be its pid 1 — the role of Kubernetes' pause container, without an image.
//!
//! ```text
//! crust-pause          # prints the host pid of the namespace's init on stdout, exits 0
//! ```
//!
//! 1. `unshare(CLONE_NEWPID)`, then `fork`: the child is pid 1 of the new namespace.
//! 2. The child detaches (`setsid`, `chdir /`, stdio on `/dev/null`) so it outlives the
//!    daemon, installs its signal handlers, then tells the parent over a pipe.
//! 3. The parent prints the child's host pid and exits 0 (errors: message on stderr, 1).
//! 4. The child reaps every zombie reparented to it (`SIGCHLD`), exits 0 on
//!    `SIGINT`/`SIGTERM` and otherwise sleeps in `pause(2)`.
//!
//! libc only, no allocation after start-up: memory is the product metric (README.md).

use std::io::Write;

fn fail(what: &str) -> ! {
    let err = std::io::Error::last_os_error();
    let _ = writeln!(std::io::stderr(), "crust-pause: {what}: {err}");
    std::process::exit(1)
}

extern "C" fn on_terminate(_sig: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

extern "C" fn on_child(_sig: libc::c_int) {
    // Nothing: the signal interrupts pause(2) and the main loop reaps.
}

fn install(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> bool {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C" fn that only
    // calls async-signal-safe functions; the struct outlives the call.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut()) == 0
    }
}

fn reap_all() {
    loop {
        // SAFETY: waitpid with a null status pointer is allowed.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// The namespace init: never returns.
fn child(ready_w: libc::c_int) -> ! {
    // SAFETY: plain syscalls on this process's own state with valid arguments.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            libc::close(null);
        }
    }
    let ok = install(libc::SIGINT, on_terminate)
        && install(libc::SIGTERM, on_terminate)
        && install(libc::SIGCHLD, on_child);
    let byte: u8 = if ok { b'1' } else { b'0' };
    // SAFETY: writing one byte from a valid buffer to our pipe end, then closing it.
    unsafe {
        libc::write(ready_w, (&byte as *const u8).cast(), 1);
        libc::close(ready_w);
    }
    if !ok {
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(1) }
    }
    loop {
        reap_all();
        // SAFETY: pause(2) just sleeps until a signal arrives.
        unsafe { libc::pause() };
    }
}

fn main() {
    // SAFETY: unshare with a namespace flag only changes this (single-threaded) process.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        fail("unshare(CLONE_NEWPID)");
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail("pipe2");
    }
    let [ready_r, ready_w] = fds;
    // SAFETY: the process is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail("fork");
    }
    if pid == 0 {
        // SAFETY: closing the read end inherited by the child.
        unsafe { libc::close(ready_r) };
        child(ready_w);
    }
    // SAFETY: closing our copy of the write end so EOF means the child died.
    unsafe { libc::close(ready_w) };
    let mut byte = 0u8;
    // SAFETY: reading one byte into a valid buffer.
    let n = unsafe { libc::read(ready_r, (&mut byte as *mut u8).cast(), 1) };
    if n != 1 || byte != b'1' {
        let _ = writeln!(
            std::io::stderr(),
            "crust-pause: namespace init failed to start"
        );
        std::process::exit(1);
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{pid}").and_then(|()| out.flush()).is_err() {
        fail("write pid");
    }
}
