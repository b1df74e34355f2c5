//! The turn queue: a global concurrency limit, FIFO per tenant with at most one running turn per
//! tenant (a tenant's turns share its workspace and pi session, so they must not overlap), and
//! a bound on queued turns. Pure bookkeeping; the server holds it behind a mutex and starts the
//! turns [`Queue::start_next`] hands out.

use std::collections::{BTreeMap, HashSet, VecDeque};

use warden_store::TurnId;

/// The queue was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    /// The bound that was hit.
    pub capacity: usize,
}

/// Queued turns per tenant and what is running.
#[derive(Debug)]
pub struct Queue {
    queues: BTreeMap<String, VecDeque<TurnId>>,
    busy: HashSet<String>,
    queued: usize,
    reserved: usize,
    running: usize,
    capacity: usize,
    concurrency: usize,
    paused: bool,
}

impl Queue {
    /// A queue holding at most `capacity` waiting turns and running at most `concurrency`.
    pub fn new(capacity: usize, concurrency: usize) -> Self {
        Queue {
            queues: BTreeMap::new(),
            busy: HashSet::new(),
            queued: 0,
            reserved: 0,
            running: 0,
            capacity,
            concurrency: concurrency.max(1),
            paused: false,
        }
    }

    /// Claims a place for a turn about to be created (so the bound holds across the store write).
    pub fn reserve(&mut self) -> Result<(), QueueFull> {
        if self.queued + self.reserved >= self.capacity {
            return Err(QueueFull {
                capacity: self.capacity,
            });
        }
        self.reserved += 1;
        Ok(())
    }

    /// Gives back a reservation whose turn was not created.
    pub fn unreserve(&mut self) {
        self.reserved = self.reserved.saturating_sub(1);
    }

    /// Queues a turn; `reserved` says whether a place was reserved for it.
    pub fn push(&mut self, tenant: &str, id: TurnId, reserved: bool) {
        if reserved {
            self.unreserve();
        }
        self.queues
            .entry(tenant.to_string())
            .or_default()
            .push_back(id);
        self.queued += 1;
    }

    /// The next turn to start, if the limit allows: among tenants with nothing running, the one
    /// whose oldest queued turn is the oldest overall (ids sort by creation time).
    pub fn start_next(&mut self) -> Option<(String, TurnId)> {
        if self.paused || self.running >= self.concurrency {
            return None;
        }
        let tenant = self
            .queues
            .iter()
            .filter(|(t, q)| !q.is_empty() && !self.busy.contains(*t))
            .min_by(|a, b| a.1.front().cmp(&b.1.front()))
            .map(|(t, _)| t.clone())?;
        let q = self.queues.get_mut(&tenant)?;
        let id = q.pop_front()?;
        if q.is_empty() {
            self.queues.remove(&tenant);
        }
        self.queued -= 1;
        self.running += 1;
        self.busy.insert(tenant.clone());
        Some((tenant, id))
    }

    /// A started turn of `tenant` finished.
    pub fn done(&mut self, tenant: &str) {
        self.running = self.running.saturating_sub(1);
        self.busy.remove(tenant);
    }

    /// Takes a queued turn out (cancel); false if it is not queued.
    pub fn remove(&mut self, id: &TurnId) -> bool {
        let mut found = None;
        for (tenant, q) in self.queues.iter_mut() {
            if let Some(pos) = q.iter().position(|x| x == id) {
                q.remove(pos);
                found = Some((tenant.clone(), q.is_empty()));
                break;
            }
        }
        match found {
            Some((tenant, empty)) => {
                if empty {
                    self.queues.remove(&tenant);
                }
                self.queued -= 1;
                true
            }
            None => false,
        }
    }

    /// Whether `id` is waiting in the queue.
    pub fn contains(&self, id: &TurnId) -> bool {
        self.queues.values().any(|q| q.contains(id))
    }

    /// Stops handing out turns (shutdown); queued turns stay queued in the store.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Turns waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Turns started and not yet done.
    pub fn running(&self) -> usize {
        self.running
    }

    /// The concurrency limit.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> TurnId {
        TurnId(format!("{n:08}"))
    }

    #[test]
    fn one_turn_per_tenant_in_order() {
        let mut q = Queue::new(10, 4);
        q.push("a", id(1), false);
        q.push("a", id(2), false);
        q.push("b", id(3), false);
        assert_eq!(q.start_next(), Some(("a".into(), id(1))));
        assert_eq!(q.start_next(), Some(("b".into(), id(3))));
        // a's second turn waits for its first.
        assert_eq!(q.start_next(), None);
        q.done("a");
        assert_eq!(q.start_next(), Some(("a".into(), id(2))));
        assert_eq!(q.running(), 2);
    }

    #[test]
    fn concurrency_limit() {
        let mut q = Queue::new(10, 2);
        for (i, t) in ["a", "b", "c"].iter().enumerate() {
            q.push(t, id(i as u32), false);
        }
        assert!(q.start_next().is_some());
        assert!(q.start_next().is_some());
        assert_eq!(q.start_next(), None);
        q.done("a");
        assert_eq!(q.start_next(), Some(("c".into(), id(2))));
    }

    #[test]
    fn capacity_counts_reservations() {
        let mut q = Queue::new(2, 1);
        q.reserve().unwrap();
        q.reserve().unwrap();
        assert_eq!(q.reserve(), Err(QueueFull { capacity: 2 }));
        q.push("a", id(1), true);
        q.unreserve();
        q.reserve().unwrap();
        assert_eq!(q.queued(), 1);
    }

    #[test]
    fn remove_and_pause() {
        let mut q = Queue::new(5, 5);
        q.push("a", id(1), false);
        q.push("a", id(2), false);
        assert!(q.contains(&id(1)));
        assert!(q.remove(&id(1)));
        assert!(!q.remove(&id(1)));
        assert!(!q.contains(&id(1)));
        q.pause();
        assert_eq!(q.start_next(), None);
        assert_eq!(q.queued(), 1);
    }
}
