//! The dissemination queue: updates waiting to be piggybacked. Each update is sent at most
//! `limit` times in total (SWIM's lambda * log N), least-transmitted first and, among equals,
//! newest first, so fresh news spreads before old news finishes its retransmissions. A newer
//! update on the same member and topic replaces the queued one (and restarts its count).

use super::msg::{Topic, Update};
use crate::core::NodeId;

#[derive(Debug, Clone)]
struct Pending {
    key: (NodeId, Topic),
    update: Update,
    size: usize,
    transmits: u32,
    order: u64,
}

/// Updates waiting to be piggybacked.
#[derive(Debug, Clone, Default)]
pub(crate) struct BroadcastQueue {
    items: Vec<Pending>,
    next_order: u64,
}

impl BroadcastQueue {
    /// Queue `update`, replacing any queued update of the same member and topic.
    pub fn push(&mut self, update: Update) {
        let key = update.key();
        self.items.retain(|p| p.key != key);
        let size = update.encoded_len();
        self.items.push(Pending {
            key,
            update,
            size,
            transmits: 0,
            order: self.next_order,
        });
        self.next_order += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Take up to `max_count` updates whose encoded sizes sum to at most `budget` bytes, skipping
    /// `exclude`; count one transmission for each and drop those that reached `limit`.
    pub fn select(
        &mut self,
        budget: usize,
        max_count: usize,
        limit: u32,
        exclude: Option<(NodeId, Topic)>,
    ) -> Vec<Update> {
        if self.items.is_empty() || max_count == 0 {
            return Vec::new();
        }
        self.items
            .sort_by(|a, b| a.transmits.cmp(&b.transmits).then(b.order.cmp(&a.order)));
        let mut out = Vec::new();
        let mut used = 0usize;
        for p in &mut self.items {
            if out.len() >= max_count {
                break;
            }
            if Some(p.key) == exclude || used.saturating_add(p.size) > budget {
                continue;
            }
            used += p.size;
            p.transmits += 1;
            out.push(p.update.clone());
        }
        self.items.retain(|p| p.transmits < limit);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(n: u16, inc: u32) -> Update {
        Update::Alive {
            node: NodeId(n),
            incarnation: inc,
        }
    }

    #[test]
    fn newest_least_sent_first_replaced_by_key_and_retired_at_limit() {
        let mut q = BroadcastQueue::default();
        q.push(alive(1, 0));
        q.push(alive(2, 0));
        q.push(alive(1, 1)); // replaces (1, 0)
        assert_eq!(q.len(), 2);
        let first = q.select(1000, 1, 2, None);
        assert_eq!(first, vec![alive(1, 1)]);
        // (2,0) has fewer transmissions now.
        assert_eq!(q.select(1000, 1, 2, None), vec![alive(2, 0)]);
        assert_eq!(q.select(1000, 5, 2, None), vec![alive(1, 1), alive(2, 0)]);
        assert!(q.is_empty());
    }

    #[test]
    fn respects_byte_budget_and_exclusion() {
        let mut q = BroadcastQueue::default();
        for n in 0..10 {
            q.push(alive(n, 0));
        }
        let one = alive(0, 0).encoded_len();
        assert_eq!(q.select(one * 3, 100, 5, None).len(), 3);
        let got = q.select(10_000, 100, 5, Some((NodeId(9), Topic::Liveness)));
        assert_eq!(got.len(), 9);
        assert!(!got.contains(&alive(9, 0)));
    }
}
