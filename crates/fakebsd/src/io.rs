//! Buffered stdout/stderr for one tool run, so in-process calls can capture or discard output.

use std::io::Write;

/// Output of a tool run: what goes to stdout and to stderr.
#[derive(Default, Debug)]
pub struct Io {
    /// Text for stdout.
    pub out: String,
    /// Text for stderr.
    pub err: String,
}

impl Io {
    /// Appends a line to stdout.
    pub fn out(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }

    /// Appends a line to stderr.
    pub fn err(&mut self, line: &str) {
        self.err.push_str(line);
        self.err.push('\n');
    }

    /// Writes the buffers to the real streams and empties them. A reader that went away (EPIPE, as
    /// in `fakebsd state | head`) is a normal end, not an error: the rest of the output is dropped.
    pub fn flush(&mut self) {
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(self.out.as_bytes());
        let _ = so.flush();
        let mut se = std::io::stderr().lock();
        let _ = se.write_all(self.err.as_bytes());
        let _ = se.flush();
        self.out.clear();
        self.err.clear();
    }
}

/// Prints `msg` on stderr and returns exit status 1.
pub fn fail(io: &mut Io, msg: &str) -> i32 {
    io.err(msg);
    1
}
