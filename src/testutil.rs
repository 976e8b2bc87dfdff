//! Helpers for unit tests only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Install an executable at `path` with `content`, safely for multi-threaded tests.
///
/// Writing the file directly races with other test threads that fork: a child inherits
/// the write fd until its own exec, and exec of a file open for writing fails with
/// ETXTBSY ("text file busy"). So the content goes to a side file and `cp` (a separate
/// process, whose fds no test thread can inherit) puts it in place.
#[allow(clippy::unwrap_used)]
pub fn write_executable(path: &Path, content: &str) {
    let src = path.with_extension("src");
    std::fs::write(&src, content).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-p")
        .arg(&src)
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "cp {} {}", src.display(), path.display());
}
