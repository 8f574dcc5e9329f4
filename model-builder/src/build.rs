//! From a dataset and an as-of date to model parts (published by
//! [`crate::publish`]).

use crate::als::{self, Csr};
use crate::data::Dataset;
use crate::options::{BuildOptions, Similarity, DAY};
#[cfg(feature = "engine")]
use anyhow::Context;
use nestrank::factors::FactorsSection;
use nestrank::model::{ItemsSection, ModelParts, NeighboursSection, StringTable, NO_CATEGORY};

/// `2^(-age / half-life)`, computed as the engine's SQL `power(2.0, x)`
/// computes it (`powf`), so that both give the same bits.
fn decay(age_s: i64, half_life_days: f64) -> f64 {
    2f64.powf(-(age_s as f64) / (half_life_days * DAY as f64))
}

/// Where a build's data-parallel stages (per-item statistics and the
/// co-occurrence neighbours) run.
#[derive(Clone, Copy)]
pub enum Stages<'a> {
    /// Over the loaded [`Dataset`], in this process.
    InMemory,
    /// As plans on the query engine, over the data directory's files.
    #[cfg(feature = "engine")]
    Engine(&'a crate::engine::plans::Session),
    /// Without the engine, nothing borrows.
    #[cfg(not(feature = "engine"))]
    #[doc(hidden)]
    Never(std::marker::PhantomData<&'a ()>, std::convert::Infallible),
}

/// The model's item table, in id order, and the map from interned item to model index.
pub struct ItemIndex {
    /// Interned item per model index.
    pub items: Vec<u32>,
    /// Model index per interned item (`u32::MAX` where excluded).
    pub model_index: Vec<u32>,
}

/// Items a model may know: the catalog, and `active` (the interned items
/// with an event before its cutoff). An item first seen later is not
/// revealed.
pub fn item_index(ds: &Dataset, active: impl IntoIterator<Item = u32>) -> ItemIndex {
    let mut include = ds.in_catalog.clone();
    for i in active {
        include[i as usize] = true;
    }
    let mut items: Vec<u32> = (0..ds.items.len() as u32)
        .filter(|&i| include[i as usize])
        .collect();
    items.sort_by(|&a, &b| ds.items.name(a).as_bytes().cmp(ds.items.name(b).as_bytes()));
    let mut model_index = vec![u32::MAX; ds.items.len()];
    for (m, &i) in items.iter().enumerate() {
        model_index[i as usize] = m as u32;
    }
    ItemIndex { items, model_index }
}

/// Builds the parts of the model as of `as_of_day` (days since 1970-01-01),
/// from events strictly before that day's 00:00 UTC only.
pub fn build_parts(ds: &Dataset, as_of_day: i32, opts: &BuildOptions) -> ModelParts {
    build_parts_timed(ds, as_of_day, opts).0
}

/// Wall time of each build stage, in seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTimes {
    /// Item table, categories, popularity and trend.
    pub items: f64,
    /// Co-occurrence neighbours.
    pub neighbours: f64,
    /// ALS training and quantization.
    pub als: f64,
}

/// [`build_parts`], with the time each stage took.
pub fn build_parts_timed(
    ds: &Dataset,
    as_of_day: i32,
    opts: &BuildOptions,
) -> (ModelParts, StageTimes) {
    build_parts_on(ds, as_of_day, opts, Stages::InMemory).expect("the in-memory stages do not fail")
}

