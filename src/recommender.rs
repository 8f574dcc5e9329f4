//! A model plus its scratch buffers, with a string-id convenience layer.
//!
//! The typed path ([`Recommender::rerank_indices`]) is the hot one; the
//! string path maps ids to indices and back around it. Both the wasm
//! bindings and the native tools use this type, so they share every line.

use crate::experiment::{Experiment, ExperimentError, Order};
use crate::format::DecodeError;
use crate::model::Model;
use crate::numeric::sort_u64;
use crate::profile::Profile;
use crate::rank::{RankerParams, Ranking};
use crate::rules::{ApplyContext, CompiledRules, RuleNote, RuleSet, RulesError};
use crate::score::{rerank_into, RerankError, Scratch};
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
    /// Reasons, in the same order (empty unless asked for), with what the
    /// business rules did appended ("; pinned to slot 1").
    pub reasons: Vec<String>,
    /// The item behind each reason (empty unless asked for): the signal
    /// item of a "viewed together" reason, the user's latest signal in the
    /// category of a category reason, else "" ([`Recommender::because`]).
    pub because: Vec<String>,
}

/// The last ranking's reasons as a table of distinct entries and a code
/// per position ([`Recommender::explanations`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Explanations<'s> {
    /// Per position, its entry in `texts` and `because`.
    pub codes: Vec<u32>,
    /// Reason texts, with what the rules did appended.
    pub texts: Vec<String>,
    /// The item behind each entry, or "".
    pub because: Vec<&'s str>,
}

/// Which item-to-item table [`Recommender::similar`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighbourKind {
    /// Viewed together (the scorer's neighbour table).
    Similar,
    /// Bought together (carts and purchases).
    Complement,
}

/// One neighbour from [`Recommender::similar`].
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    /// The model index.
    pub index: u32,
    /// The neighbour score (the table's dequantized similarity; 0 for a
    /// category fill).
    pub score: f32,
    /// Whether it fills the list from the query's category (trending
    /// first) rather than coming from the table.
    pub same_category: bool,
}

impl Neighbour {
    /// What links it to the query, as a word a page can branch on:
    /// `"similar"` (viewed together), `"complement"` (bought together) or
    /// `"category"` (a category fill).
    pub fn link(&self, kind: NeighbourKind) -> &'static str {
        match (self.same_category, kind) {
            (true, _) => "category",
            (false, NeighbourKind::Similar) => "similar",
            (false, NeighbourKind::Complement) => "complement",
        }
    }

    /// Why it is listed for item `of`, as text: "viewed together with X",
    /// "bought together with X" or "more from CATEGORY".
    pub fn reason(&self, model: &Model, of: &str, kind: NeighbourKind) -> String {
        match (self.same_category, kind) {
            (true, _) => format!(
                "more from {}",
                model.category_name(model.category_of(self.index))
            ),
            (false, NeighbourKind::Complement) => format!("bought together with {of}"),
            (false, NeighbourKind::Similar) => format!("viewed together with {of}"),
        }
    }
}

/// The shop's own order, as a control variant serves it: the candidates as
/// given, unscored and unexplained, less those `rules` take off every page
/// (sold out or filtered), as the edge's default page drops them.
fn shop_order(
    ctx: &ApplyContext<'_, '_>,
    rules: &CompiledRules,
    explain: bool,
    ranking: &mut Ranking,
) {
    ranking.order.clear();
    ranking.order.extend(
        (0..ctx.candidates.len() as u32)
            .filter(|&p| !rules.leaves_page(ctx, ctx.candidates[p as usize])),
    );
    let n = ranking.order.len();
    ranking.scores.clear();
    ranking.scores.resize(n, 0.0);
    ranking.reasons.clear();
    ranking.rules.clear();
    if explain {
        ranking.reasons.resize(n, crate::rank::Reason::None);
        ranking.rules.resize(n, crate::rank::RuleNote::default());
    }
    ranking.signals_used = 0;
}

/// A loaded model, ready to rerank.
#[derive(Debug, Clone)]
pub struct Recommender {
    model: Model,
    ranker: RankerParams,
    scratch: Scratch,
    ranking: Ranking,
    profile: Option<Profile>,
    rules: CompiledRules,
    user_key: String,
    sold_out: Vec<String>,
    experiment: Option<Running>,
    visitor: String,
}

