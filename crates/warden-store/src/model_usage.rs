//! Token usage of provider requests made through the model gateway, per turn and per tenant.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use crate::{now_ms, Result, Store};

/// Tokens counted for one turn (or summed over a tenant's turns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// Provider requests counted.
    pub requests: u64,
    /// Prompt (input) tokens as the provider reported them.
    pub prompt_tokens: u64,
    /// Completion (output) tokens as the provider reported them.
    pub completion_tokens: u64,
    /// Requests whose numbers are the gateway's estimate (the provider reported none).
    pub estimated: u64,
}

/// One request's tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens.
    pub prompt: u64,
    /// Completion tokens.
    pub completion: u64,
    /// Estimated by the gateway rather than reported by the provider.
    pub estimated: bool,
}

impl ModelUsage {
    /// Prompt plus completion tokens.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl Store {
    /// Records one provider request's usage for a turn of a tenant.
    pub fn record_model_usage(
        &self,
        turn: &str,
        tenant: &str,
        model: &str,
        tokens: Tokens,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO model_usage (turn_id, tenant, model, prompt_tokens, completion_tokens, estimated, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    turn,
                    tenant,
                    model,
                    tokens.prompt as i64,
                    tokens.completion as i64,
                    tokens.estimated,
                    now_ms()
                ],
            )?;
            Ok(())
        })
    }

    /// The usage of one turn's provider requests.
    pub fn turn_model_usage(&self, turn: &str) -> Result<ModelUsage> {
        self.sum_usage("turn_id", turn)
    }

    /// The usage of all of a tenant's provider requests (what its token budget is checked against).
    pub fn tenant_model_usage(&self, tenant: &str) -> Result<ModelUsage> {
        self.sum_usage("tenant", tenant)
    }

    fn sum_usage(&self, column: &str, value: &str) -> Result<ModelUsage> {
        // `column` is one of two literals above, never input.
        let sql = format!(
            "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), \
             COALESCE(SUM(estimated), 0) \
             FROM model_usage WHERE {column} = ?1"
        );
        Ok(self.conn().query_row(&sql, [value], |r| {
            Ok(ModelUsage {
                requests: r.get::<_, i64>(0)?.max(0) as u64,
                prompt_tokens: r.get::<_, i64>(1)?.max(0) as u64,
                completion_tokens: r.get::<_, i64>(2)?.max(0) as u64,
                estimated: r.get::<_, i64>(3)?.max(0) as u64,
            })
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_sums_per_turn_and_per_tenant() {
        let s = Store::open_in_memory().unwrap();
        let t = |prompt, completion| Tokens {
            prompt,
            completion,
            estimated: false,
        };
        s.record_model_usage("t1", "acme", "m", t(10, 2)).unwrap();
        s.record_model_usage("t1", "acme", "m", t(5, 1)).unwrap();
        s.record_model_usage("t2", "acme", "m", t(100, 20)).unwrap();
        s.record_model_usage("t3", "beta", "m", t(7, 7)).unwrap();
        let t1 = s.turn_model_usage("t1").unwrap();
        assert_eq!(
            (t1.requests, t1.prompt_tokens, t1.completion_tokens),
            (2, 15, 3)
        );
        assert_eq!(s.tenant_model_usage("acme").unwrap().total(), 138);
        assert_eq!(s.tenant_model_usage("beta").unwrap().total(), 14);
        assert_eq!(
            s.tenant_model_usage("nobody").unwrap(),
            ModelUsage::default()
        );
    }
}
