//! The systemd notify protocol (`sd_notify(3)`), over the Unix datagram
//! socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract
//! socket). Std only and a few dozen lines, which is why it is not the
//! `sd-notify` crate: no unsafe, no extra dependency, and the abstract-socket
//! case is covered by `std::os::linux::net::SocketAddrExt`.
//!
//! Every function is a no-op when `$NOTIFY_SOCKET` is unset (not run by
//! systemd), so the daemons call them unconditionally.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one notification (`READY=1`, `WATCHDOG=1`, `STATUS=...`, several
/// separated by newlines). `Ok(false)` when there is no notify socket.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path.to_string_lossy().into_owned();
    if path.is_empty() {
        return Ok(false);
    }
    notify_to(&path, state)?;
    Ok(true)
}

/// Sends `state` to the socket `socket` (a path, or `@name`: abstract).
pub fn notify_to(socket: &str, state: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        abstract_send(&sock, name.as_bytes(), state.as_bytes())
    } else {
        sock.send_to(state.as_bytes(), socket).map(|_| ())
    }
}

#[cfg(target_os = "linux")]
fn abstract_send(sock: &UnixDatagram, name: &[u8], msg: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(msg, &addr)?;
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn abstract_send(_sock: &UnixDatagram, _name: &[u8], _msg: &[u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract notify sockets exist only on Linux",
    ))
}

/// `READY=1` with a status line.
pub fn ready(status: &str) -> io::Result<bool> {
    notify(&format!("READY=1\nSTATUS={status}"))
}

/// `STOPPING=1`.
pub fn stopping() -> io::Result<bool> {
    notify("STOPPING=1\nSTATUS=stopping")
}

/// `WATCHDOG=1`.
pub fn watchdog() -> io::Result<bool> {
    notify("WATCHDOG=1")
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, as
/// `sd_watchdog_enabled(3)` recommends. `None` when no watchdog is
/// configured or `$WATCHDOG_PID` names another process.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn sends_to_path_and_abstract_sockets() {
        let dir = std::env::temp_dir().join(format!("convoy-sdn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("convoy-sdn-test-{}", std::process::id());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let rx = UnixDatagram::bind_addr(&addr).unwrap();
            rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            notify_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
            let n = rx.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"WATCHDOG=1");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
