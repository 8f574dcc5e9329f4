//! The scorer: per-candidate features from local signals, a linear ranker
//! over them, a stable sort, and a short reason per item.
//!
//! Every ranker the builder evaluates (random, popular, recent, category,
//! itemcf, hybrid) is a [`RankerParams`] run through this one function, so
//! offline figures come from the very code the phone runs.

use crate::format::DecodeError;
use crate::model::{Model, NO_CATEGORY};
use crate::signals::{Event, Signals};
use wincode::{SchemaRead, SchemaWrite};

/// The number of features per candidate.
pub const NUM_FEATURES: usize = 7;

/// Feature names, in feature order (the ranker's weights follow it).
pub const FEATURE_NAMES: [&str; NUM_FEATURES] = [
    "own_recency",
    "own_weight",
    "similarity",
    "category_count",
    "category_share",
    "popularity",
    "trend",
];

/// `1 / (1 + hours since the user's latest signal on this very item)`; 0 if none.
pub const F_OWN_RECENCY: usize = 0;
/// Event-weighted, decayed sum of the user's signals on this very item.
pub const F_OWN_WEIGHT: usize = 1;
/// Event-weighted, decayed sum of neighbour similarity to the signal items.
pub const F_SIMILARITY: usize = 2;
/// `ln(1 + number of signals in the candidate's category)`.
pub const F_CATEGORY_COUNT: usize = 3;
/// Share of the user's decayed signal weight in the candidate's category.
pub const F_CATEGORY_SHARE: usize = 4;
/// Conversions in the 7 days before as-of, log-scaled to `[0, 1]`.
pub const F_POPULARITY: usize = 5;
/// Decayed activity before as-of, log-scaled to `[0, 1]`.
pub const F_TREND: usize = 6;

const NONE: u32 = u32::MAX;

/// The ranker's parameters, stored in the blob's `ranker` section.
#[derive(Debug, Clone, PartialEq, SchemaWrite, SchemaRead)]
pub struct RankerParams {
    /// Weight of each event kind (view, fav, cart, purchase), `>= 0`.
    pub event_weights: Vec<f32>,
    /// Half-life, in hours, of a signal's weight for the own-item feature.
    pub half_life_own_h: f32,
    /// Half-life, in hours, for the similarity feature.
    pub half_life_sim_h: f32,
    /// Half-life, in hours, for the category-share feature.
    pub half_life_cat_h: f32,
    /// One weight per feature, in [`FEATURE_NAMES`] order.
    pub weights: Vec<f32>,
}

/// The rankers the project ships and evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankerKind {
    /// No personalization: the candidates' given order.
    Random,
    /// Conversions in the last 7 days.
    Popular,
    /// The user's own items, most recent first; the rest by popularity.
    Recent,
    /// The user's signal count in the candidate's category.
    Category,
    /// Item-item similarity to the user's decayed signals.
    ItemCf,
    /// The shipped blend of every feature.
    Hybrid,
}

impl RankerKind {
    /// All kinds, in report order.
    pub const ALL: [RankerKind; 6] = [
        RankerKind::Random,
        RankerKind::Popular,
        RankerKind::Recent,
        RankerKind::Category,
        RankerKind::ItemCf,
        RankerKind::Hybrid,
    ];

    /// The report name.
    pub fn name(self) -> &'static str {
        match self {
            RankerKind::Random => "random",
            RankerKind::Popular => "popular",
            RankerKind::Recent => "recent",
            RankerKind::Category => "category",
            RankerKind::ItemCf => "itemcf",
            RankerKind::Hybrid => "hybrid",
        }
    }
}

impl RankerParams {
    /// The default event weights and half-lives, with all feature weights zero.
    fn base() -> Self {
        RankerParams {
            event_weights: vec![1.0, 2.0, 3.0, 4.0],
            half_life_own_h: 24.0,
            half_life_sim_h: 72.0,
            half_life_cat_h: 6.0,
            weights: vec![0.0; NUM_FEATURES],
        }
    }