/// [`build_parts_timed`], with the data-parallel stages run by `stages`.
/// The engine's plans compute what the in-memory stages compute, to the
/// bit (see [`crate::engine::plans`]).
pub fn build_parts_on(
    ds: &Dataset,
    as_of_day: i32,
    opts: &BuildOptions,
    stages: Stages,
) -> anyhow::Result<(ModelParts, StageTimes)> {
    let mut times = StageTimes::default();
    let clock = std::time::Instant::now();
    let cutoff = i64::from(as_of_day) * DAY;
    let past = &ds.events[..ds.events.partition_point(|e| e.ts < cutoff)];
    // Per item with an event before the cutoff: conversions in the last 7
    // days, and the trend (interned item -> stats).
    let stats: Vec<(u32, u32, f64)> = match stages {
        Stages::InMemory => {
            let mut by_item: Vec<Option<(u32, f64)>> = vec![None; ds.items.len()];
            for e in past {
                let s = by_item[e.item as usize].get_or_insert((0, 0.0));
                if e.event.is_conversion() && e.ts >= cutoff - 7 * DAY {
                    s.0 += 1;
                }
                s.1 += f64::from(opts.event_weights[e.event as usize])
                    * decay(cutoff - e.ts, opts.trend_half_life_days);
            }
            by_item
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.map(|(c, t)| (i as u32, c, t)))
                .collect()
        }
        #[cfg(feature = "engine")]
        Stages::Engine(session) => session
            .item_stats(cutoff, opts)?
            .into_iter()
            .map(|(item, (c, t))| Ok((interned(ds, &item)?, c, t)))
            .collect::<anyhow::Result<_>>()?,
        #[cfg(not(feature = "engine"))]
        Stages::Never(_, never) => match never {},
    };
    let index = item_index(ds, stats.iter().map(|s| s.0));
    let n = index.items.len();

    // Categories used by the model's items, by name.
    let mut cat_ids: Vec<u32> = index
        .items
        .iter()
        .map(|&i| ds.item_category[i as usize])
        .filter(|&c| c != u32::MAX)
        .collect();
    cat_ids.sort_by(|&a, &b| ds.categories.name(a).cmp(ds.categories.name(b)));
    cat_ids.dedup();
    let mut cat_map = vec![NO_CATEGORY; ds.categories.len()];
    for (k, &c) in cat_ids.iter().enumerate() {
        cat_map[c as usize] = k as u32;
    }
    let category = index
        .items
        .iter()
        .map(|&i| match ds.item_category[i as usize] {
            u32::MAX => NO_CATEGORY,
            c => cat_map[c as usize],
        })
        .collect();

    let mut conversions_7d = vec![0u32; n];
    let mut trend = vec![0f64; n];
    for &(i, c, t) in &stats {
        let m = index.model_index[i as usize] as usize;
        conversions_7d[m] = c;
        trend[m] = t;
    }
    times.items = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    // On the engine, each user's items are listed once, for the viewed
    // together counts and the ALS rows both (timed with the neighbours).
    #[cfg(feature = "engine")]
    let lists = match stages {
        Stages::Engine(session) if opts.k > 0 || opts.als.factors > 0 => {
            Some(session.user_lists(cutoff, opts, false)?)
        }
        _ => None,
    };
    // Viewed together, and bought together: the same co-occurrence over
    // carts and purchases only.
    let table = |k: usize, conversions_only: bool| -> anyhow::Result<NeighboursSection> {
        let rows = match stages {
            Stages::InMemory => {
                let bought: Vec<crate::data::Ev>;
                let events = if conversions_only {
                    bought = past
                        .iter()
                        .filter(|e| e.event.is_conversion())
                        .copied()
                        .collect();
                    &bought[..]
                } else {
                    past
                };
                cooccurrence(events, &index, ds.users.len(), cutoff, opts, k)
            }
            #[cfg(feature = "engine")]
            Stages::Engine(session) => {
                let mut rows = vec![Vec::new(); n];
                let bought;
                let lists = match (conversions_only, &lists) {
                    (false, Some(lists)) => lists,
                    _ => {
                        bought = session.user_lists(cutoff, opts, conversions_only)?;
                        &bought
                    }
                };
                for (item, list) in session.neighbours(lists, opts, k)? {
                    let i = model_index_of(ds, &index, &item)?;
                    rows[i as usize] = list
                        .iter()
                        .map(|(j, s)| Ok((model_index_of(ds, &index, j)?, *s)))
                        .collect::<anyhow::Result<_>>()?;
                }
                rows
            }
            #[cfg(not(feature = "engine"))]
            Stages::Never(_, never) => match never {},
        };
        Ok(pack_neighbours(rows))
    };
    let neighbours = table(opts.k, false)?;
    let complements = if opts.complement_k > 0 {
        Some(table(opts.complement_k, true)?)
    } else {
        None
    };
    times.neighbours = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let factors = if opts.als.factors > 0 {
        let (y, exact) = match stages {
            Stages::InMemory => {
                // Rows follow the loaded users, numbered in id order.
                let triples = past
                    .iter()
                    .map(|e| {
                        (
                            e.user,
                            index.model_index[e.item as usize],
                            opts.event_weights[e.event as usize],
                        )
                    })
                    .collect();
                let user_items = Csr::from_triples(ds.users.len(), triples);
                als::train(&user_items, n, &opts.als)
            }
            // Each iteration's pass over the users is one aggregate on the
            // engine; the builder holds only the item factors and sums.
            #[cfg(feature = "engine")]
            Stages::Engine(_) => {
                let rows = match &lists {
                    Some(lists) => lists,
                    None => anyhow::bail!("the users' lists were not made for ALS"),
                };
                // The engine numbers the items its rows name its own way;
                // the model's other items (no event before the cutoff)
                // follow, so that the factors' Gram matrix covers every
                // item, as in memory.
                let mut order = rows
                    .items()
                    .iter()
                    .map(|item| model_index_of(ds, &index, item))
                    .collect::<anyhow::Result<Vec<u32>>>()?;
                let mut named = vec![false; n];
                for &m in &order {
                    named[m as usize] = true;
                }
                order.extend((0..n as u32).filter(|&m| !named[m as usize]));
                let f = opts.als.factors;
                als::train_with(n, &opts.als, |y| {
                    let mut engine_y = Vec::with_capacity(y.len());
                    for &m in &order {
                        engine_y.extend_from_slice(&y[m as usize * f..(m as usize + 1) * f]);
                    }
                    Ok::<_, anyhow::Error>(rows.sums(&engine_y, &opts.als)?.renumber(&order, n))
                })?
            }
            #[cfg(not(feature = "engine"))]
            Stages::Never(_, never) => match never {},
        };
        if !exact {
            eprintln!(
                "warning: an ALS sum grew past {} (the weights are very large): the factors may differ in their last bits between engines",
                als::EXACT_BELOW / 2.0
            );
        }
        Some(FactorsSection::quantize(
            &y,
            opts.als.factors,
            opts.als.regularization,
            opts.als.alpha,
            opts.event_weights,
        ))
    } else {
        None
    };
    times.als = clock.elapsed().as_secs_f64();
    let family = family_section(ds, cutoff, &index.items, &cat_ids);
    let parts = ModelParts {
        as_of_day,
        items: ItemsSection {
            ids: StringTable::from_strings(
                &index
                    .items
                    .iter()
                    .map(|&i| ds.items.name(i))
                    .collect::<Vec<_>>(),
            ),
            category,
            conversions_max: conversions_7d.iter().copied().max().unwrap_or(0),
            trend_max: trend.iter().copied().fold(0f64, f64::max) as f32,
            conversions_7d,
            trend: trend.into_iter().map(|t| t as f32).collect(),
        },
        categories: StringTable::from_strings(
            &cat_ids
                .iter()
                .map(|&c| ds.categories.name(c))
                .collect::<Vec<_>>(),
        ),
        neighbours,
        ranker: opts.ranker.clone(),
        factors,
        family,
        rules: opts.rules.clone(),
        complements,
    };
    Ok((parts, times))
}

