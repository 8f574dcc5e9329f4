//! The business layer: operations' rules applied after scoring.
//!
//! A [`RuleSet`] is authored as JSON (`model-builder build --rules`), stored
//! in the blob (section `rules`, format version 3) and may be replaced at
//! run time (`Recommender::set_rules`, JS `setRules`) without retraining.
//! [`CompiledRules::apply`] runs on the scorer's output, on the phone, at
//! the edge and in the builder (push, `rerank`) alike, in this order of
//! precedence:
//!
//! 1. **filter**: the rule set's `filter` ids and the run-time sold-out list
//!    leave the page.
//! 2. **boosts**: each matching boost changes the score, `times` as
//!    `s + |s| (times - 1)` (so `times > 1` always raises, whatever the
//!    sign of `s`) and `add` as `s + add`; bounded by [`MAX_TIMES`] and
//!    [`MAX_ADD`]. A boost below 1 or below 0 buries.
//! 3. **pins**: an item pinned to slot `s` (1-based) lands there. A slot
//!    past the page's end means the last free slot; a slot another pin took
//!    first means the next free slot below it. A pin on an item that is not
//!    a candidate (or is filtered) does nothing.
//! 4. **exploration**: each of `explore.slots` not taken by a pin gets an
//!    item new to the catalog (no activity in the model, or unknown to it),
//!    drawn by a hash of the user key, the day and the slot, so that a
//!    user sees the same page all day and different users see different
//!    new items.
//! 5. **diversity**: every other slot, top to bottom, takes the best-scored
//!    remaining item that keeps each cap (at most `max` items of one brand,
//!    or one category, in any `window` consecutive slots). When no
//!    remaining item keeps the caps, the best one goes there anyway: the
//!    page is never shortened for diversity. Pinned and explored items
//!    count in the windows but are never moved by a cap.
//!
//! The output is always a permutation of the unfiltered candidates, and
//! equal inputs give equal pages.

use crate::calendar::DAY_S;
use crate::hash::{fnv1a64, mix64};
use crate::model::Model;
use crate::rank::Ranking;
pub use crate::rank::RuleNote;
use crate::ruleset::check_count;
pub use crate::ruleset::{
    Boost, Diversity, Explore, Pin, RuleSet, RulesError, MAX_ADD, MAX_EXPLORE_SLOTS, MAX_FILTER,
    MAX_RULES, MAX_TIMES, MAX_WINDOW,
};
use std::collections::HashMap;

/// The two groupings an item has, as indices into `[brand, category]`.
const BRAND: usize = 0;
const CATEGORY: usize = 1;

#[derive(Debug, Clone, Default)]
struct ItemRules {
    filtered: bool,
    /// (pin rule index, slot)
    pins: Vec<(u32, u32)>,
    boosts: Vec<u32>,
}

/// A rule set resolved against a model, ready to apply.
#[derive(Debug, Clone, Default)]
pub struct CompiledRules {
    rules: RuleSet,
    /// Item rules by model index.
    known: Vec<ItemRules>,
    /// Model index -> position in `known` (`u32::MAX`: none); empty when no
    /// rule names a known item.
    known_slot: Vec<u32>,
    /// Item rules for ids the model does not know (the string path still
    /// matches them).
    unknown: HashMap<String, ItemRules>,
    /// Boost rule indices by brand index ([`BRAND`]) and by category
    /// index ([`CATEGORY`]); empty when no boost names one.
    by_group: [Vec<Vec<u32>>; 2],
    /// Diversity caps: (grouping, max, window).
    caps: Vec<(usize, u32, u32)>,
    sold_out: usize,
}

/// Per-call inputs of [`CompiledRules::apply`] beyond the ranking.
pub struct ApplyContext<'a, 'b> {
    /// The model.
    pub model: &'a Model,
    /// The candidates given to the scorer (model indices).
    pub candidates: &'a [u32],
    /// The id of a candidate index past the model's table (the string
    /// path's new items), if known.
    pub unknown_id: &'b dyn Fn(u32) -> Option<&'b str>,
    /// The user key of the exploration draw ("" when anonymous).
    pub user_key: &'a str,
    /// The rerank's `now`, Unix seconds (its UTC day seeds the draw).
    pub now: f64,
    /// Whether to fill [`Ranking::rules`].
    pub explain: bool,
}