    /// The parameters of a baseline ranker, or the default hybrid.
    pub fn preset(kind: RankerKind) -> Self {
        let mut p = Self::base();
        let w = &mut p.weights;
        match kind {
            RankerKind::Random => {}
            RankerKind::Popular => w[F_POPULARITY] = 1.0,
            RankerKind::Recent => {
                // Own recency is >= 1/(1+hours) >= 1e-4 for a year-old signal,
                // so 1e5 puts every own item above any popularity in [0, 1].
                w[F_OWN_RECENCY] = 1e5;
                w[F_POPULARITY] = 1.0;
            }
            RankerKind::Category => w[F_CATEGORY_COUNT] = 1.0,
            RankerKind::ItemCf => w[F_SIMILARITY] = 1.0,
            RankerKind::Hybrid => {
                w[F_OWN_RECENCY] = 2.0;
                w[F_OWN_WEIGHT] = 0.5;
                w[F_SIMILARITY] = 1.0;
                w[F_CATEGORY_COUNT] = 0.1;
                w[F_CATEGORY_SHARE] = 1.0;
                w[F_POPULARITY] = 0.2;
                w[F_TREND] = 0.1;
            }
        }
        p
    }

    /// Checks lengths and that every number is finite and in range.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.event_weights.len() != Event::ALL.len() {
            return Err(DecodeError::LengthMismatch {
                what: "ranker.event_weights vs event kinds",
                left: self.event_weights.len() as u64,
                right: Event::ALL.len() as u64,
            });
        }
        if self.weights.len() != NUM_FEATURES {
            return Err(DecodeError::LengthMismatch {
                what: "ranker.weights vs features",
                left: self.weights.len() as u64,
                right: NUM_FEATURES as u64,
            });
        }
        if self.weights.iter().any(|w| !w.is_finite()) {
            return Err(DecodeError::NonFinite {
                what: "ranker.weights",
            });
        }
        if self
            .event_weights
            .iter()
            .any(|w| !w.is_finite() || *w < 0.0)
        {
            return Err(DecodeError::NonFinite {
                what: "ranker.event_weights",
            });
        }
        for h in [
            self.half_life_own_h,
            self.half_life_sim_h,
            self.half_life_cat_h,
        ] {
            if !h.is_finite() || h <= 0.0 {
                return Err(DecodeError::OutOfRange {
                    what: "ranker half-life",
                });
            }
        }
        Ok(())
    }
}

/// Why an item is where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    /// Nothing stood out.
    None,
    /// The user's own signal on this item, by its strongest event.
    Own(Event),
    /// Similar to this item (a model index) from the user's signals.
    SimilarTo(u32),
    /// In a category (a model category index) the user browses.
    Category(u32),
    /// Popular recently.
    Popular,
}

impl Reason {
    /// The reason as a short sentence for the page.
    pub fn text(&self, model: &Model) -> String {
        match *self {
            Reason::None => String::new(),
            Reason::Own(Event::View) => "you viewed this".into(),
            Reason::Own(Event::Fav) => "in your favourites".into(),
            Reason::Own(Event::Cart) => "in your cart".into(),
            Reason::Own(Event::Purchase) => "you bought this before".into(),
            Reason::SimilarTo(i) => format!("viewed together with {}", model.id_of(i)),
            Reason::Category(c) => format!("from category {} you browse", model.category_name(c)),
            Reason::Popular => "popular this week".into(),
        }
    }
}

/// A reranked list: positions into the candidate array, best first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranking {
    /// Candidate positions in display order (a permutation of `0..candidates.len()`).
    pub order: Vec<u32>,
    /// The score of each displayed item, in display order.
    pub scores: Vec<f32>,
    /// The reason of each displayed item, in display order (empty unless asked for).
    pub reasons: Vec<Reason>,
}

/// Why a rerank call could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RerankError {
    /// `now` must be a finite number of Unix seconds.
    #[error("`now` must be a finite number of Unix seconds")]
    BadNow,
}

/// Reusable buffers, so that a rerank allocates nothing once warm.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    pos_of: Vec<u32>,
    src_weight: Vec<f32>,
    src_touched: Vec<u32>,
    cat_weight: Vec<f32>,
    cat_count: Vec<u32>,
    cat_touched: Vec<u32>,
    extra: Vec<(u32, u32)>,
    features: Vec<[f32; NUM_FEATURES]>,
    best_source: Vec<(f32, u32)>,
    own_event: Vec<u8>,
    scores: Vec<f32>,
}

impl Scratch {
    /// Empty buffers; they grow to the model's size on first use.
    pub fn new() -> Self {
        Self::default()
    }

