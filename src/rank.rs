//! What a rerank returns: the [`Ranking`], each item's [`Reason`] and the
//! rules' [`RuleNote`]s, with all their explanation text. The scorer that
//! fills a ranking is [`crate::score`].

use crate::model::Model;
pub use crate::params::{
    RankerKind, RankerParams, RankerSection, FEATURE_NAMES, F_BRAND_AFFINITY, F_CATEGORY_COUNT,
    F_CATEGORY_RECENCY, F_CATEGORY_SESSION, F_CATEGORY_SHARE, F_FACTOR, F_GENDER_FIT, F_OWN_INTENT,
    F_OWN_RECENCY, F_OWN_SESSION, F_OWN_WEIGHT, F_OWN_WEIGHT_SESSION, F_POPULARITY, F_PRICE_FIT,
    F_RESTOCK, F_SIMILARITY, F_SIMILARITY_SESSION, F_STAGE_FIT, F_TREND, NUM_FEATURES,
};
use crate::ruleset::RuleSet;
use crate::signals::Event;

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
    /// The user's taste, as the folded-in factors see it.
    Taste,
    /// Right for the baby's age today.
    Stage,
    /// A brand (a model brand index) the family favours.
    Brand(u32),
    /// In the family's price range.
    Price,
    /// A consumable the family is due to buy again.
    Restock,
}

impl Reason {
    /// The reason packed into one number: equal reasons, equal keys (below
    /// 2^36).
    pub fn key(&self) -> u64 {
        let (tag, payload) = match *self {
            Reason::None => (0, 0),
            Reason::Own(e) => (1, e as u32),
            Reason::SimilarTo(i) => (2, i),
            Reason::Category(c) => (3, c),
            Reason::Popular => (4, 0),
            Reason::Taste => (5, 0),
            Reason::Stage => (6, 0),
            Reason::Brand(b) => (7, b),
            Reason::Price => (8, 0),
            Reason::Restock => (9, 0),
        };
        (tag << 32) | u64::from(payload)
    }

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
            Reason::Taste => "picked for your taste".into(),
            Reason::Stage => "right for your baby's age".into(),
            Reason::Price => "in your price range".into(),
            Reason::Restock => "time to stock up again".into(),
            Reason::Brand(b) => match model.family() {
                Some(f) => format!("{}, a brand you like", f.brands.get(b as usize)),
                None => "a brand you like".into(),
            },
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
    /// What the business rules did to each displayed item, in display order
    /// (empty unless asked for, or when no rules ran).
    pub rules: Vec<RuleNote>,
    /// How many signals the scorer counted: those with a known event, a
    /// finite time no later than `now` +
    /// [`FUTURE_SLACK_S`](crate::score::FUTURE_SLACK_S), and an item the
    /// model knows or among the candidates. 0 means the order is not
    /// personalized by signals (a caller can say so, as the edge worker
    /// does, without repeating these rules).
    pub signals_used: usize,
}

/// What the rules did to one displayed item (see [`Ranking::rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleNote {
    /// Bits: [`RuleNote::PINNED`], [`RuleNote::BOOSTED`],
    /// [`RuleNote::BURIED`], [`RuleNote::EXPLORED`], [`RuleNote::DIVERSIFIED`].
    pub flags: u8,
    /// The slot of a pin (1-based).
    pub slot: u32,
    /// The first raising boost rule that matched (with [`RuleNote::BOOSTED`]).
    pub boost: u32,
    /// The first lowering boost rule that matched (with [`RuleNote::BURIED`]).
    pub bury: u32,
    /// How many new items an exploration slot drew from (with
    /// [`RuleNote::EXPLORED`]): the item shows there with probability
    /// `1 / pool` ([`RuleNote::propensity`]).
    pub pool: u32,
}

impl RuleNote {
    /// Placed by a pin.
    pub const PINNED: u8 = 1;
    /// Raised by a boost.
    pub const BOOSTED: u8 = 2;
    /// Lowered by a boost.
    pub const BURIED: u8 = 4;
    /// Put in an exploration slot.
    pub const EXPLORED: u8 = 8;
    /// Moved down by a diversity cap.
    pub const DIVERSIFIED: u8 = 16;

    /// The probability the item was shown in its slot: `1 / pool` for an
    /// explored item, 1 for everything placed deterministically. A shop
    /// logs it with the item's outcome, so that a later estimate can
    /// weigh exploration's outcomes by it (inverse propensity).
    pub fn propensity(&self) -> f32 {
        if self.flags & Self::EXPLORED != 0 && self.pool > 0 {
            1.0 / self.pool as f32
        } else {
            1.0
        }
    }

    /// The note as text to append to an item's reason ("" when no rule applied).
    pub fn text(&self, rules: &RuleSet) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.flags & Self::PINNED != 0 {
            parts.push(format!("pinned to slot {}", self.slot));
        }
        let what = |rule: u32| {
            rules
                .boosts
                .get(rule as usize)
                .map(|b| {
                    if let Some(x) = &b.brand {
                        format!(" (brand {x})")
                    } else if let Some(x) = &b.category {
                        format!(" (category {x})")
                    } else {
                        String::new()
                    }
                })
                .unwrap_or_default()
        };
        if self.flags & Self::BOOSTED != 0 {
            parts.push(format!("promoted by the shop{}", what(self.boost)));
        }
        if self.flags & Self::BURIED != 0 {
            parts.push(format!("demoted by the shop{}", what(self.bury)));
        }
        if self.flags & Self::EXPLORED != 0 {
            parts.push("new in the shop".into());
        }
        if self.flags & Self::DIVERSIFIED != 0 {
            parts.push("moved down for variety".into());
        }
        parts.join("; ")
    }
}
