//! The git jail's packages beyond git and nginx: what `fcgiwrap` and `forgejo` bring when `pkg install`ed.

use crate::jailfs::{self, JailFs};
use crate::state::Ctx;

/// What the `fcgiwrap` and `forgejo` packages bring (their ports' pkg-plists and rc.d scripts; forgejo's
/// `USERS=git`, uid 211 in the ports' UIDs file; its `@sample` app.ini copied from the sample).
pub fn apply_package(cx: &mut Ctx, fs: &JailFs, name: &str) -> Result<(), String> {
    let exec = |cx: &Ctx, p: &str, text: &str| jailfs::write_executable(cx, fs, p, text);
    let stub = "#!/bin/sh\n# simulated by fakebsd\n";
    match name {
        "fcgiwrap" => {
            exec(cx, "/usr/local/etc/rc.d/fcgiwrap", "#!/bin/sh\n# PROVIDE: fcgiwrap\n# REQUIRE: LOGIN\n# KEYWORD: shutdown\n# simulated by fakebsd\n")?;
            exec(cx, "/usr/local/sbin/fcgiwrap", stub)?;
        }
        "forgejo" => {
            jailfs::ensure_port_account(cx, fs, "git", 211, "gitosis user", "/usr/local/git")?;
            exec(cx, "/usr/local/etc/rc.d/forgejo", "#!/bin/sh\n# PROVIDE: forgejo\n# REQUIRE: NETWORKING SYSLOG\n# KEYWORD: shutdown\n# simulated by fakebsd\n")?;
            exec(cx, "/usr/local/sbin/forgejo", stub)?;
            let sample = "# Sample Configuration for Forgejo using SQLite (simulated by fakebsd)\nRUN_USER = git\n\n[database]\nDB_TYPE  = sqlite3\nPATH     = /var/db/forgejo/forgejo.db\n\n[security]\nINSTALL_LOCK   = true\nINTERNAL_TOKEN = CHANGE_ME\nSECRET_KEY     = CHANGE_ME\n\n[oauth2]\nJWT_SECRET = CHANGE_ME\n";
            let conf = "/usr/local/etc/forgejo/conf";
            fs.write(cx, &format!("{conf}/app.ini.sample"), sample)?;
            fs.write(
                cx,
                &format!("{conf}/app.ini.defaults"),
                "; simulated by fakebsd\n",
            )?;
            if !fs.exists(cx, &format!("{conf}/app.ini")) {
                fs.write(cx, &format!("{conf}/app.ini"), sample)?;
            }
        }
        _ => {}
    }
    Ok(())
}
