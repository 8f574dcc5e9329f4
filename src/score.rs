//! The scorer: per-candidate features from local signals, a linear ranker
//! over them, a stable sort, and the reason of each item.
//!
//! Every ranker the builder evaluates (random, popular, recent, category,
//! itemcf, hybrid) is a [`RankerParams`] run through [`rerank`], so
//! offline figures come from the very code the phone runs. The feature
//! computation is a sequence of named passes ([`compute_features`]).

use crate::model::{Model, NO_CATEGORY};
use crate::params::{
    RankerParams, F_BRAND_AFFINITY, F_CATEGORY_COUNT, F_CATEGORY_RECENCY, F_CATEGORY_SESSION,
    F_CATEGORY_SHARE, F_FACTOR, F_GENDER_FIT, F_OWN_INTENT, F_OWN_RECENCY, F_OWN_SESSION,
    F_OWN_WEIGHT, F_OWN_WEIGHT_SESSION, F_POPULARITY, F_PRICE_FIT, F_RESTOCK, F_SIMILARITY,
    F_SIMILARITY_SESSION, F_STAGE_FIT, F_TREND, NUM_FEATURES,
};
use crate::rank::{Ranking, Reason};
use crate::signals::{Event, Signals};

const NONE: u32 = u32::MAX;

/// The most signal items the factor fold-in uses: the strongest by
/// event-weighted, decayed weight (similarity half-life).
pub const MAX_FOLD_ITEMS: usize = 64;

/// The most signal items whose neighbour lists the similarity features
/// expand, chosen the same way.
pub const MAX_SOURCES: usize = 64;

/// How far in the future (seconds) a signal may lie, for clock skew
/// between the device and the server; later ones are ignored.
pub const FUTURE_SLACK_S: f64 = 600.0;

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
    src_weight: Vec<[f32; 3]>,
    src_touched: Vec<u32>,
    cat_weight: Vec<[f32; 2]>,
    cat_count: Vec<u32>,
    cat_touched: Vec<u32>,
    brand_weight: Vec<f32>,
    brand_touched: Vec<u32>,
    cat_bought: Vec<f64>,
    cat_seen: Vec<f64>,
    extra: Vec<(u32, u32)>,
    features: Vec<[f32; NUM_FEATURES]>,
    best_source: Vec<(f32, u32)>,
    own_event: Vec<u8>,
    scores: Vec<f32>,
    fold_items: Vec<(u32, f32)>,
    sources: Vec<(f32, u32, f32, f32)>,
    user: Vec<f32>,
    prior: Vec<f32>,
    fold_rows: Vec<f32>,
    fold_work: Vec<f32>,
    keys: Vec<u64>,
    signals_used: usize,
}

impl Scratch {
    /// Empty buffers; they grow to the model's size on first use.
    pub fn new() -> Self {
        Self::default()
    }

    fn fit(&mut self, items: usize, categories: usize, brands: usize) {
        if self.brand_weight.len() != brands {
            self.brand_weight = vec![0.0; brands];
        }
        if self.pos_of.len() != items {
            self.pos_of = vec![NONE; items];
            self.src_weight = vec![[0.0; 3]; items];
        }
        if self.cat_count.len() != categories {
            self.cat_bought = vec![f64::NEG_INFINITY; categories];
            self.cat_seen = vec![f64::NEG_INFINITY; categories];
            self.cat_count = vec![0; categories];
            self.cat_weight = vec![[0.0; 2]; categories];
        }
    }

    /// The features computed by the last call, by candidate position.
    pub fn features(&self) -> &[[f32; NUM_FEATURES]] {
        &self.features
    }
}

fn decay(age_s: f64, half_life_h: f32) -> f32 {
    crate::numeric::pow2_neg(age_s / (f64::from(half_life_h) * 3600.0))
}