fn position_in(table: &crate::model::StringTable, name: &str) -> Option<u32> {
    (0..table.len())
        .find(|&i| table.get(i) == name)
        .map(|i| i as u32)
}

/// How many brands and categories the model has (`[BRAND, CATEGORY]`).
fn group_counts(model: &Model) -> [usize; 2] {
    [
        model.family().map_or(0, |f| f.brands.len()),
        model.category_count(),
    ]
}

fn item<'c>(c: &'c mut CompiledRules, model: &Model, id: &str) -> &'c mut ItemRules {
    match model.index_of(id) {
        Some(i) => {
            if c.known_slot.is_empty() {
                c.known_slot = vec![u32::MAX; model.item_count()];
            }
            let slot = &mut c.known_slot[i as usize];
            if *slot == u32::MAX {
                *slot = c.known.len() as u32;
                c.known.push(ItemRules::default());
            }
            &mut c.known[*slot as usize]
        }
        None => c.unknown.entry(id.to_string()).or_default(),
    }
}

impl CompiledRules {
    /// Validates `rules` and resolves its names against `model`. A name the
    /// model does not know (a brand not in today's blob) matches nothing,
    /// except item ids, which the string path can still match.
    pub fn new(rules: RuleSet, model: &Model) -> Result<Self, RulesError> {
        rules.validate()?;
        let mut c = CompiledRules::default();
        for id in &rules.filter {
            item(&mut c, model, id).filtered = true;
        }
        for (k, p) in rules.pins.iter().enumerate() {
            item(&mut c, model, &p.item).pins.push((k as u32, p.slot));
        }
        for (k, b) in rules.boosts.iter().enumerate() {
            let k = k as u32;
            if let Some(id) = &b.item {
                item(&mut c, model, id).boosts.push(k);
            } else if let Some(name) = &b.brand {
                if let Some(x) = model.family().and_then(|f| position_in(&f.brands, name)) {
                    c.boost_group(model, BRAND, x, k);
                }
            } else if let Some(name) = &b.category {
                if let Some(x) = position_in(&model.parts().categories, name) {
                    c.boost_group(model, CATEGORY, x, k);
                }
            }
        }
        c.caps = rules
            .diversity
            .iter()
            .map(|d| {
                let by = if d.by == "brand" { BRAND } else { CATEGORY };
                (by, d.max, d.window)
            })
            .collect();
        c.rules = rules;
        Ok(c)
    }