    fn fit(&mut self, items: usize, categories: usize) {
        if self.pos_of.len() != items {
            self.pos_of = vec![NONE; items];
            self.src_weight = vec![0.0; items];
        }
        if self.cat_count.len() != categories {
            self.cat_count = vec![0; categories];
            self.cat_weight = vec![0.0; categories];
        }
    }

    /// The features computed by the last call, by candidate position.
    pub fn features(&self) -> &[[f32; NUM_FEATURES]] {
        &self.features
    }
}

fn decay(age_s: f64, half_life_h: f32) -> f32 {
    (-(age_s / (f64::from(half_life_h) * 3600.0))).exp2() as f32
}

/// Computes the features of every candidate into `scratch` (see
/// [`Scratch::features`]). Candidates and signals are model indices as
/// [`Signals`] describes; unknown ones are tolerated.
pub fn compute_features(
    model: &Model,
    params: &RankerParams,
    scratch: &mut Scratch,
    candidates: &[u32],
    signals: Signals<'_>,
    now: f64,
) -> Result<(), RerankError> {
    if !now.is_finite() {
        return Err(RerankError::BadNow);
    }
    let n = model.item_count();
    scratch.fit(n, model.category_count());
    let m = candidates.len();
    let s = scratch;
    s.features.clear();
    s.features.resize(m, [0.0; NUM_FEATURES]);
    s.best_source.clear();
    s.best_source.resize(m, (0.0, NONE));
    s.own_event.clear();
    s.own_event.resize(m, u8::MAX);
    s.extra.clear();

    for (p, &item) in candidates.iter().enumerate() {
        if (item as usize) < n {
            if s.pos_of[item as usize] == NONE {
                s.pos_of[item as usize] = p as u32;
            }
        } else if item != NONE {
            s.extra.push((item, p as u32));
        }
    }
    s.extra.sort_unstable();
    s.extra.dedup_by_key(|e| e.0);

    let mut total_cat_weight = 0.0f32;
    for j in 0..signals.len() {
        let (item, ts) = (signals.items[j], signals.ts[j]);
        let Some(event) = Event::from_code(signals.events[j]) else {
            continue;
        };
        if item == NONE || !ts.is_finite() {
            continue;
        }
        let age = (now - ts).max(0.0);
        let ew = params.event_weights[event as usize];
        let pos = if (item as usize) < n {
            s.pos_of[item as usize]
        } else {
            match s.extra.binary_search_by_key(&item, |e| e.0) {
                Ok(k) => s.extra[k].1,
                Err(_) => NONE,
            }
        };
        if pos != NONE {
            let f = &mut s.features[pos as usize];
            f[F_OWN_RECENCY] = f[F_OWN_RECENCY].max((1.0 / (1.0 + age / 3600.0)) as f32);
            f[F_OWN_WEIGHT] += ew * decay(age, params.half_life_own_h);
            let own = &mut s.own_event[pos as usize];
            if *own == u8::MAX || *own < event as u8 {
                *own = event as u8;
            }
        }
        if (item as usize) < n {
            let w = ew * decay(age, params.half_life_sim_h);
            if w > 0.0 {
                if s.src_weight[item as usize] == 0.0 {
                    s.src_touched.push(item);
                }
                s.src_weight[item as usize] += w;
            }
            let cat = model.category_of(item);
            if cat != NO_CATEGORY {
                let c = cat as usize;
                if s.cat_count[c] == 0 {
                    s.cat_touched.push(cat);
                }
                s.cat_count[c] += 1;
                let w = ew * decay(age, params.half_life_cat_h);
                s.cat_weight[c] += w;
                total_cat_weight += w;
            }
        }
    }

    let (offsets, nb_items, nb_scores, scale) = model.neighbour_arrays();
    for &src in &s.src_touched {
        let w = s.src_weight[src as usize] * scale;
        s.src_weight[src as usize] = 0.0;
        let (a, b) = (
            offsets[src as usize] as usize,
            offsets[src as usize + 1] as usize,
        );
        for (&j, &q) in nb_items[a..b].iter().zip(&nb_scores[a..b]) {
            let p = s.pos_of[j as usize];
            if p != NONE {
                let contribution = w * f32::from(q);
                s.features[p as usize][F_SIMILARITY] += contribution;
                let best = &mut s.best_source[p as usize];
                if contribution > best.0 {
                    *best = (contribution, src);
                }
            }
        }
    }
    s.src_touched.clear();

    let inv_total = if total_cat_weight > 0.0 {
        1.0 / total_cat_weight
    } else {
        0.0
    };
    for (p, &item) in candidates.iter().enumerate() {
        if (item as usize) >= n {
            if item != NONE {
                let k = s
                    .extra
                    .binary_search_by_key(&item, |e| e.0)
                    .expect("every extra candidate was recorded");
                let first = s.extra[k].1 as usize;
                if first != p {
                    s.features[p] = s.features[first];
                    s.own_event[p] = s.own_event[first];
                }
            }
            continue;
        }
        let first = s.pos_of[item as usize] as usize;
        if first != p {
            // A repeated candidate gets the features of its first occurrence.
            s.features[p] = s.features[first];
            s.best_source[p] = s.best_source[first];
            s.own_event[p] = s.own_event[first];
            continue;
        }
        let f = &mut s.features[p];
        let cat = model.category_of(item);
        if cat != NO_CATEGORY {
            let count = s.cat_count[cat as usize];
            if count > 0 {
                f[F_CATEGORY_COUNT] = (1.0 + count as f32).ln();
                f[F_CATEGORY_SHARE] = s.cat_weight[cat as usize] * inv_total;
            }
        }
        f[F_POPULARITY] = model.popularity(item);
        f[F_TREND] = model.trend(item);
    }
    for &item in candidates {
        if (item as usize) < n {
            s.pos_of[item as usize] = NONE;
        }
    }
    for &cat in &s.cat_touched {
        s.cat_count[cat as usize] = 0;
        s.cat_weight[cat as usize] = 0.0;
    }
    s.cat_touched.clear();
    Ok(())
}