/// An experiment in force: its variants' rankers and rules, ready to use.
#[derive(Debug, Clone)]
struct Running {
    experiment: Experiment,
    /// Per variant: a hand-set ranker, and its own rules (compiled).
    serve: Vec<(Option<RankerParams>, Option<CompiledRules>)>,
    /// The set visitor's variant.
    current: Option<usize>,
}

impl Recommender {
    /// Decodes and validates a model blob.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self::new(Model::from_bytes(bytes)?))
    }

    /// Wraps a validated model, ranking with the ranker it ships.
    pub fn new(model: Model) -> Self {
        let ranker = model.ranker().clone();
        // The blob's rules were validated when it was decoded.
        let rules = model
            .rules()
            .cloned()
            .and_then(|r| CompiledRules::new(r, &model).ok())
            .unwrap_or_default();
        Recommender {
            model,
            ranker,
            scratch: Scratch::new(),
            ranking: Ranking::default(),
            profile: None,
            rules,
            user_key: String::new(),
            sold_out: Vec::new(),
            experiment: None,
            visitor: String::new(),
        }
    }

    /// Runs `experiment` from the next rerank on (`None` ends it). A
    /// malformed one is an error naming the field, and the experiment in
    /// force stays. The visitor set by [`Recommender::set_visitor`] keeps
    /// its id and gets its variant in the new experiment.
    pub fn set_experiment(
        &mut self,
        experiment: Option<Experiment>,
    ) -> Result<(), ExperimentError> {
        let Some(experiment) = experiment else {
            self.experiment = None;
            return Ok(());
        };
        experiment.validate()?;
        let ids: Vec<&str> = self.sold_out.iter().map(String::as_str).collect();
        let mut serve = Vec::with_capacity(experiment.variants.len());
        for (k, v) in experiment.variants.iter().enumerate() {
            let ranker = v.ranker_kind().map(RankerParams::preset);
            let rules = match &v.rules {
                Some(r) => {
                    let as_error = |source| ExperimentError::Rules { variant: k, source };
                    let mut c = CompiledRules::new(r.clone(), &self.model).map_err(as_error)?;
                    c.set_sold_out(&self.model, &ids).map_err(as_error)?;
                    Some(c)
                }
                None => None,
            };
            serve.push((ranker, rules));
        }
        let current = experiment.assign(&self.visitor);
        self.experiment = Some(Running {
            experiment,
            serve,
            current,
        });
        Ok(())
    }

    /// The experiment in force, if any.
    pub fn experiment(&self) -> Option<&Experiment> {
        self.experiment.as_ref().map(|r| &r.experiment)
    }

    /// The visitor the following reranks are for: a random first-party id
    /// the page or the worker keeps. Returns the name of the variant it
    /// falls in ([`Recommender::variant`]).
    pub fn set_visitor(&mut self, visitor: &str) -> Option<&str> {
        self.visitor = visitor.to_string();
        if let Some(r) = &mut self.experiment {
            r.current = r.experiment.assign(visitor);
        }
        self.variant()
    }

    /// Whose order the set visitor's variant shows (`None`: no variant,
    /// so nestrank's).
    pub fn variant_order(&self) -> Option<Order> {
        let r = self.experiment.as_ref()?;
        r.current.map(|k| r.experiment.variants[k].order)
    }

    /// The variant that serves the set visitor, or `None` (no experiment,
    /// or no visitor id): the name to tag shown pages and events with.
    pub fn variant(&self) -> Option<&str> {
        let r = self.experiment.as_ref()?;
        r.current.map(|k| r.experiment.variants[k].name.as_str())
    }

    /// Replaces the blob's rules with `rules` (operations' run-time
    /// override), or goes back to the blob's with `None`. The sold-out
    /// list stays.
    pub fn set_rules(&mut self, rules: Option<RuleSet>) -> Result<(), RulesError> {
        let rules = rules
            .or_else(|| self.model.rules().cloned())
            .unwrap_or_default();
        let mut compiled = CompiledRules::new(rules, &self.model)?;
        let ids: Vec<&str> = self.sold_out.iter().map(String::as_str).collect();
        compiled.set_sold_out(&self.model, &ids)?;
        self.rules = compiled;
        Ok(())
    }

    /// The rules in force (the blob's, or the last [`Recommender::set_rules`]).
    pub fn rules(&self) -> &RuleSet {
        self.rules.rules()
    }

    /// Items sold out right now: filtered from every page and neighbour
    /// list until the next call (an empty list clears it).
    pub fn set_sold_out(&mut self, ids: &[&str]) -> Result<(), RulesError> {
        self.rules.set_sold_out(&self.model, ids)?;
        if let Some(r) = &mut self.experiment {
            for rules in r.serve.iter_mut().filter_map(|s| s.1.as_mut()) {
                rules.set_sold_out(&self.model, ids)?;
            }
        }
        self.sold_out = ids.iter().map(|s| s.to_string()).collect();
        Ok(())
    }

    /// The key that seeds the exploration draw (an anonymous device or user
    /// id): the same key sees the same page all day.
    pub fn set_user_key(&mut self, key: &str) {
        self.user_key = key.to_string();
    }

    /// The neighbours of item `id` in the `kind` table, strongest first: at
    /// most `k`, only those in `within` when given, never a sold-out or
    /// filtered item. With `fill`, a `Similar` list shorter than `k` is
    /// topped up with the query's category's trending items (marked
    /// [`Neighbour::same_category`]). An id the model does not know has none.
    pub fn similar(
        &self,
        id: &str,
        kind: NeighbourKind,
        k: usize,
        within: Option<&[&str]>,
        fill: bool,
    ) -> Vec<Neighbour> {
        let Some(index) = self.model.index_of(id) else {
            return Vec::new();
        };
        let allowed: Option<Vec<u32>> = within.map(|ids| {
            let mut v: Vec<u32> = ids.iter().filter_map(|s| self.model.index_of(s)).collect();
            crate::numeric::sort_u32(&mut v);
            v
        });
        let row: Box<dyn Iterator<Item = (u32, f32)>> = match kind {
            NeighbourKind::Similar => Box::new(self.model.neighbours(index)),
            NeighbourKind::Complement => Box::new(self.model.complements(index)),
        };
        let ok = |j: u32| {
            j != index
                && !self.rules.is_filtered(j)
                && allowed.as_ref().is_none_or(|a| a.binary_search(&j).is_ok())
        };
        let mut out: Vec<Neighbour> = row
            .filter(|&(j, _)| ok(j))
            .take(k)
            .map(|(index, score)| Neighbour {
                index,
                score,
                same_category: false,
            })
            .collect();
        let category = self.model.category_of(index);
        if fill
            && kind == NeighbourKind::Similar
            && out.len() < k
            && category != crate::model::NO_CATEGORY
        {
            let pool: Box<dyn Iterator<Item = u32>> = match &allowed {
                Some(a) => Box::new(a.iter().copied()),
                None => Box::new(0..self.model.item_count() as u32),
            };
            // Ascending indices (the pool's order), then by trend: ties
            // stay in index order.
            let mut more: Vec<u32> = pool
                .filter(|&j| self.model.category_of(j) == category && ok(j))
                .filter(|j| !out.iter().any(|n| n.index == *j))
                .collect();
            crate::numeric::sort_u32(&mut more);
            let trend: Vec<f32> = more.iter().map(|&j| self.model.trend(j)).collect();
            let mut order: Vec<u32> = (0..more.len() as u32).collect();
            crate::numeric::sort_by_score_desc(&mut order, &trend, &mut Vec::new());
            out.extend(order.iter().take(k - out.len()).map(|&p| Neighbour {
                index: more[p as usize],
                score: 0.0,
                same_category: true,
            }));
        }
        out
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

    /// Why the set profile's embedding is not used with this model (it was
    /// built for another model, or in another dimension), or `None` when it
    /// is used or there is none.
    pub fn embedding_warning(&self) -> Option<String> {
        let e = self.profile.as_ref()?.embedding.as_ref()?;
        if crate::score::embedding_fits(e, &self.model) {
            return None;
        }
        Some(format!(
            "the profile's embedding is for model {:016x} ({} factors), not this model {} ({} factors): ranking without it",
            e.model_id,
            e.codes.len(),
            self.model.model_id(),
            self.model.factors().map_or(0, |f| f.dim)
        ))
    }

    /// Whether the set profile carries an embedding this model uses.
    pub fn uses_embedding(&self) -> bool {
        self.profile
            .as_ref()
            .and_then(|p| p.embedding.as_ref())
            .is_some_and(|e| crate::score::embedding_fits(e, &self.model))
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

    /// An item's reason with what the rules did appended.
    pub fn reason_text(
        &self,
        reason: &crate::rank::Reason,
        note: Option<&crate::rules::RuleNote>,
    ) -> String {
        let base = reason.text(&self.model);
        let extra = note.map(|n| n.text(self.rules.rules())).unwrap_or_default();
        match (base.is_empty(), extra.is_empty()) {
            (_, true) => base,
            (true, false) => extra,
            (false, false) => format!("{base}; {extra}"),
        }
    }

    /// The item behind each of the first `shown` reasons of the last
    /// ranking, for a page that names it ("because you viewed X"): the
    /// signal item of a "viewed together" reason; for a category reason,
    /// the user's latest signal (not in the future) in that category; else
    /// "". `signals` are the ones the ranking was made from.
    pub fn because<'s>(
        &'s self,
        signals: &[(&'s str, u8, f64)],
        now: f64,
        shown: usize,
    ) -> Vec<&'s str> {
        let ex = self.explanations(signals, now, shown);
        ex.codes.iter().map(|&c| ex.because[c as usize]).collect()
    }

    /// For each category a signal falls in, the position of the user's
    /// latest signal there (ts finite, not after `now`; the last of equal
    /// times), sorted by category: one pass over the signals instead of one
    /// per item. Empty when no reason names a category.
    fn latest_by_category(
        &self,
        reasons: &[crate::rank::Reason],
        signals: &[(&str, u8, f64)],
        now: f64,
    ) -> Vec<(u32, usize)> {
        if !reasons
            .iter()
            .any(|r| matches!(r, crate::rank::Reason::Category(_)))
        {
            return Vec::new();
        }
        let n = self.model.item_count();
        // (category, position) of every signal that counts, sorted.
        let mut keys: Vec<u64> = Vec::with_capacity(signals.len());
        for (j, s) in signals.iter().enumerate() {
            if let Some(i) = self.model.index_of(s.0).filter(|&i| (i as usize) < n) {
                if s.2.is_finite() && s.2 <= now {
                    keys.push((u64::from(self.model.category_of(i)) << 32) | j as u64);
                }
            }
        }
        sort_u64(&mut keys);
        let mut latest: Vec<(u32, usize)> = Vec::new();
        for key in keys {
            let (c, j) = ((key >> 32) as u32, (key & u64::from(u32::MAX)) as usize);
            match latest.last_mut() {
                Some((last, best)) if *last == c => {
                    if signals[j].2.total_cmp(&signals[*best].2).is_ge() {
                        *best = j;
                    }
                }
                _ => latest.push((c, j)),
            }
        }
        latest
    }

    /// [`Recommender::because`] of one reason.
    fn because_of<'s>(
        &'s self,
        reason: &crate::rank::Reason,
        signals: &[(&'s str, u8, f64)],
        latest: &[(u32, usize)],
    ) -> &'s str {
        match *reason {
            crate::rank::Reason::SimilarTo(i) => self.model.id_of(i),
            crate::rank::Reason::Category(c) => latest
                .binary_search_by_key(&c, |&(c, _)| c)
                .map_or("", |at| signals[latest[at].1].0),
            _ => "",
        }
    }

    /// The first `shown` reasons of the last ranking as distinct entries
    /// and a code per position: [`Recommender::reason_text`] of position
    /// `k` is `texts[codes[k]]`, and its [`Recommender::because`] is
    /// `because[codes[k]]`. A page of 500 items has a dozen distinct
    /// reasons: each text is built once, and the wasm binding hands the
    /// page the short table and the codes.
    pub fn explanations<'s>(
        &'s self,
        signals: &[(&'s str, u8, f64)],
        now: f64,
        shown: usize,
    ) -> Explanations<'s> {
        let reasons = &self.ranking.reasons[..shown.min(self.ranking.reasons.len())];
        let notes = &self.ranking.rules;
        let latest = self.latest_by_category(reasons, signals, now);
        let mut out = Explanations {
            codes: vec![0; reasons.len()],
            texts: Vec::new(),
            because: Vec::new(),
        };
        // Positions whose reason alone decides the text (no rule note),
        // sorted by the reason's key above the position: runs of equal
        // reasons share an entry. The others get an entry each.
        const POSITION_BITS: u32 = 28;
        let plain = |k: usize| notes.get(k).is_none_or(|n| *n == RuleNote::default());
        let mut keys: Vec<u64> = Vec::with_capacity(reasons.len());
        for (k, r) in reasons.iter().enumerate() {
            if plain(k) && k < 1 << POSITION_BITS {
                keys.push((r.key() << POSITION_BITS) | k as u64);
            } else {
                out.codes[k] = out.texts.len() as u32;
                out.texts.push(self.reason_text(r, notes.get(k)));
                out.because.push(self.because_of(r, signals, &latest));
            }
        }
        sort_u64(&mut keys);
        let mut previous = None;
        for key in keys {
            let k = (key & ((1 << POSITION_BITS) - 1)) as usize;
            if previous != Some(key >> POSITION_BITS) {
                previous = Some(key >> POSITION_BITS);
                out.texts.push(self.reason_text(&reasons[k], None));
                out.because
                    .push(self.because_of(&reasons[k], signals, &latest));
            }
            out.codes[k] = out.texts.len() as u32 - 1;
        }
        out
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
        self.rerank_indices_with_new_ids(candidates, signals, now, explain, &[])
    }

    /// [`Recommender::rerank_indices`] where candidate index
    /// `item_count + k` is the new item `new_ids[k]` (one the model does not
    /// know), so that rules naming it (a pin, a sold-out id) still apply.
    pub fn rerank_indices_with_new_ids(
        &mut self,
        candidates: &[u32],
        signals: Signals<'_>,
        now: f64,
        explain: bool,
        new_ids: &[&str],
    ) -> Result<&Ranking, RerankError> {
        let n = self.model.item_count() as u32;
        let unknown_id = |k: u32| -> Option<&str> {
            k.checked_sub(n)
                .and_then(|k| new_ids.get(k as usize).copied())
        };
        let signals = match signals.profile {
            Some(_) => signals,
            None => signals.with_profile(self.profile.as_ref()),
        };
        let ctx = ApplyContext {
            model: &self.model,
            candidates,
            unknown_id: &unknown_id,
            user_key: &self.user_key,
            now,
            explain,
        };
        let (ranker, rules) = match &self.experiment {
            Some(Running {
                experiment,
                serve,
                current: Some(k),
            }) => {
                if experiment.variants[*k].order == Order::Shop {
                    shop_order(&ctx, &self.rules, explain, &mut self.ranking);
                    return Ok(&self.ranking);
                }
                let (ranker, rules) = &serve[*k];
                (
                    ranker.as_ref().unwrap_or(&self.ranker),
                    rules.as_ref().unwrap_or(&self.rules),
                )
            }
            _ => (&self.ranker, &self.rules),
        };
        rerank_into(
            &self.model,
            ranker,
            &mut self.scratch,
            candidates,
            signals,
            now,
            explain,
            &mut self.ranking,
        )?;
        rules.apply(&ctx, &mut self.ranking);
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
        // New ids by their index past the table, for rules naming them.
        let mut new_ids: Vec<&str> = vec![""; unknown.len()];
        for (&id, &k) in &unknown {
            new_ids[(k - n) as usize] = id;
        }
        self.rerank_indices_with_new_ids(&cand, sig, now, explain, &new_ids)
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
        let ex = self.explanations(&coded, now, r.reasons.len());
        Ok(IdRanking {
            items: r
                .order
                .iter()
                .map(|&p| candidates[p as usize].to_string())
                .collect(),
            scores: r.scores.clone(),
            reasons: ex
                .codes
                .iter()
                .map(|&c| ex.texts[c as usize].clone())
                .collect(),
            because: ex
                .codes
                .iter()
                .map(|&c| ex.because[c as usize].to_string())
                .collect(),
        })
    }
}