/// Computes the features of every candidate into `scratch` (see
/// [`Scratch::features`]). Candidates and signals are model indices as
/// [`Signals`] describes; unknown ones are tolerated.
///
/// It runs in passes, each a function below: number the candidates, read
/// the signals, expand the strongest signal items' neighbour lists, fold
/// the user into the factor space, then each candidate's own features;
/// last, the marks left in the reused buffers are cleared.
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
    let s = scratch;
    s.start(model, candidates.len());
    index_candidates(s, model.item_count(), candidates);
    let totals = read_signals(s, model, params, signals, now);
    choose_sources(s);
    expand_neighbours(s, model);
    let folded = fold_in_user(s, model, params, signals);
    let context = Context::new(signals, now, &totals);
    for (p, &item) in candidates.iter().enumerate() {
        candidate_features(s, model, p, item, &context, &totals, folded);
    }
    s.clear_marks(model.item_count(), candidates);
    Ok(())
}

/// What the signals add up to over all items, for shares and the price
/// centre.
#[derive(Default)]
struct Totals {
    /// Category weights: long-term and session.
    cat: [f32; 2],
    brand: f32,
    /// Signal-weighted log prices, for the price centre.
    log_price: f64,
    price_weight: f64,
}

impl Scratch {
    /// Sizes the buffers for `model` and empties the per-call ones.
    fn start(&mut self, model: &Model, candidates: usize) {
        self.fit(
            model.item_count(),
            model.category_count(),
            model.family().map_or(0, |f| f.brands.len()),
        );
        self.features.clear();
        self.features.resize(candidates, [0.0; NUM_FEATURES]);
        self.best_source.clear();
        self.best_source.resize(candidates, (0.0, NONE));
        self.own_event.clear();
        self.own_event.resize(candidates, u8::MAX);
        self.extra.clear();
        self.signals_used = 0;
    }

    /// Resets what the passes marked in the buffers kept across calls.
    fn clear_marks(&mut self, n: usize, candidates: &[u32]) {
        for &item in candidates {
            if (item as usize) < n {
                self.pos_of[item as usize] = NONE;
            }
        }
        for &cat in &self.cat_touched {
            self.cat_bought[cat as usize] = f64::NEG_INFINITY;
            self.cat_seen[cat as usize] = f64::NEG_INFINITY;
            self.cat_count[cat as usize] = 0;
            self.cat_weight[cat as usize] = [0.0; 2];
        }
        self.cat_touched.clear();
        for &b in &self.brand_touched {
            self.brand_weight[b as usize] = 0.0;
        }
        self.brand_touched.clear();
    }

    /// The first position of `item` among the candidates, or [`NONE`].
    fn position(&self, n: usize, item: u32) -> u32 {
        if (item as usize) < n {
            self.pos_of[item as usize]
        } else {
            match self.extra.binary_search_by_key(&item, |e| e.0) {
                Ok(k) => self.extra[k].1,
                Err(_) => NONE,
            }
        }
    }
}

/// Records each candidate's first position: in `pos_of` for model items,
/// in the sorted `extra` list for ids the model does not know.
fn index_candidates(s: &mut Scratch, n: usize, candidates: &[u32]) {
    for (p, &item) in candidates.iter().enumerate() {
        if (item as usize) < n {
            if s.pos_of[item as usize] == NONE {
                s.pos_of[item as usize] = p as u32;
            }
        } else if item != NONE {
            s.extra.push((item, p as u32));
        }
    }
    // By id, then position: the first position of a repeated id stays.
    s.keys.clear();
    s.keys.extend(
        s.extra
            .iter()
            .map(|&(id, p)| u64::from(id) << 32 | u64::from(p)),
    );
    crate::numeric::sort_u64(&mut s.keys);
    s.extra.clear();
    s.extra
        .extend(s.keys.iter().map(|&k| ((k >> 32) as u32, k as u32)));
    s.extra.dedup_by_key(|e| e.0);
}

