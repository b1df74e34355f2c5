//! `fakebot`: run the Bot API stand-in for a person (see README.md).

#![forbid(unsafe_code)]

use std::io::Write;
use std::time::Duration;

use clap::Parser;

/// A local stand-in for the Telegram Bot API.
#[derive(Parser)]
#[command(name = "fakebot")]
struct Args {
    /// Address to listen on (loopback only is sensible).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// The bot token the stand-in accepts in `/bot<TOKEN>/<method>`.
    #[arg(long, env = "TELEGRAM_BOT_TOKEN", default_value = "123456:fake-token")]
    token: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let bot = match fakebot::FakeBot::start(args.listen.as_str(), &args.token) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fakebot: failed to listen on {}: {e}", args.listen);
            return std::process::ExitCode::from(1);
        }
    };
    let said = writeln!(
        std::io::stdout(),
        "fakebot: Bot API stand-in at {url} (set TELEGRAM_API_URL to it)\n\
         fakebot: control API at {url}/control/{{messages,sent,calls,faults,webhook,state}}",
        url = bot.api_url()
    )
    .and_then(|()| std::io::stdout().flush());
    match said {
        Ok(()) => {}
        // `fakebot | head -1`: the reader is gone, which ends the program as it ends any Unix tool.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fakebot: cannot write to stdout: {e}");
            return std::process::ExitCode::from(1);
        }
    }
    // Serve until killed (Ctrl-C ends the process; the stand-in keeps nothing on disk).
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
