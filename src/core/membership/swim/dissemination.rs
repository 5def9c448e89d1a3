//! Dissemination: sending with piggybacked updates, applying the updates heard (including
//! refutation of those about this node), publishing this node's metadata, and the full-state
//! sync of anti-entropy.

use super::Membership;
use super::state::{MemberEvent, MemberState};
use crate::core::membership::meta::NodeMeta;
use crate::core::membership::msg::{GossipMsg, Topic, Update};
use crate::core::{Instant, NodeId, Transmit};

/// Updates per Sync chunk at most (postcard's one-byte length prefix).
const MAX_SYNC_UPDATES: usize = 127;

impl Membership {
    // ----- sending -----

    pub(super) fn liveness_update(&self, id: NodeId) -> Option<Update> {
        let m = self.members.get(&id)?;
        Some(match m.state {
            MemberState::Alive => Update::Alive {
                node: id,
                incarnation: m.incarnation,
            },
            MemberState::Suspect => Update::Suspect {
                node: id,
                incarnation: m.incarnation,
                from: m.accuser,
            },
            MemberState::Down => Update::Down {
                node: id,
                incarnation: m.incarnation,
                from: m.accuser,
            },
        })
    }

    pub(super) fn own_updates(&self) -> Vec<Update> {
        let mut v: Vec<Update> = self.liveness_update(self.me).into_iter().collect();
        if let Some((version, meta)) = self.members.get(&self.me).and_then(|m| m.meta.clone()) {
            v.push(Update::Meta {
                node: self.me,
                version,
                meta,
            });
        }
        v
    }

    pub(super) fn record_sent(&mut self, to: NodeId, msg: GossipMsg, bytes: usize) {
        self.stats.sent.add(msg.kind(), bytes);
        self.outbox.push_back(Transmit { to, msg });
    }

    /// Send `msg` as is (its updates are chosen by the caller).
    pub(super) fn send_plain(&mut self, to: NodeId, msg: GossipMsg) {
        let bytes = msg.encoded_len();
        self.record_sent(to, msg, bytes);
    }

    /// Send a message built by `make`, piggybacking queued updates within the byte budget. If
    /// this node thinks `to` is suspect or down, that news goes first (Lifeguard's buddy system:
    /// the accused hears it and can refute at once).
    pub(super) fn send(&mut self, to: NodeId, make: impl Fn(Vec<Update>) -> GossipMsg) {
        let base = make(Vec::new()).encoded_len();
        let mut budget = self.cfg.max_message_bytes.saturating_sub(base);
        let mut max_count = self.cfg.max_piggyback;
        let mut updates = Vec::new();
        let mut exclude = None;
        if let Some(u) = self
            .liveness_update(to)
            .filter(|u| !matches!(u, Update::Alive { .. }))
        {
            let size = u.encoded_len();
            if size <= budget {
                budget -= size;
                max_count -= 1;
                exclude = Some((to, Topic::Liveness));
                updates.push(u);
            }
        }
        updates.extend(
            self.queue
                .select(budget, max_count, self.cfg.retransmit_limit, exclude),
        );
        let msg = make(updates);
        let bytes = msg.encoded_len();
        self.record_sent(to, msg, bytes);
    }