/// One pass over the signals: the own-item features of candidates, and per
/// model item, category and brand the decayed weights the later passes
/// read.
fn read_signals(
    s: &mut Scratch,
    model: &Model,
    params: &RankerParams,
    signals: Signals<'_>,
    now: f64,
) -> Totals {
    let n = model.item_count();
    let family = model.family();
    let session_s = f64::from(params.session_h) * 3600.0;
    // The fold-in weighs events as the factor model was trained to.
    let fold_ew: [f32; 4] = match model.factors() {
        Some(f) => [
            f.event_weights[0],
            f.event_weights[1],
            f.event_weights[2],
            f.event_weights[3],
        ],
        None => [0.0; 4],
    };
    let mut t = Totals::default();
    for j in 0..signals.len() {
        let (item, ts) = (signals.items[j], signals.ts[j]);
        let Some(event) = Event::from_code(signals.events[j]) else {
            continue;
        };
        // A signal from the future beyond clock skew is forged or broken:
        // it would otherwise count as fresher than anything real.
        if item == NONE || !ts.is_finite() || ts > now + FUTURE_SLACK_S {
            continue;
        }
        s.signals_used += 1;
        let age = (now - ts).max(0.0);
        // The session and category decays, once a signal: several features
        // read each.
        let (d_session, d_cat) = (
            decay(age, params.session_h),
            decay(age, params.half_life_cat_h),
        );
        let ew = params.event_weights[event as usize];
        let pos = s.position(n, item);
        if pos != NONE {
            let f = &mut s.features[pos as usize];
            let d_own = decay(age, params.half_life_own_h);
            f[F_OWN_RECENCY] = f[F_OWN_RECENCY].max((1.0 / (1.0 + age / 3600.0)) as f32);
            f[F_OWN_WEIGHT] += ew * d_own;
            if event != Event::View {
                f[F_OWN_INTENT] += d_own;
            }
            if age <= session_s {
                f[F_OWN_SESSION] += 1.0;
            }
            f[F_OWN_WEIGHT_SESSION] += ew * d_session;
            let own = &mut s.own_event[pos as usize];
            if *own == u8::MAX || *own < event as u8 {
                *own = event as u8;
            }
        }
        if (item as usize) >= n {
            continue;
        }
        let w = [
            ew * decay(age, params.half_life_sim_h),
            ew * d_session,
            fold_ew[event as usize],
        ];
        let src = &mut s.src_weight[item as usize];
        if *src == [0.0; 3] {
            s.src_touched.push(item);
        }
        for k in 0..3 {
            src[k] += w[k];
        }
        let cat = model.category_of(item);
        if cat != NO_CATEGORY {
            let c = cat as usize;
            if s.cat_count[c] == 0 {
                s.cat_touched.push(cat);
            }
            s.cat_count[c] += 1;
            s.cat_seen[c] = s.cat_seen[c].max(ts);
            let w = [ew * d_cat, ew * d_session];
            for (k, &wk) in w.iter().enumerate() {
                s.cat_weight[c][k] += wk;
                t.cat[k] += wk;
            }
        }
        if let Some(price) = family.map(|f| f.price[item as usize]).filter(|&p| p > 0.0) {
            let w = f64::from(ew * d_cat);
            t.log_price += w * f64::from(price).ln();
            t.price_weight += w;
        }
        if event == Event::Purchase && cat != NO_CATEGORY {
            let last = &mut s.cat_bought[cat as usize];
            *last = last.max(ts);
        }
        if let Some(b) = family.and_then(|f| f.brand_of(item)) {
            let w = ew * d_cat;
            if s.brand_weight[b as usize] == 0.0 {
                s.brand_touched.push(b);
            }
            s.brand_weight[b as usize] += w;
            t.brand += w;
        }
    }
    t
}

/// The signal items, strongest first (event-weighted, decayed at the
/// similarity half-life): only the strongest [`MAX_SOURCES`] expand their
/// neighbour lists and the strongest [`MAX_FOLD_ITEMS`] fold the user in,
/// as old, weak signals barely move either and each costs a random walk.
fn choose_sources(s: &mut Scratch) {
    // Strongest first, ties by item: the long-half-life weight's key,
    // inverted, above the item.
    s.keys.clear();
    for &src in &s.src_touched {
        let strength = !crate::numeric::ascending_key(s.src_weight[src as usize][0]);
        s.keys.push(u64::from(strength) << 32 | u64::from(src));
    }
    crate::numeric::sort_u64(&mut s.keys);
    s.keys.truncate(MAX_SOURCES);
    s.sources.clear();
    for &k in &s.keys {
        let src = k as u32;
        let [w_long, w_short, w_fold] = s.src_weight[src as usize];
        s.sources.push((w_long, src, w_short, w_fold));
    }
    for &src in &s.src_touched {
        s.src_weight[src as usize] = [0.0; 3];
    }
    s.src_touched.clear();
    s.fold_items.clear();
    s.fold_items.extend(
        s.sources
            .iter()
            .filter(|x| x.3 > 0.0)
            .take(MAX_FOLD_ITEMS)
            .map(|x| (x.1, x.3)),
    );
}