/// Reranks `candidates` for a user with `signals` at time `now` (Unix
/// seconds). The sort is stable: equal scores keep the candidates' order.
pub fn rerank(
    model: &Model,
    params: &RankerParams,
    scratch: &mut Scratch,
    candidates: &[u32],
    signals: Signals<'_>,
    now: f64,
    explain: bool,
) -> Result<Ranking, RerankError> {
    let mut ranking = Ranking::default();
    rerank_into(
        model,
        params,
        scratch,
        candidates,
        signals,
        now,
        explain,
        &mut ranking,
    )?;
    Ok(ranking)
}

/// [`rerank`] into a caller-owned [`Ranking`], reusing its buffers.
#[allow(clippy::too_many_arguments)]
pub fn rerank_into(
    model: &Model,
    params: &RankerParams,
    scratch: &mut Scratch,
    candidates: &[u32],
    signals: Signals<'_>,
    now: f64,
    explain: bool,
    out: &mut Ranking,
) -> Result<(), RerankError> {
    compute_features(model, params, scratch, candidates, signals, now)?;
    let w = &params.weights;
    scratch.scores.clear();
    scratch.scores.extend(
        scratch
            .features
            .iter()
            .map(|f| f.iter().zip(w).map(|(x, w)| x * w).sum::<f32>()),
    );
    let scores = &scratch.scores;
    out.order.clear();
    out.order.extend(0..candidates.len() as u32);
    out.order
        .sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
    out.scores.clear();
    out.scores
        .extend(out.order.iter().map(|&p| scores[p as usize]));
    out.reasons.clear();
    if explain {
        let n = model.item_count();
        for &p in &out.order {
            let p = p as usize;
            let f = &scratch.features[p];
            let own = w[F_OWN_RECENCY] * f[F_OWN_RECENCY] + w[F_OWN_WEIGHT] * f[F_OWN_WEIGHT];
            let sim = w[F_SIMILARITY] * f[F_SIMILARITY];
            let cat = w[F_CATEGORY_COUNT] * f[F_CATEGORY_COUNT]
                + w[F_CATEGORY_SHARE] * f[F_CATEGORY_SHARE];
            let pop = w[F_POPULARITY] * f[F_POPULARITY] + w[F_TREND] * f[F_TREND];
            let best = own.max(sim).max(cat).max(pop);
            let item = candidates[p];
            let reason = if best <= 0.0 {
                Reason::None
            } else if best == own {
                Event::from_code(scratch.own_event[p]).map_or(Reason::None, Reason::Own)
            } else if best == sim && scratch.best_source[p].1 != NONE {
                Reason::SimilarTo(scratch.best_source[p].1)
            } else if best == cat && (item as usize) < n {
                Reason::Category(model.category_of(item))
            } else {
                Reason::Popular
            };
            out.reasons.push(reason);
        }
    }
    Ok(())
}