    pub(super) fn send_gossip_to(&mut self, to: NodeId, updates: Vec<Update>) {
        self.send_plain(to, GossipMsg::Gossip { updates });
    }
    /// Apply one update heard from `sender`. Returns true if it told us that we are suspected or
    /// down (whether or not that was news), so the caller can answer the sender directly.
    pub(super) fn apply(&mut self, now: Instant, u: Update) -> bool {
        let id = u.node();
        if !self.members.contains_key(&id) {
            return false;
        }
        if id == self.me {
            return self.apply_about_me(u);
        }
        let Some(m) = self.members.get(&id) else {
            return false;
        };
        let (state, inc) = (m.state, m.incarnation);
        match u {
            Update::Alive { incarnation, .. } => {
                if incarnation > inc {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.incarnation = incarnation;
                    }
                    self.set_state(id, MemberState::Alive, now);
                    self.queue.push(u);
                }
            }
            Update::Suspect {
                incarnation, from, ..
            } => {
                let newer = incarnation > inc;
                match state {
                    MemberState::Suspect if incarnation == inc => {
                        // A new, independent confirmation: count it and pass it on.
                        let confirmed = self.confirm_suspicion(id, from);
                        if confirmed {
                            self.queue.push(u);
                        }
                    }
                    _ if newer || (state == MemberState::Alive && incarnation == inc) => {
                        self.start_suspicion(id, incarnation, from, now);
                        self.queue.push(u);
                    }
                    _ => {}
                }
            }
            Update::Down {
                incarnation, from, ..
            } => {
                if incarnation > inc || (incarnation == inc && state != MemberState::Down) {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.incarnation = incarnation;
                        m.accuser = from;
                    }
                    self.set_state(id, MemberState::Down, now);
                    self.queue.push(u);
                }
            }
            Update::Meta {
                version, ref meta, ..
            } => {
                let newer = self
                    .members
                    .get(&id)
                    .is_some_and(|m| m.meta.as_ref().is_none_or(|(v, _)| version > *v));
                if newer {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.meta = Some((version, meta.clone()));
                    }
                    self.events.push_back(MemberEvent::MetaChanged(id));
                    self.queue.push(u);
                }
            }
        }
        false
    }

    pub(super) fn apply_about_me(&mut self, u: Update) -> bool {
        let me = self.me;
        let mine = self.incarnation();
        match u {
            Update::Alive { incarnation, .. } => {
                // An older life of ours was further along: adopt, so refutations exceed it.
                if incarnation > mine
                    && let Some(m) = self.members.get_mut(&me)
                {
                    m.incarnation = incarnation;
                }
                false
            }
            Update::Suspect { incarnation, .. } | Update::Down { incarnation, .. } => {
                if incarnation >= mine {
                    if let Some(m) = self.members.get_mut(&me) {
                        m.incarnation = incarnation.saturating_add(1);
                    }
                    self.stats.refutations += 1;
                    self.health.apply(1);
                    if let Some(alive) = self.liveness_update(me) {
                        self.queue.push(alive);
                    }
                }
                true
            }
            Update::Meta { version, meta, .. } => {
                // An older life of ours published this version (or the same version with other
                // content): continue numbering above it, and if we have metadata, outbid it now.
                let conflict = version == self.own_meta_version
                    && self.local_meta.as_ref().is_some_and(|mine| *mine != meta);
                if version > self.own_meta_version || conflict {
                    self.own_meta_version = version;
                    if let Some(meta) = self.local_meta.clone() {
                        self.publish_meta(meta);
                    }
                }
                false
            }
        }
    }

    pub(super) fn publish_meta(&mut self, meta: NodeMeta) {
        self.own_meta_version += 1;
        let version = self.own_meta_version;
        if let Some(m) = self.members.get_mut(&self.me) {
            m.meta = Some((version, meta.clone()));
        }
        self.local_meta = Some(meta.clone());
        self.queue.push(Update::Meta {
            node: self.me,
            version,
            meta,
        });
    }

    /// Send this node's full view to `to` in as many Sync messages as the byte budget needs.
    pub(super) fn send_full_state(&mut self, to: NodeId, reply: bool) {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        let mut all = Vec::with_capacity(ids.len() * 2);
        for id in ids {
            all.extend(self.liveness_update(id));
            if let Some((version, meta)) = self.members.get(&id).and_then(|m| m.meta.clone()) {
                all.push(Update::Meta {
                    node: id,
                    version,
                    meta,
                });
            }
        }
        let base = GossipMsg::Sync {
            reply,
            updates: Vec::new(),
        }
        .encoded_len();
        let budget = self.cfg.max_message_bytes.saturating_sub(base);
        let mut first = true;
        let mut chunk = Vec::new();
        let mut used = 0;
        let flush = |m: &mut Membership, chunk: &mut Vec<Update>, first: &mut bool| {
            if chunk.is_empty() {
                return;
            }
            let msg = GossipMsg::Sync {
                reply: reply && *first,
                updates: std::mem::take(chunk),
            };
            *first = false;
            m.send_plain(to, msg);
        };
        for u in all {
            let size = u.encoded_len();
            if size > budget {
                continue;
            }
            if used + size > budget || chunk.len() >= MAX_SYNC_UPDATES {
                flush(self, &mut chunk, &mut first);
                used = 0;
            }
            used += size;
            chunk.push(u);
        }
        flush(self, &mut chunk, &mut first);
    }
}