/// The interned id of item `name`, which the engine found in the events.
#[cfg(feature = "engine")]
fn interned(ds: &Dataset, name: &str) -> anyhow::Result<u32> {
    ds.items.get(name).with_context(|| {
        format!("the engine read item `{name}`, which the loaded data does not have: did the files change during the build?")
    })
}

/// The model index of item `name`, which the engine found in the events
/// before the cutoff.
#[cfg(feature = "engine")]
fn model_index_of(ds: &Dataset, index: &ItemIndex, name: &str) -> anyhow::Result<u32> {
    Some(index.model_index[interned(ds, name)? as usize])
        .filter(|&m| m != u32::MAX)
        .with_context(|| {
            format!("the engine read item `{name}` before the cutoff, which its item statistics did not have: did the files change during the build?")
        })
}

/// The `family` section for the model's items (`items`: dataset item ids
/// in model order): brands and genders from `items.csv`, and the stage fit
/// learned from purchases before `cutoff` by families with a known baby.
/// `None` when the data has none of these.
pub fn family_section(
    ds: &Dataset,
    cutoff: i64,
    items: &[u32],
    categories: &[u32],
) -> Option<nestrank::model::FamilySection> {
    let has_attrs = items.iter().any(|&i| {
        let a = &ds.attrs[i as usize];
        a.brand != u32::MAX || a.gender != 0 || a.age.is_some()
    });
    let has_babies = ds.babies.values().any(|(b, _)| b.is_some());
    if !has_attrs && !has_babies {
        return None;
    }
    // Brands used by the model's items, by name.
    let mut brand_ids: Vec<u32> = items
        .iter()
        .map(|&i| ds.attrs[i as usize].brand)
        .filter(|&b| b != u32::MAX)
        .collect();
    brand_ids.sort_by(|&a, &b| ds.brands.name(a).cmp(ds.brands.name(b)));
    brand_ids.dedup();
    let mut brand_map = std::collections::HashMap::new();
    for (k, &b) in brand_ids.iter().enumerate() {
        brand_map.insert(b, k as u32);
    }
    let fit = crate::stage::AgeFit::estimate(ds, cutoff);
    let learned = fit.purchases > 0 || items.iter().any(|&i| ds.attrs[i as usize].age.is_some());
    let lifts = if learned {
        // A leaf category's lift is the Bayes estimate's (what `eval-stage`
        // measures as `shipped`); an item's own purchases move it as far
        // as the fit moves the item from its category. An item's age range
        // wins, and an item without a category keeps the fit.
        let bayes = crate::stage::StageLift::estimate(ds, &fit, cutoff);
        items
            .iter()
            .flat_map(|&i| {
                let d = fit.item[i as usize];
                let g = fit.global;
                let c = ds.item_category[i as usize];
                let by_category = (c != u32::MAX && ds.attrs[i as usize].age.is_none())
                    .then(|| (bayes.category[c as usize], fit.category[c as usize]));
                (0..nestrank::stage::BUCKETS).map(move |b| {
                    let lift = match by_category {
                        Some((l, f)) => l[b] * d[b] / f[b],
                        None => d[b] / g[b],
                    };
                    nestrank::stage::quantize_lift(lift)
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(nestrank::model::FamilySection {
        brands: StringTable::from_strings(
            &brand_ids
                .iter()
                .map(|&b| ds.brands.name(b))
                .collect::<Vec<_>>(),
        ),
        brand: items
            .iter()
            .map(|&i| {
                brand_map
                    .get(&ds.attrs[i as usize].brand)
                    .copied()
                    .unwrap_or(NO_CATEGORY)
            })
            .collect(),
        gender: items.iter().map(|&i| ds.attrs[i as usize].gender).collect(),
        edges: nestrank::stage::EDGES.to_vec(),
        lifts,
        price: items
            .iter()
            .map(|&i| ds.attrs[i as usize].price)
            .map(|p| if p.is_finite() { p } else { 0.0 })
            .collect(),
        restock_days: restock_days(ds, cutoff, categories),
    })
}

/// Per category (`categories`: dataset category ids in model order), how
/// families re-buy it, from purchases before `cutoff`: where at least a
/// quarter of its buyers bought it again, the median days between their
/// purchases (a consumable); where at least 10 families bought it and under
/// 5% ever again, [`nestrank::model::DURABLE`]; else 0 (unknown).
pub fn restock_days(ds: &Dataset, cutoff: i64, categories: &[u32]) -> Vec<f32> {
    let mut by: std::collections::HashMap<(u32, u32), Vec<i64>> = Default::default();
    for e in ds
        .events
        .iter()
        .filter(|e| e.ts < cutoff && e.event == nestrank::Event::Purchase)
    {
        let c = ds.item_category[e.item as usize];
        if c != u32::MAX {
            by.entry((c, e.user)).or_default().push(e.ts);
        }
    }
    let mut gaps: std::collections::HashMap<u32, (u32, u32, Vec<f64>)> = Default::default();
    for ((c, _), mut ts) in by {
        ts.sort_unstable();
        // Purchases on one day are one shopping trip.
        ts.dedup_by(|a, b| (*a - *b).abs() < DAY);
        let g = gaps.entry(c).or_default();
        g.0 += 1;
        if ts.len() > 1 {
            g.1 += 1;
            g.2.extend(ts.windows(2).map(|w| (w[1] - w[0]) as f64 / DAY as f64));
        }
    }
    categories
        .iter()
        .map(|c| match gaps.get_mut(c) {
            Some((buyers, again, days)) if *again * 4 >= *buyers && !days.is_empty() => {
                days.sort_by(f64::total_cmp);
                (days[days.len() / 2] as f32).clamp(1.0, 3650.0)
            }
            Some((buyers, again, _)) if *buyers >= 10 && *again * 20 < *buyers => {
                nestrank::model::DURABLE
            }
            _ => 0.0,
        })
        .collect()
}

/// Top-K neighbours from time-decayed, event-weighted co-occurrence in user
/// histories: a user's affinity to an item is the strongest
/// `event weight * decay(age)` of their events on it (rounded to `f32`);
/// two items co-occur by the smaller of the two affinities, summed over
/// users (in `f64`). Per item, its neighbours and similarities (rounded to
/// `f32`), best first, ties to the smaller index.
fn cooccurrence(
    past: &[crate::data::Ev],
    index: &ItemIndex,
    user_count: usize,
    cutoff: i64,
    opts: &BuildOptions,
    k: usize,
) -> Vec<Vec<(u32, f32)>> {
    let n = index.items.len();
    // Per user: (item, affinity), the most recent distinct items first.
    let mut per_user: Vec<Vec<(u32, f32)>> = vec![Vec::new(); user_count];
    for e in past.iter().rev() {
        let list = &mut per_user[e.user as usize];
        let m = index.model_index[e.item as usize];
        let a = (f64::from(opts.event_weights[e.event as usize])
            * decay(cutoff - e.ts, opts.cooc_half_life_days)) as f32;
        match list.iter().position(|(i, _)| *i == m) {
            Some(k) => list[k].1 = list[k].1.max(a),
            None if list.len() < opts.max_items_per_user => list.push((m, a)),
            None => {}
        }
    }
    // Item -> users, compressed rows.
    let mut counts = vec![0u32; n + 1];
    for list in &per_user {
        for &(i, _) in list {
            counts[i as usize + 1] += 1;
        }
    }
    for i in 0..n {
        counts[i + 1] += counts[i];
    }
    let mut fill = counts.clone();
    let mut users_of = vec![(0u32, 0f32); counts[n] as usize];
    for (u, list) in per_user.iter().enumerate() {
        for &(i, a) in list {
            users_of[fill[i as usize] as usize] = (u as u32, a);
            fill[i as usize] += 1;
        }
    }
    let diag: Vec<f64> = (0..n)
        .map(|i| {
            users_of[counts[i] as usize..counts[i + 1] as usize]
                .iter()
                .map(|x| f64::from(x.1))
                .sum()
        })
        .collect();

    let mut acc = vec![0f64; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for i in 0..n {
        for &(u, a_ui) in &users_of[counts[i] as usize..counts[i + 1] as usize] {
            for &(j, a_uj) in &per_user[u as usize] {
                if j as usize == i {
                    continue;
                }
                if acc[j as usize] == 0.0 {
                    touched.push(j);
                }
                acc[j as usize] += f64::from(a_ui.min(a_uj));
            }
        }
        let mut row: Vec<(u32, f32)> = touched
            .iter()
            .map(|&j| {
                let c = acc[j as usize];
                let (di, dj) = (diag[i], diag[j as usize]);
                let s = match opts.similarity {
                    Similarity::Jaccard => c / (di + dj - c).max(f64::MIN_POSITIVE),
                    Similarity::Cosine => c / (di * dj).sqrt().max(f64::MIN_POSITIVE),
                    Similarity::Lift => c / (di * dj).max(f64::MIN_POSITIVE),
                };
                (j, s as f32)
            })
            .filter(|&(_, s)| s.is_finite() && s > 0.0)
            .collect();
        for &j in &touched {
            acc[j as usize] = 0.0;
        }
        touched.clear();
        row.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        row.truncate(k.min(nestrank::model::MAX_NEIGHBOURS));
        rows[i] = row;
    }
    rows
}

/// Quantizes neighbour lists (best first) into the blob's table.
fn pack_neighbours(rows: Vec<Vec<(u32, f32)>>) -> NeighboursSection {
    let n = rows.len();
    let max = rows
        .iter()
        .flat_map(|r| r.iter().map(|x| x.1))
        .fold(0f32, f32::max);
    let scale = if max > 0.0 { max / 65_535.0 } else { 1.0 };
    let mut out = NeighboursSection {
        offsets: Vec::with_capacity(n + 1),
        items: Vec::new(),
        scores: Vec::new(),
        scale,
    };
    out.offsets.push(0);
    for row in rows {
        for (j, s) in row {
            out.items.push(j);
            out.scores
                .push(((s / scale).round() as u32).clamp(1, 65_535) as u16);
        }
        out.offsets.push(out.items.len() as u32);
    }
    out
}

/// Which items a published (daily) blob keeps: the day's specials, and the
/// `max_items` items most recently active before as-of.
#[derive(Debug, Clone, Default)]
pub struct Restriction {
    /// Item ids that must stay (the day's specials), whatever their activity.
    pub specials: Vec<String>,
    /// How many of the most recently active other items to keep.
    pub max_items: usize,
    /// Keep every kept item's whole neighbour lists. Without it (the
    /// default), a daily blob's viewed-together and bought-together lists
    /// point only into the specials: the device ranks the specials, so a
    /// link to any other item is never read by the scorer, and `similar()`
    /// on a daily blob answers within the day's specials (plus the
    /// category fill). When no specials are named, lists are kept whole.
    pub full_lists: bool,
}

/// Up to `limit` items with an event before `cutoff`, most recently active
/// first (the items of the latest events, walking back).
pub fn recent_items(ds: &Dataset, cutoff: i64, limit: usize) -> Vec<String> {
    let past = &ds.events[..ds.events.partition_point(|e| e.ts < cutoff)];
    let mut seen = vec![false; ds.items.len()];
    let mut out = Vec::new();
    for e in past.iter().rev() {
        if out.len() >= limit {
            break;
        }
        if !std::mem::replace(&mut seen[e.item as usize], true) {
            out.push(ds.items.name(e.item).to_string());
        }
    }
    out
}

/// Shrinks `parts` to the items `r` selects, for the phone: neighbour
/// lists keep only kept targets, factor rows only kept items, categories
/// only used ones. The Gram matrix stays that of all items, so the fold-in
/// solves the same system as the full model.
pub fn restrict(parts: &ModelParts, recent: &[String], r: &Restriction) -> ModelParts {
    let n = parts.items.ids.len();
    let index_of = |id: &str| parts.items.ids.position_sorted(id);
    let mut keep = vec![false; n];
    for id in &r.specials {
        if let Some(i) = index_of(id) {
            keep[i] = true;
        }
    }
    // The most recently active items, newest first.
    let mut taken = 0usize;
    for item in recent {
        if taken >= r.max_items {
            break;
        }
        if let Some(i) = index_of(item) {
            if !keep[i] {
                keep[i] = true;
                taken += 1;
            }
        }
    }
    // Which kept items a neighbour list may point to.
    let mut target = keep.clone();
    if !r.full_lists && !r.specials.is_empty() {
        target.fill(false);
        for i in r.specials.iter().filter_map(|id| index_of(id)) {
            target[i] = true;
        }
    }
    let mut new_index = vec![u32::MAX; n];
    let mut kept = Vec::new();
    for i in 0..n {
        if keep[i] {
            new_index[i] = kept.len() as u32;
            kept.push(i);
        }
    }
    // Categories still used, in their (sorted) order.
    let mut cat_used = vec![false; parts.categories.len()];
    for &i in &kept {
        let c = parts.items.category[i];
        if c != NO_CATEGORY {
            cat_used[c as usize] = true;
        }
    }
    let mut cat_index = vec![NO_CATEGORY; cat_used.len()];
    let mut cat_names = Vec::new();
    for (c, &used) in cat_used.iter().enumerate() {
        if used {
            cat_index[c] = cat_names.len() as u32;
            cat_names.push(parts.categories.get(c));
        }
    }
    ModelParts {
        as_of_day: parts.as_of_day,
        items: parts.items.select_items(&kept, &cat_index),
        categories: StringTable::from_strings(&cat_names),
        neighbours: parts.neighbours.select_items(&kept, &new_index, &target),
        complements: parts
            .complements
            .as_ref()
            .map(|c| c.select_items(&kept, &new_index, &target)),
        rules: parts.rules.clone(),
        ranker: parts.ranker.clone(),
        factors: parts.factors.as_ref().map(|f| f.select_items(&kept)),
        family: parts
            .family
            .as_ref()
            .map(|f| f.select_items(&kept, &cat_index)),
    }
}
