//! `warden turns list|show`: recorded turns, from the control plane.

use crate::cli::{Global, TurnsCommand};
use crate::commands::turn::{block_on, client, client_exit};
use crate::exit::Exit;

/// Lists turns (newest first) or shows one.
pub fn run(global: &Global, cmd: &TurnsCommand) -> Result<(), Exit> {
    let c = client(global)?;
    match cmd {
        TurnsCommand::List {
            tenant,
            status,
            limit,
            json,
        } => {
            let q = warden_server::ListQuery {
                tenant: tenant.clone(),
                status: status.clone(),
                limit: *limit,
            };
            let turns = block_on(c.turns_list(&q))?.map_err(client_exit)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&turns).unwrap_or_default()
                );
                return Ok(());
            }
            println!(
                "{:<32}  {:<12}  {:<5}  {:<9}  {:<14}  {:>8}",
                "ID", "TENANT", "KIND", "STATUS", "FAILURE", "MS"
            );
            for t in turns {
                let ms = t
                    .timings
                    .total_ms
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:<32}  {:<12}  {:<5}  {:<9}  {:<14}  {:>8}",
                    t.id,
                    t.tenant,
                    t.kind.as_str(),
                    t.status.as_str(),
                    t.failure.as_deref().unwrap_or("-"),
                    ms
                );
            }
            Ok(())
        }
        TurnsCommand::Show { id, json } => {
            let t = block_on(c.turns_show(id))?.map_err(client_exit)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
                return Ok(());
            }
            println!(
                "id:       {}\ntenant:   {}\nkind:     {}\nstatus:   {}",
                t.id,
                t.tenant,
                t.kind.as_str(),
                t.status.as_str()
            );
            if let Some(f) = &t.failure {
                println!("failure:  {f}");
            }
            if let Some(c) = t.exit_code {
                println!("exit:     {c}");
            }
            if let Some(w) = &t.worker {
                println!("worker:   {w}");
            }
            if let Some(ms) = t.timings.total_ms {
                println!(
                    "time:     {ms} ms (queued {} ms)",
                    t.timings.queued_ms.unwrap_or(0)
                );
            }
            if let Some(r) = &t.reply {
                println!("reply:\n{r}");
            }
            if !t.stdout.is_empty() {
                println!("stdout:\n{}", t.stdout);
            }
            if !t.stderr.is_empty() {
                println!("stderr:\n{}", t.stderr);
            }
            Ok(())
        }
    }
}
