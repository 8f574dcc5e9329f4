//! Local browsing signals: what the user did, to which item, when.

/// The default weight of each event kind, in [`Event`] order (view, fav,
/// cart, purchase): the hand-set ranker's and the builder's.
pub const EVENT_WEIGHTS: [f32; 4] = [1.0, 2.0, 3.0, 4.0];

/// A kind of browsing event. The numeric codes are the typed API's
/// (`Uint8Array` of events) and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Event {
    /// The item page was opened.
    View = 0,
    /// The item was added to favourites.
    Fav = 1,
    /// The item was added to the cart.
    Cart = 2,
    /// The item was bought.
    Purchase = 3,
}

impl Event {
    /// All events, by code.
    pub const ALL: [Event; 4] = [Event::View, Event::Fav, Event::Cart, Event::Purchase];

    /// The event with this numeric code.
    pub fn from_code(code: u8) -> Option<Event> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// The event with this canonical name (`view`, `fav`, `cart`, `purchase`).
    pub fn from_name(name: &str) -> Option<Event> {
        match name {
            "view" => Some(Event::View),
            "fav" => Some(Event::Fav),
            "cart" => Some(Event::Cart),
            "purchase" => Some(Event::Purchase),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Event::View => "view",
            Event::Fav => "fav",
            Event::Cart => "cart",
            Event::Purchase => "purchase",
        }
    }

    /// Whether EVAL.md counts this event as a conversion (cart or purchase).
    pub fn is_conversion(self) -> bool {
        matches!(self, Event::Cart | Event::Purchase)
    }
}

/// A user's signals as parallel arrays: the typed API's shape.
///
/// `items` are model indices; an index at or above the model's item count
/// names an item the model does not know (it still matches an equal
/// candidate index); `u32::MAX` is "unknown" and is ignored. `events` are
/// [`Event`] codes; `ts` Unix seconds. A signal with a bad event code or a
/// non-finite time is ignored, not an error: signals come from storage the
/// page does not control.
#[derive(Debug, Clone, Copy)]
pub struct Signals<'a> {
    /// Item indices.
    pub items: &'a [u32],
    /// Event codes.
    pub events: &'a [u8],
    /// Unix seconds.
    pub ts: &'a [f64],
    /// The family's profile, if the page or the builder has one: it feeds
    /// the stage, gender and brand features.
    pub profile: Option<&'a crate::profile::Profile>,
}

impl<'a> Signals<'a> {
    /// No signals at all.
    pub const EMPTY: Signals<'static> = Signals {
        items: &[],
        events: &[],
        ts: &[],
        profile: None,
    };

    /// Signals from parallel arrays, which must have equal lengths.
    pub fn new(items: &'a [u32], events: &'a [u8], ts: &'a [f64]) -> Option<Self> {
        (items.len() == events.len() && items.len() == ts.len()).then_some(Signals {
            items,
            events,
            ts,
            profile: None,
        })
    }

    /// The same signals with the family's profile.
    pub fn with_profile(self, profile: Option<&'a crate::profile::Profile>) -> Self {
        Signals { profile, ..self }
    }

    /// The number of signals.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
