//! A model plus its scratch buffers, with a string-id convenience layer.
//!
//! The typed path ([`Recommender::rerank_indices`]) is the hot one; the
//! string path maps ids to indices and back around it. Both the wasm
//! bindings and the native tools use this type, so they share every line.

use crate::format::DecodeError;
use crate::model::Model;
use crate::profile::Profile;
use crate::rank::{rerank_into, RankerParams, Ranking, RerankError, Scratch};
use crate::signals::{Event, Signals};
use std::collections::HashMap;

/// The index meaning "an id the model does not know"; ignored in signals.
pub const UNKNOWN: u32 = u32::MAX;

/// A reranked list in string ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IdRanking {
    /// Candidate ids, best first.
    pub items: Vec<String>,
    /// Scores, in the same order.
    pub scores: Vec<f32>,
    /// Reasons, in the same order (empty unless asked for).
    pub reasons: Vec<String>,
}

/// A loaded model, ready to rerank.
#[derive(Debug, Clone)]
pub struct Recommender {
    model: Model,
    ranker: RankerParams,
    scratch: Scratch,
    ranking: Ranking,
    profile: Option<Profile>,
}

impl Recommender {
    /// Decodes and validates a model blob.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self::new(Model::from_bytes(bytes)?))
    }

    /// Wraps a validated model, ranking with the ranker it ships.
    pub fn new(model: Model) -> Self {
        let ranker = model.ranker().clone();
        Recommender {
            model,
            ranker,
            scratch: Scratch::new(),
            ranking: Ranking::default(),
            profile: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Ranks with other parameters than the blob's (the builder's baselines).
    pub fn set_ranker(&mut self, ranker: RankerParams) -> Result<(), DecodeError> {
        ranker.validate()?;
        self.ranker = ranker;
        Ok(())
    }

    /// The family's profile for the calls that follow (the stage, gender and
    /// brand features), or none.
    pub fn set_profile(&mut self, profile: Option<Profile>) {
        self.profile = profile;
    }

    /// The profile set by [`Recommender::set_profile`].
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// The model index of each id, [`UNKNOWN`] where the model lacks it.
    pub fn index_of(&self, ids: &[&str]) -> Vec<u32> {
        ids.iter()
            .map(|id| self.model.index_of(id).unwrap_or(UNKNOWN))
            .collect()
    }

    /// The ranking of the last rerank call.
    pub fn last_ranking(&self) -> &Ranking {
        &self.ranking
    }

    /// The typed hot path: candidate positions in display order. The
    /// profile set by [`Recommender::set_profile`] is used unless `signals`
    /// carries one.
    pub fn rerank_indices(
        &mut self,
        candidates: &[u32],
        signals: Signals<'_>,
        now: f64,
        explain: bool,
    ) -> Result<&Ranking, RerankError> {
        let signals = match signals.profile {
            Some(_) => signals,
            None => signals.with_profile(self.profile.as_ref()),
        };
        rerank_into(
            &self.model,
            &self.ranker,
            &mut self.scratch,
            candidates,
            signals,
            now,
            explain,
            &mut self.ranking,
        )?;
        Ok(&self.ranking)
    }

    /// The string path. An id the model does not know is still matched
    /// between candidates and signals (a signal on a new item lifts that
    /// item), and otherwise scores by nothing: it keeps its given order
    /// among equals. Returns positions into `candidates`, as the typed path.
    ///
    /// Signals are `(id, event code, ts)`; a code outside 0..=3 or a
    /// non-finite time makes the scorer skip that signal.
    pub fn rerank_id_positions<'a>(
        &mut self,
        candidates: &[&'a str],
        signals: &[(&'a str, u8, f64)],
        now: f64,
        explain: bool,
    ) -> Result<&Ranking, RerankError> {
        let n = self.model.item_count() as u32;
        let mut unknown: HashMap<&str, u32> = HashMap::new();
        let mut index = |id: &'a str, add: bool| -> u32 {
            if let Some(i) = self.model.index_of(id) {
                return i;
            }
            if let Some(&k) = unknown.get(id) {
                return k;
            }
            let next = u64::from(n) + unknown.len() as u64;
            if add && next < u64::from(UNKNOWN) {
                unknown.insert(id, next as u32);
                return next as u32;
            }
            UNKNOWN
        };
        let cand: Vec<u32> = candidates.iter().map(|id| index(id, true)).collect();
        let items: Vec<u32> = signals.iter().map(|s| index(s.0, false)).collect();
        let events: Vec<u8> = signals.iter().map(|s| s.1).collect();
        let ts: Vec<f64> = signals.iter().map(|s| s.2).collect();
        let sig = Signals::new(&items, &events, &ts).expect("equal lengths by construction");
        self.rerank_indices(&cand, sig, now, explain)
    }

    /// [`Recommender::rerank_id_positions`] with ids, scores and reason texts.
    pub fn rerank_ids<'a>(
        &mut self,
        candidates: &[&'a str],
        signals: &[(&'a str, Event, f64)],
        now: f64,
        explain: bool,
    ) -> Result<IdRanking, RerankError> {
        let coded: Vec<(&str, u8, f64)> = signals.iter().map(|s| (s.0, s.1 as u8, s.2)).collect();
        self.rerank_id_positions(candidates, &coded, now, explain)?;
        let r = &self.ranking;
        Ok(IdRanking {
            items: r
                .order
                .iter()
                .map(|&p| candidates[p as usize].to_string())
                .collect(),
            scores: r.scores.clone(),
            reasons: r.reasons.iter().map(|x| x.text(&self.model)).collect(),
        })
    }
}
