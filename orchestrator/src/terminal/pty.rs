//! Pseudo-terminals: `openpty(3)` through libc, the window size (`TIOCSWINSZ`), and the master side
//! as non-blocking async reads and writes on tokio's reactor. The slave side is handed to the
//! sandbox as its stdin, stdout and stderr (`Sandbox::spawn_on_terminal`), which makes it the
//! program's controlling terminal.
//!
//! It deliberately does not interpret what flows through (no escape sequences, no encoding): bytes
//! go both ways as they are; the line discipline in the kernel echoes and edits lines.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use tokio::io::unix::AsyncFd;

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub cols: u16,
    pub rows: u16,
}

impl WindowSize {
    /// Sizes outside 1..=1000 are clamped: a zero-sized terminal confuses programs, and a huge one
    /// only wastes their memory.
    pub fn clamped(cols: u64, rows: u64) -> Self {
        Self { cols: cols.clamp(1, 1000) as u16, rows: rows.clamp(1, 1000) as u16 }
    }

    fn winsize(self) -> libc::winsize {
        libc::winsize { ws_row: self.rows, ws_col: self.cols, ws_xpixel: 0, ws_ypixel: 0 }
    }
}

/// A new pseudo-terminal pair.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Opens a pseudo-terminal of `size`. Both ends are close-on-exec (the sandbox gets the slave
/// through its stdio only); the master is non-blocking; the line discipline knows the input is
/// UTF-8 (`IUTF8`), so backspace removes a whole Korean syllable rather than one byte of it.
pub fn open(size: WindowSize) -> io::Result<Pty> {
    let (mut master, mut slave): (RawFd, RawFd) = (-1, -1);
    let winsize = size.winsize();
    // SAFETY: openpty writes two descriptors into the given integers; the name buffer is null (not
    // wanted) and the termios pointer null (defaults).
    let result = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &winsize) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened by openpty and belong to no one else.
    let pty = unsafe { Pty { master: OwnedFd::from_raw_fd(master), slave: OwnedFd::from_raw_fd(slave) } };
    for fd in [pty.master.as_raw_fd(), pty.slave.as_raw_fd()] {
        set_flag(fd, libc::F_GETFD, libc::F_SETFD, libc::FD_CLOEXEC)?;
    }
    set_flag(pty.master.as_raw_fd(), libc::F_GETFL, libc::F_SETFL, libc::O_NONBLOCK)?;
    // SAFETY: termios is plain data; tcgetattr fills it before it is read.
    unsafe {
        let mut termios: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(pty.slave.as_raw_fd(), &mut termios) != 0 {
            return Err(io::Error::last_os_error());
        }
        termios.c_iflag |= libc::IUTF8;
        if libc::tcsetattr(pty.slave.as_raw_fd(), libc::TCSANOW, &termios) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(pty)
}

fn set_flag(fd: RawFd, get: libc::c_int, set: libc::c_int, flag: libc::c_int) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments.
    unsafe {
        let flags = libc::fcntl(fd, get);
        if flags < 0 || libc::fcntl(fd, set, flags | flag) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The master side, registered with tokio's reactor. Reading and writing need only `&self`, so one
/// task can copy output while another writes input.
pub struct Master {
    fd: AsyncFd<OwnedFd>,
}

impl Master {
    /// Must be called inside a tokio runtime.
    pub fn new(master: OwnedFd) -> io::Result<Self> {
        // SAFETY: an `OwnedFd` is an open descriptor that always returns the same number, and the
        // `AsyncFd` owns it until it is dropped.
        let fd = unsafe { AsyncFd::register(master) }?;
        Ok(Self { fd })
    }

    /// Reads output; `Ok(0)` once the program and everything it started have closed the terminal
    /// (Linux reports that as `EIO` on the master, which is turned into end-of-file here).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: reading into a buffer we own, at most its length.
            let result = guard.try_io(|fd| {
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` as input, waiting while the terminal's input buffer is full.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            // SAFETY: writing from a slice we borrow, at most its length.
            let result = guard.try_io(|fd| {
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match result {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Tells the program its window changed size (it gets `SIGWINCH`).
    pub fn resize(&self, size: WindowSize) -> io::Result<()> {
        let winsize = size.winsize();
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCSWINSZ, &winsize) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_are_clamped_to_sane_bounds() {
        assert_eq!(WindowSize::clamped(0, 0), WindowSize { cols: 1, rows: 1 });
        assert_eq!(WindowSize::clamped(80, 24), WindowSize { cols: 80, rows: 24 });
        assert_eq!(WindowSize::clamped(u64::MAX, 70_000), WindowSize { cols: 1000, rows: 1000 });
    }

    #[tokio::test]
    async fn echoes_utf8_input_and_reports_the_size() {
        let pty = open(WindowSize { cols: 100, rows: 30 }).expect("openpty");
        // SAFETY: TIOCGWINSZ writes one winsize.
        let mut winsize: libc::winsize = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut winsize) }, 0);
        assert_eq!((winsize.ws_col, winsize.ws_row), (100, 30));
        let master = Master::new(pty.master).expect("register the master");
        master.write_all("안녕\n".as_bytes()).await.expect("write");
        // The line discipline echoes the input (with \r\n for \n).
        let mut echoed = Vec::new();
        let mut buf = [0u8; 64];
        while !echoed.ends_with(b"\r\n") {
            let n = master.read(&mut buf).await.expect("read");
            assert!(n > 0, "the terminal closed early");
            echoed.extend_from_slice(&buf[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&echoed), "안녕\r\n");
        master.resize(WindowSize { cols: 40, rows: 10 }).expect("resize");
        assert_eq!(unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut winsize) }, 0);
        assert_eq!((winsize.ws_col, winsize.ws_row), (40, 10));
    }
}