/// The similarity features: each chosen source's neighbour list, weighted
/// by the source's strength, added to the candidates it reaches; and each
/// candidate's strongest source, for its reason.
fn expand_neighbours(s: &mut Scratch, model: &Model) {
    let (offsets, nb_items, nb_scores, scale) = model.neighbour_arrays();
    for &(w_long, src, w_short, _) in &s.sources {
        let (a, b) = (
            offsets[src as usize] as usize,
            offsets[src as usize + 1] as usize,
        );
        let (w_long, w_short) = (w_long * scale, w_short * scale);
        for (&j, &q) in nb_items[a..b].iter().zip(&nb_scores[a..b]) {
            let p = s.pos_of[j as usize];
            if p != NONE {
                let q = f32::from(q);
                let f = &mut s.features[p as usize];
                let contribution = w_long * q;
                f[F_SIMILARITY] += contribution;
                f[F_SIMILARITY_SESSION] += w_short * q;
                let best = &mut s.best_source[p as usize];
                if contribution > best.0 {
                    *best = (contribution, src);
                }
            }
        }
    }
}

/// Folds the user into the factor space from the chosen signal items, if
/// the model has factors and the ranker weighs them; whether it did.
///
/// The profile's embedding, when it belongs to this model, is the prior,
/// weighed by the share of its history the signals do not hold
/// ([`crate::profile::EmbeddingSection::missing_share`]): its centre and
/// weight both scale by it, so with the whole history on the device the
/// fold-in is the one without an embedding.
fn fold_in_user(
    s: &mut Scratch,
    model: &Model,
    params: &RankerParams,
    signals: Signals<'_>,
) -> bool {
    let Some(f) = model.factors().filter(|_| params.weights[F_FACTOR] != 0.0) else {
        return false;
    };
    let profile = signals.profile;
    let share = profile
        .and_then(|p| Some((p, p.embedding.as_ref()?)))
        .filter(|(_, e)| embedding_fits(e, model))
        .map(|(p, e)| {
            let day_start = f64::from(p.as_of_day) * crate::calendar::DAY_S;
            let held = signals.ts.iter().filter(|&&t| t < day_start).count();
            (e, e.missing_share(held))
        })
        .filter(|&(_, share)| share > 0.0);
    let weight = match share {
        Some((e, share)) => {
            e.vector_into(&mut s.prior);
            s.prior.iter_mut().for_each(|v| *v *= share);
            Some(e.weight * share)
        }
        None if s.fold_items.is_empty() => return false,
        None => None,
    };
    let prior = weight.map(|weight| crate::factors::Prior {
        centre: &s.prior,
        weight,
    });
    // Sorted, so the sums run in one order whatever the signal order.
    // (Each item is there once: it comes from the sources.)
    s.keys.clear();
    s.keys.extend(
        s.fold_items
            .iter()
            .map(|&(item, w)| u64::from(item) << 32 | u64::from(w.to_bits())),
    );
    crate::numeric::sort_u64(&mut s.keys);
    s.fold_items.clear();
    s.fold_items.extend(
        s.keys
            .iter()
            .map(|&k| ((k >> 32) as u32, f32::from_bits(k as u32))),
    );
    f.fold_in(
        &s.fold_items,
        prior,
        &mut s.user,
        &mut s.fold_rows,
        &mut s.fold_work,
    )
}

/// Whether a profile's embedding belongs to `model`: built for its id, in
/// its factors' dimension. Any other is ignored.
pub fn embedding_fits(e: &crate::profile::EmbeddingSection, model: &Model) -> bool {
    e.model_id == model.header().model_id
        && model
            .factors()
            .is_some_and(|f| f.dim as usize == e.codes.len())
}