    /// Notes boost rule `k` on group `x` of grouping `by`.
    fn boost_group(&mut self, model: &Model, by: usize, x: u32, k: u32) {
        if self.by_group[by].is_empty() {
            self.by_group[by] = vec![Vec::new(); group_counts(model)[by]];
        }
        self.by_group[by][x as usize].push(k);
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Adds the run-time sold-out list to the filter (replacing the last
    /// one set this way).
    pub fn set_sold_out(&mut self, model: &Model, ids: &[&str]) -> Result<(), RulesError> {
        check_count("sold-out list", ids.len(), MAX_FILTER)?;
        // Rebuild the filter marks from the rule set, then add the list.
        for r in self.known.iter_mut() {
            r.filtered = false;
        }
        for r in self.unknown.values_mut() {
            r.filtered = false;
        }
        let ids_in_rules: Vec<String> = self.rules.filter.clone();
        for id in ids_in_rules
            .iter()
            .map(String::as_str)
            .chain(ids.iter().copied())
        {
            item(self, model, id).filtered = true;
        }
        self.sold_out = ids.len();
        Ok(())
    }

    /// Whether applying changes nothing.
    pub fn is_noop(&self) -> bool {
        self.rules.is_empty() && self.sold_out == 0
    }

    fn item_rules(&self, ctx: &ApplyContext<'_, '_>, index: u32) -> Option<&ItemRules> {
        if (index as usize) < ctx.model.item_count() {
            self.known_rules(index)
        } else if self.unknown.is_empty() {
            None
        } else {
            (ctx.unknown_id)(index).and_then(|id| self.unknown.get(id))
        }
    }

    fn known_rules(&self, index: u32) -> Option<&ItemRules> {
        match self.known_slot.get(index as usize) {
            Some(&k) if k != u32::MAX => Some(&self.known[k as usize]),
            _ => None,
        }
    }

    /// Whether candidate `index` leaves the page (sold out or in `filter`),
    /// a new item (past the model's table) included.
    pub fn leaves_page(&self, ctx: &ApplyContext<'_, '_>, index: u32) -> bool {
        self.item_rules(ctx, index).is_some_and(|r| r.filtered)
    }

    /// Whether model item `index` is filtered (sold out or in `filter`).
    pub fn is_filtered(&self, index: u32) -> bool {
        self.known_rules(index).is_some_and(|r| r.filtered)
    }

    /// Item `index`'s brand and category (`[BRAND, CATEGORY]`), where known.
    fn groups_of(model: &Model, index: u32) -> [Option<u32>; 2] {
        if index as usize >= model.item_count() {
            return [None, None];
        }
        [
            model.family().and_then(|f| f.brand_of(index)),
            Some(model.category_of(index)).filter(|&c| c != crate::model::NO_CATEGORY),
        ]
    }

    fn is_new(ctx: &ApplyContext<'_, '_>, index: u32) -> bool {
        let n = ctx.model.item_count();
        (index as usize) >= n
            || (ctx.model.trend(index) == 0.0 && ctx.model.popularity(index) == 0.0)
    }

    /// Applies the rules to `ranking` (the scorer's output for
    /// `ctx.candidates`), in place: filtered items leave, scores are the
    /// boosted ones, the order follows pins, exploration and diversity,
    /// and reasons (if any) move with their items.
    pub fn apply(&self, ctx: &ApplyContext<'_, '_>, ranking: &mut Ranking) {
        if self.is_noop() {
            if ctx.explain {
                ranking.rules.clear();
                ranking
                    .rules
                    .resize(ranking.order.len(), RuleNote::default());
            }
            return;
        }
        let cand = ctx.candidates;
        let has_reasons = ranking.reasons.len() == ranking.order.len();
        // 1-2. Filter and boost, then sort by the new score (stable).
        #[derive(Clone, Copy)]
        struct Entry {
            pos: u32,
            score: f32,
            reason: Option<crate::rank::Reason>,
            note: RuleNote,
        }
        let mut unsorted: Vec<(Entry, [Option<u32>; 2])> = Vec::with_capacity(ranking.order.len());
        let mut boosts: Vec<u32> = Vec::new();
        for (k, &p) in ranking.order.iter().enumerate() {
            let index = cand[p as usize];
            let item_rules = self.item_rules(ctx, index);
            if item_rules.is_some_and(|r| r.filtered) {
                continue;
            }
            let mut score = ranking.scores[k];
            let mut note = RuleNote::default();
            boosts.clear();
            if let Some(r) = item_rules {
                boosts.extend_from_slice(&r.boosts);
            }
            let group = Self::groups_of(ctx.model, index);
            for (by, g) in group.iter().enumerate() {
                if let Some(list) = g.and_then(|g| self.by_group[by].get(g as usize)) {
                    boosts.extend_from_slice(list);
                }
            }
            if boosts.len() > 1 {
                crate::numeric::sort_u32(&mut boosts);
            }
            for &b in &boosts {
                let rule = &self.rules.boosts[b as usize];
                // The change, as a sign: +1 raises, -1 lowers.
                let direction = if let Some(t) = rule.times {
                    score += score.abs() * (t - 1.0);
                    t - 1.0
                } else {
                    let a = rule.add.unwrap_or(0.0);
                    score += a;
                    a
                };
                // Noted by the rule's direction, even where it changed
                // nothing (a zero score times anything).
                if direction > 0.0 && note.flags & RuleNote::BOOSTED == 0 {
                    note.flags |= RuleNote::BOOSTED;
                    note.boost = b;
                } else if direction < 0.0 && note.flags & RuleNote::BURIED == 0 {
                    note.flags |= RuleNote::BURIED;
                    note.bury = b;
                }
            }
            unsorted.push((
                Entry {
                    pos: p,
                    score,
                    reason: has_reasons.then(|| ranking.reasons[k]),
                    note,
                },
                group,
            ));
        }
        let scores: Vec<f32> = unsorted.iter().map(|e| e.0.score).collect();
        let mut by_score: Vec<u32> = (0..unsorted.len() as u32).collect();
        crate::numeric::sort_by_score_desc(&mut by_score, &scores, &mut Vec::new());
        let mut entries: Vec<Entry> = by_score.iter().map(|&k| unsorted[k as usize].0).collect();
        let groups: Vec<[Option<u32>; 2]> =
            by_score.iter().map(|&k| unsorted[k as usize].1).collect();
        let len = entries.len();
        let mut slot_of_entry: Vec<Option<usize>> = vec![None; len];
        let mut slots: Vec<Option<usize>> = vec![None; len];
        let free_from = |slots: &[Option<usize>], want: usize| -> Option<usize> {
            (want..slots.len())
                .find(|&s| slots[s].is_none())
                .or_else(|| {
                    (0..want.min(slots.len()))
                        .rev()
                        .find(|&s| slots[s].is_none())
                })
        };
        // 3. Pins, in rule order.
        if !self.rules.pins.is_empty() {
            let mut pinned: Vec<(u32, u32, usize)> = Vec::new();
            for (e, entry) in entries.iter().enumerate() {
                if let Some(r) = self.item_rules(ctx, cand[entry.pos as usize]) {
                    if let Some(&(rule, slot)) = r.pins.iter().min() {
                        pinned.push((rule, slot, e));
                    }
                }
            }
            let order = crate::numeric::stable_order(pinned.len(), &|a, b| pinned[a] < pinned[b]);
            for (_, slot, e) in crate::numeric::permuted(&pinned, &order) {
                let want = (slot as usize - 1).min(len.saturating_sub(1));
                if let Some(s) = free_from(&slots, want) {
                    slots[s] = Some(e);
                    slot_of_entry[e] = Some(s);
                    entries[e].note.flags |= RuleNote::PINNED;
                    entries[e].note.slot = s as u32 + 1;
                }
            }
        }
        // 4. Exploration.
        if let Some(explore) = &self.rules.explore {
            let day = (ctx.now / DAY_S).floor() as i64;
            let mut wanted: Vec<u32> = explore.slots.clone();
            crate::numeric::sort_u32(&mut wanted);
            wanted.dedup();
            for slot in wanted {
                let s = slot as usize - 1;
                if s >= len || slots[s].is_some() {
                    continue;
                }
                // One hash of (user, day, slot), mixed with each item index.
                let seed = fnv1a64(format!("{}/{day}/{slot}", ctx.user_key).as_bytes());
                let pool: Vec<usize> = (0..len)
                    .filter(|&e| {
                        slot_of_entry[e].is_none()
                            && Self::is_new(ctx, cand[entries[e].pos as usize])
                    })
                    .collect();
                let pick = pool
                    .iter()
                    .copied()
                    .min_by_key(|&e| (mix64(seed ^ u64::from(cand[entries[e].pos as usize])), e));
                if let Some(e) = pick {
                    slots[s] = Some(e);
                    slot_of_entry[e] = Some(s);
                    entries[e].note.flags |= RuleNote::EXPLORED;
                    // The draw is uniform over the pool (a hash of a random
                    // visitor key): each of its items shows with 1 / pool.
                    entries[e].note.pool = pool.len() as u32;
                }
            }
        }
        // 5. Everything else, best first, under the diversity caps. Slots
        // fill top down, so for slot `s` the fullest window holding it is
        // the trailing one, `[s - w + 1, s]`, unless a pinned or explored
        // slot lies ahead within a window: per cap, a count per group over
        // the trailing window answers the common case in O(1).
        let counts = group_counts(ctx.model);
        let mut trailing: Vec<Vec<u16>> = self
            .caps
            .iter()
            .map(|&(by, _, _)| vec![0u16; counts[by]])
            .collect();
        let widest = self.caps.iter().map(|c| c.2 as usize).max().unwrap_or(0);
        let mut next = 0usize; // the best entry not yet placed
        for s in 0..len {
            for (ci, &(by, _, window)) in self.caps.iter().enumerate() {
                if let Some(&Some(x)) = s.checked_sub(window as usize).map(|t| &slots[t]) {
                    if let Some(g) = groups[x][by] {
                        trailing[ci][g as usize] -= 1;
                    }
                }
            }
            if slots[s].is_none() {
                while slot_of_entry[next].is_some() {
                    next += 1;
                }
                let mut chosen = next;
                if !self.caps.is_empty() {
                    let fixed_ahead = (s + 1..(s + widest).min(len)).any(|t| slots[t].is_some());
                    let keeps = |e: usize| {
                        if fixed_ahead {
                            return self.keeps_caps(&groups, &slots, s, e);
                        }
                        self.caps.iter().enumerate().all(|(ci, &(by, max, _))| {
                            groups[e][by].is_none_or(|g| u32::from(trailing[ci][g as usize]) < max)
                        })
                    };
                    if !keeps(next) {
                        if let Some(e) =
                            (next + 1..len).find(|&e| slot_of_entry[e].is_none() && keeps(e))
                        {
                            chosen = e;
                            entries[next].note.flags |= RuleNote::DIVERSIFIED;
                        }
                    }
                }
                slots[s] = Some(chosen);
                slot_of_entry[chosen] = Some(s);
            }
            if let Some(x) = slots[s] {
                for (ci, &(by, _, _)) in self.caps.iter().enumerate() {
                    if let Some(g) = groups[x][by] {
                        trailing[ci][g as usize] += 1;
                    }
                }
            }
        }
        // Write back in slot order.
        ranking.order.clear();
        ranking.scores.clear();
        ranking.reasons.clear();
        ranking.rules.clear();
        for e in slots.into_iter().map(|e| e.expect("every slot is filled")) {
            let entry = &entries[e];
            ranking.order.push(entry.pos);
            ranking.scores.push(entry.score);
            if let Some(r) = entry.reason {
                ranking.reasons.push(r);
            }
            if ctx.explain {
                ranking.rules.push(entry.note);
            }
        }
    }

    /// Whether putting entry `e` in slot `s` keeps every cap in every
    /// window holding `s` (windows are cut at the page's end), given the
    /// slots filled so far.
    fn keeps_caps(
        &self,
        groups: &[[Option<u32>; 2]],
        slots: &[Option<usize>],
        s: usize,
        e: usize,
    ) -> bool {
        self.caps.iter().all(|&(k, max, window)| {
            let Some(g) = groups[e][k] else {
                return true;
            };
            let w = window as usize;
            let lo = s.saturating_sub(w - 1);
            let hi = (s + w).min(slots.len());
            // Prefix counts of same-group filled slots over [lo, hi): at
            // most 2 * MAX_WINDOW - 1 slots, on the stack.
            let mut pre = [0u16; 2 * MAX_WINDOW as usize];
            for t in lo..hi {
                let same = t != s && slots[t].is_some_and(|x| groups[x][k] == Some(g));
                pre[t - lo + 1] = pre[t - lo] + u16::from(same);
            }
            (lo..=s).all(|start| {
                let end = (start + w).min(hi);
                usize::from(pre[end - lo] - pre[start - lo]) < max as usize
            })
        })
    }
}
