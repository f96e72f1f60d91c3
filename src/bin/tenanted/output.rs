//! Printing that never panics. `println!` panics when its reader has gone
//! (`tenanted list | head -1`: a closed pipe), which would abandon the
//! command half-way and print a panic to an operator. Here a reader gone
//! ends the printing, not the command: what is left to print is dropped,
//! the command finishes its work and exits with its own code.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// `text` kept on one line: control characters (a newline in a
/// suspension's reason) written as escapes (`\n`), so that a line about
/// one tenant is one line (an outside probe: a reason with a newline
/// printed lines of its own, which a script reads as tenants).
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    // A backslash too, so that an escape cannot be told from the text
    // `\n`; and the Unicode line and paragraph separators, which some
    // readers break lines at.
    let escaped = |c: char| c.is_control() || matches!(c, '\\' | '\u{2028}' | '\u{2029}');
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let line = text.chars().map(|c| match escaped(c) {
        true => c.escape_default().to_string(),
        false => c.to_string(),
    });
    std::borrow::Cow::Owned(line.collect())
}

/// Whether stdout's reader has gone.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// Whether stderr's reader has gone.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout, unless its reader has gone.
pub fn to_stdout(text: fmt::Arguments<'_>) {
    write_unless_gone(&mut io::stdout().lock(), &STDOUT_GONE, text);
}

/// Writes `text` to stderr, unless its reader has gone.
pub fn to_stderr(text: fmt::Arguments<'_>) {
    write_unless_gone(&mut io::stderr().lock(), &STDERR_GONE, text);
}

/// stderr as the log's writer: a reader gone ends the logging, not the
/// command. (Given stderr itself, `tracing-subscriber` reports a failed
/// write with `eprintln!`, which panics on the same closed pipe: a
/// `tenanted replicate` whose log reader went stopped at its next line.)
pub struct LogWriter;

impl Write for LogWriter {
    /// A reader gone ends the logging; any other failure (a full disk
    /// under a redirected log) drops this line alone.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if STDERR_GONE.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        if let Err(e) = io::stderr().write_all(buf)
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            STDERR_GONE.store(true, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `value` as one line of JSON to stdout, as it is serialized
/// (never built whole first: a report of a million tenants), unless
/// stdout's reader has gone.
pub fn json_to_stdout(value: &impl serde::Serialize) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    let written = serde_json::to_writer(&mut out, value).map_err(io::Error::from);
    if written
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush())
        .is_err()
    {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
}

fn write_unless_gone(out: &mut impl Write, gone: &AtomicBool, text: fmt::Arguments<'_>) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    if out.write_fmt(text).and_then(|()| out.flush()).is_err() {
        gone.store(true, Ordering::Relaxed);
    }
}

/// `println!` that never panics (see the module's comment).
macro_rules! outln {
    () => {
        $crate::output::to_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::to_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::to_stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::to_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::output::to_stderr(format_args!($($arg)*))
    };
}

pub(crate) use {err, errln, out, outln};