/// What every candidate's features read from the profile and the signals'
/// totals.
struct Context<'a> {
    profile: Option<&'a crate::profile::Profile>,
    now: f64,
    /// The profile's stage today.
    stage_bucket: Option<usize>,
    /// The baby's gender code (0 unknown).
    baby_gender: u8,
    /// The centre of the family's price range.
    price_centre: Option<f64>,
}

impl<'a> Context<'a> {
    fn new(signals: Signals<'a>, now: f64, t: &Totals) -> Self {
        let profile = signals.profile;
        let price_centre = match profile.map(|p| &p.affinities) {
            Some(a) if a.price_high > 0.0 => {
                Some(f64::from(a.price_low.max(0.01) * a.price_high).sqrt())
            }
            _ => (t.price_weight > 0.0).then(|| (t.log_price / t.price_weight).exp()),
        };
        Context {
            profile,
            now,
            stage_bucket: profile
                .and_then(|p| p.age_months_at(now))
                .map(crate::stage::bucket_of),
            baby_gender: profile.map_or(0, |p| p.gender as u8),
            price_centre,
        }
    }
}

/// A share of a total; a share of a vanishing total (signals so old that
/// the session decay underflows) is no share: dividing subnormals would
/// give inf or NaN.
fn share(w: f32, total: f32) -> f32 {
    if total >= f32::MIN_POSITIVE {
        (w / total).min(1.0)
    } else {
        0.0
    }
}

/// The features of the candidate at position `p`: a repeat copies its
/// first occurrence; a model item gets its category, popularity, family
/// and taste features.
fn candidate_features(
    s: &mut Scratch,
    model: &Model,
    p: usize,
    item: u32,
    c: &Context<'_>,
    t: &Totals,
    folded: bool,
) {
    let n = model.item_count();
    if (item as usize) >= n {
        if item != NONE {
            let first = s.position(n, item) as usize;
            if first != p {
                s.features[p] = s.features[first];
                s.own_event[p] = s.own_event[first];
            }
        }
        return;
    }
    let first = s.pos_of[item as usize] as usize;
    if first != p {
        // A repeated candidate gets the features of its first occurrence.
        s.features[p] = s.features[first];
        s.best_source[p] = s.best_source[first];
        s.own_event[p] = s.own_event[first];
        return;
    }
    let f = &mut s.features[p];
    f[F_OWN_SESSION] = f[F_OWN_SESSION].ln_1p();
    let cat = model.category_of(item);
    if cat != NO_CATEGORY {
        let count = s.cat_count[cat as usize];
        if count > 0 {
            let w = s.cat_weight[cat as usize];
            f[F_CATEGORY_COUNT] = (count as f32).ln_1p();
            f[F_CATEGORY_SHARE] = share(w[0], t.cat[0]);
            f[F_CATEGORY_SESSION] = share(w[1], t.cat[1]);
            let age = (c.now - s.cat_seen[cat as usize]).max(0.0);
            f[F_CATEGORY_RECENCY] = (1.0 / (1.0 + age / 3600.0)) as f32;
        }
    }
    f[F_POPULARITY] = model.popularity(item);
    f[F_TREND] = model.trend(item);
    if let Some(fam) = model.family() {
        // The family's last purchase in the category: on this phone, or in
        // the nightly profile's rebuys (a purchase the phone never saw).
        let mut bought = if cat == NO_CATEGORY {
            f64::NEG_INFINITY
        } else {
            s.cat_bought[cat as usize]
        };
        if let Some(p) = c
            .profile
            .filter(|p| !p.rebuys.is_empty() && cat != NO_CATEGORY)
        {
            if let Some(day) = p.rebuys.last_day(model.category_name(cat)) {
                bought = bought.max(f64::from(day) * crate::calendar::DAY_S);
            }
        }
        family_features(f, fam, item, cat, c, t, &s.brand_weight, bought);
    }
    if folded {
        if let Some(fa) = model.factors() {
            f[F_FACTOR] = fa.score(item as usize, &s.user);
        }
    }
}

