//! Standard output for Drover's command-line tools. A reader that stops reading (`droverctl
//! events | head`) is not an error: on a closed pipe the process exits at once, quietly and
//! successfully, as ripgrep does — never a panic with a backtrace, and never a failure that
//! would fail a `set -o pipefail` script whose `head` had all it wanted.

use std::io::{self, Write};

/// Locked standard output that ends the process with status 0 when the pipe is closed.
#[derive(Debug)]
pub struct Stdout(io::StdoutLock<'static>);

/// Standard output, locked for this writer's life.
pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

fn quiet<T>(r: io::Result<T>) -> io::Result<T> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        quiet(self.0.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        quiet(self.0.flush())
    }
}

/// `println!` for tools: one line to [`stdout`], flushed, exiting quietly on a closed pipe.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let mut out = $crate::stdout::stdout();
        // Any error other than a closed pipe (which exits) is as fatal as println!'s.
        if let Err(e) = writeln!(out, $($arg)*).and_then(|()| out.flush()) {
            panic!("failed printing to stdout: {e}");
        }
    }};
}