/// The features of a model item that the family section and the profile
/// give: stage and gender fit, brand affinity, price fit, restock (from
/// `bought`, the family's last purchase in the item's category).
#[allow(clippy::too_many_arguments)]
fn family_features(
    f: &mut [f32; NUM_FEATURES],
    fam: &crate::model::FamilySection,
    item: u32,
    cat: u32,
    c: &Context<'_>,
    t: &Totals,
    brand_weight: &[f32],
    bought: f64,
) {
    if let Some(b) = c.stage_bucket {
        f[F_STAGE_FIT] = fam.log2_lift(item, b).clamp(-3.0, 3.0);
    }
    let g = fam.gender[item as usize];
    if g != 0 && c.baby_gender != 0 && g != c.baby_gender {
        f[F_GENDER_FIT] = -1.0;
    }
    if let Some(b) = fam.brand_of(item) {
        let share = if t.brand > 0.0 {
            brand_weight[b as usize] / t.brand
        } else {
            0.0
        };
        let liked = c
            .profile
            .map_or(0.0, |p| p.brand_weight(fam.brands.get(b as usize)));
        f[F_BRAND_AFFINITY] = share.max(liked);
    }
    let price = fam.price[item as usize];
    if let (Some(centre), true) = (c.price_centre, price > 0.0) {
        let off = (f64::from(price) / centre).ln().abs() / std::f64::consts::LN_2;
        f[F_PRICE_FIT] = (1.0 - off).max(0.0) as f32;
    }
    if cat != NO_CATEGORY && bought.is_finite() {
        let since = (c.now - bought) / crate::calendar::DAY_S;
        f[F_RESTOCK] = f32::from(fam.restock(cat, since));
    }
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

/// The parts of a score, for reasons: own item, similarity, category,
/// popularity, taste, stage, brand, price, restock.
fn parts(w: &[f32], f: &[f32; NUM_FEATURES]) -> [f32; 9] {
    let c = |k: usize| w[k] * f[k];
    [
        c(F_OWN_RECENCY)
            + c(F_OWN_WEIGHT)
            + c(F_OWN_INTENT)
            + c(F_OWN_SESSION)
            + c(F_OWN_WEIGHT_SESSION),
        c(F_SIMILARITY) + c(F_SIMILARITY_SESSION),
        c(F_CATEGORY_COUNT) + c(F_CATEGORY_SHARE) + c(F_CATEGORY_SESSION) + c(F_CATEGORY_RECENCY),
        c(F_POPULARITY) + c(F_TREND),
        c(F_FACTOR),
        c(F_STAGE_FIT) + c(F_GENDER_FIT),
        c(F_BRAND_AFFINITY),
        c(F_PRICE_FIT),
        c(F_RESTOCK),
    ]
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
    crate::numeric::sort_by_score_desc(&mut out.order, scores, &mut scratch.keys);
    out.scores.clear();
    out.scores
        .extend(out.order.iter().map(|&p| scores[p as usize]));
    out.reasons.clear();
    out.rules.clear();
    out.signals_used = scratch.signals_used;
    if explain {
        let n = model.item_count();
        for &p in &out.order {
            let p = p as usize;
            let parts = parts(w, &scratch.features[p]);
            let (best, value) =
                parts.iter().enumerate().fold(
                    (0, f32::MIN),
                    |acc, (k, &v)| if v > acc.1 { (k, v) } else { acc },
                );
            let item = candidates[p];
            let reason = if value <= 0.0 {
                Reason::None
            } else {
                match best {
                    0 => Event::from_code(scratch.own_event[p]).map_or(Reason::None, Reason::Own),
                    1 if scratch.best_source[p].1 != NONE => {
                        Reason::SimilarTo(scratch.best_source[p].1)
                    }
                    2 if (item as usize) < n => Reason::Category(model.category_of(item)),
                    4 => Reason::Taste,
                    5 => Reason::Stage,
                    6 => model
                        .family()
                        .and_then(|f| f.brand_of(item))
                        .map_or(Reason::Popular, Reason::Brand),
                    7 => Reason::Price,
                    8 => Reason::Restock,
                    _ => Reason::Popular,
                }
            };
            out.reasons.push(reason);
        }
    }
    Ok(())
}
