//! A deterministic synthetic mother-and-baby shop: a catalog of daily
//! specials (diapers, formula, feeding, strollers, car seats, clothing, toys,
//! maternity) with titles, brands, prices and suitable ages, each on sale for
//! 5-7 days, ~500 on sale a day; and weeks of browsing and purchase logs from
//! families whose babies age day by day, who are loyal to brands, keep to a
//! budget, re-buy consumables when they run out and buy a durable once.
//!
//! Writes the canonical data directory (`events.csv`, `items.csv`,
//! `users.csv`) plus what the shop hands the nightly build and the page for
//! "today" (the day after the log): `specials.txt` (ids in the shop's own
//! order) and `specials.json` (the cards: title, brand, price, ...).

use crate::options::DAY;
use crate::publish::write_atomically;
use crate::rng::Rng;
use anyhow::Result;
use nestrank::calendar::format_date;
use serde::Serialize;
use std::path::Path;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShopOptions {
    /// Families (users).
    pub families: u32,
    /// Days of logs, ending the day before `today`.
    pub days: u32,
    /// The page's day (days since 1970-01-01): the specials written are its.
    pub today: i32,
    /// New specials launched a day (each on sale 5-7 days, so about six
    /// times this many are on sale on any day).
    pub launches_per_day: u32,
    /// Random seed.
    pub seed: u64,
}

impl ShopOptions {
    /// As `shop.json` holds them.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "families": self.families,
            "days": self.days,
            "today": format_date(self.today),
            "launches_per_day": self.launches_per_day,
            "seed": self.seed,
        })
    }

    /// Read back from `shop.json`'s text; `what` names the file in errors.
    pub fn from_json(text: &str, what: &str) -> Result<ShopOptions> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Json {
            families: u32,
            days: u32,
            today: String,
            launches_per_day: u32,
            seed: u64,
        }
        let j: Json = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("{what}: not a shop's options: {e}"))?;
        Ok(ShopOptions {
            families: j.families,
            days: j.days,
            today: nestrank::calendar::parse_date(&j.today)
                .ok_or_else(|| anyhow::anyhow!("{what}: today `{}` is not YYYY-MM-DD", j.today))?,
            launches_per_day: j.launches_per_day,
            seed: j.seed,
        })
    }
}

impl Default for ShopOptions {
    fn default() -> Self {
        ShopOptions {
            families: 3_000,
            days: 28,
            today: nestrank::calendar::parse_date("2026-11-27").expect("a valid date"),
            launches_per_day: 85,
            seed: 7,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShopSummary {
    /// Items in the catalog.
    pub items: usize,
    /// Events in the log.
    pub events: usize,
    /// Specials on sale today.
    pub specials_today: usize,
}

/// Who an item is for, when it matters (clothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    Any,
    Girl,
    Boy,
}

/// A product line: the leaf category, its top category, the noun of its
/// titles, its sizes (a label and the suitable age in months; negative
/// months are the pregnancy), its price range, and how often a family
/// re-buys it (`None`: a durable, bought once).
struct Line {
    top: &'static str,
    leaf: &'static str,
    noun: &'static str,
    sizes: &'static [(&'static str, i32, i32)],
    price: (f64, f64),
    every_days: Option<f64>,
    gendered: bool,
    weight: f64,
}

const LINES: &[Line] = &[
    Line {
        top: "diapers",
        leaf: "diapers",
        noun: "Ultra-Dry Diapers",
        sizes: &[
            ("Newborn", -1, 1),
            ("Size 1", 0, 3),
            ("Size 2", 2, 6),
            ("Size 3", 5, 12),
            ("Size 4", 10, 24),
            ("Size 5", 18, 36),
        ],
        price: (9.0, 32.0),
        every_days: Some(9.0),
        gendered: false,
        weight: 9.0,
    },
    Line {
        top: "diapers",
        leaf: "diaper-pants",
        noun: "Pull-Up Pants",
        sizes: &[
            ("Size L", 12, 24),
            ("Size XL", 18, 36),
            ("Size XXL", 24, 48),
        ],
        price: (11.0, 30.0),
        every_days: Some(11.0),
        gendered: false,
        weight: 4.0,
    },
    Line {
        top: "diapers",
        leaf: "wipes",
        noun: "Sensitive Wipes 6 x 80",
        sizes: &[("", -1, 36)],
        price: (6.0, 15.0),
        every_days: Some(14.0),
        gendered: false,
        weight: 5.0,
    },
    Line {
        top: "diapers",
        leaf: "changing",
        noun: "Changing Mat",
        sizes: &[("", -2, 24)],
        price: (15.0, 45.0),
        every_days: None,
        gendered: false,
        weight: 1.0,
    },
    Line {
        top: "formula",
        leaf: "formula",
        noun: "Infant Formula 800 g",
        sizes: &[("Stage 1", 0, 6), ("Stage 2", 6, 12), ("Stage 3", 12, 36)],
        price: (18.0, 46.0),
        every_days: Some(12.0),
        gendered: false,
        weight: 8.0,
    },
    Line {
        top: "formula",
        leaf: "baby-food",
        noun: "Organic Puree Pouches x12",
        sizes: &[("", 6, 24)],
        price: (9.0, 20.0),
        every_days: Some(10.0),
        gendered: false,
        weight: 4.0,
    },
    Line {
        top: "formula",
        leaf: "cereal",
        noun: "Rice Cereal",
        sizes: &[("", 4, 12)],
        price: (4.0, 9.0),
        every_days: Some(20.0),
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "feeding",
        leaf: "bottles",
        noun: "Anti-Colic Bottles 3-Pack",
        sizes: &[("", -1, 12)],
        price: (14.0, 38.0),
        every_days: None,
        gendered: false,
        weight: 3.0,
    },
    Line {
        top: "feeding",
        leaf: "sippy-cups",
        noun: "Spill-Proof Sippy Cup",
        sizes: &[("", 6, 36)],
        price: (6.0, 16.0),
        every_days: None,
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "feeding",
        leaf: "high-chairs",
        noun: "Convertible High Chair",
        sizes: &[("", 5, 36)],
        price: (60.0, 220.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "feeding",
        leaf: "bibs",
        noun: "Silicone Bibs 2-Pack",
        sizes: &[("", 4, 24)],
        price: (7.0, 15.0),
        every_days: None,
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "feeding",
        leaf: "breast-pumps",
        noun: "Electric Breast Pump",
        sizes: &[("", -2, 12)],
        price: (60.0, 250.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "strollers",
        leaf: "strollers",
        noun: "Travel System Stroller",
        sizes: &[("", -3, 48)],
        price: (150.0, 650.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "strollers",
        leaf: "buggies",
        noun: "Lightweight Buggy",
        sizes: &[("", 6, 48)],
        price: (70.0, 260.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "strollers",
        leaf: "carriers",
        noun: "Ergonomic Baby Carrier",
        sizes: &[("", -2, 24)],
        price: (45.0, 160.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "car-seats",
        leaf: "infant-car-seats",
        noun: "Infant Car Seat",
        sizes: &[("Group 0+", -3, 13)],
        price: (90.0, 320.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "car-seats",
        leaf: "convertible-car-seats",
        noun: "Convertible Car Seat",
        sizes: &[("Group 1", 9, 48)],
        price: (120.0, 420.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "clothing",
        leaf: "bodysuits",
        noun: "Cotton Bodysuits 5-Pack",
        sizes: &[
            ("0-3 mo", -1, 3),
            ("3-6 mo", 3, 6),
            ("6-12 mo", 6, 12),
            ("12-18 mo", 12, 18),
            ("18-24 mo", 18, 24),
        ],
        price: (12.0, 30.0),
        every_days: None,
        gendered: true,
        weight: 5.0,
    },
    Line {
        top: "clothing",
        leaf: "sleepsuits",
        noun: "Zip Sleepsuit",
        sizes: &[
            ("0-3 mo", -1, 3),
            ("3-6 mo", 3, 6),
            ("6-12 mo", 6, 12),
            ("12-24 mo", 12, 24),
        ],
        price: (10.0, 26.0),
        every_days: None,
        gendered: true,
        weight: 4.0,
    },
    Line {
        top: "clothing",
        leaf: "outerwear",
        noun: "Padded Snowsuit",
        sizes: &[("6-12 mo", 6, 12), ("12-24 mo", 12, 24), ("2-3 yr", 24, 36)],
        price: (25.0, 70.0),
        every_days: None,
        gendered: true,
        weight: 2.0,
    },
    Line {
        top: "toys",
        leaf: "rattles",
        noun: "Soft Rattle Set",
        sizes: &[("", 0, 6)],
        price: (6.0, 18.0),
        every_days: None,
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "toys",
        leaf: "teethers",
        noun: "Cooling Teether",
        sizes: &[("", 3, 12)],
        price: (5.0, 14.0),
        every_days: None,
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "toys",
        leaf: "activity",
        noun: "Activity Play Gym",
        sizes: &[("", 0, 9)],
        price: (35.0, 90.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "toys",
        leaf: "stacking",
        noun: "Stacking Rings",
        sizes: &[("", 6, 24)],
        price: (8.0, 22.0),
        every_days: None,
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "toys",
        leaf: "ride-ons",
        noun: "Ride-On Walker",
        sizes: &[("", 12, 36)],
        price: (30.0, 95.0),
        every_days: None,
        gendered: false,
        weight: 1.5,
    },
    Line {
        top: "maternity",
        leaf: "maternity-wear",
        noun: "Maternity Leggings",
        sizes: &[("", -9, 0)],
        price: (18.0, 45.0),
        every_days: None,
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "maternity",
        leaf: "prenatal",
        noun: "Prenatal Vitamins 90 Tabs",
        sizes: &[("", -9, 2)],
        price: (12.0, 30.0),
        every_days: Some(30.0),
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "maternity",
        leaf: "nursing",
        noun: "Seamless Nursing Bra",
        sizes: &[("", -2, 12)],
        price: (16.0, 40.0),
        every_days: None,
        gendered: false,
        weight: 2.0,
    },
    Line {
        top: "maternity",
        leaf: "skincare",
        noun: "Stretch Mark Cream",
        sizes: &[("", -9, 3)],
        price: (9.0, 28.0),
        every_days: Some(30.0),
        gendered: false,
        weight: 1.5,
    },
];

/// Brands by top category, with a price level each (1.0 = the line's middle).
const BRANDS: &[(&str, &[(&str, f64)])] = &[
    (
        "diapers",
        &[
            ("Moonbean", 1.0),
            ("Softpaw", 0.8),
            ("Little Oak", 1.3),
            ("Puddle", 0.7),
        ],
    ),
    (
        "formula",
        &[("Nestling", 1.2), ("Meadow Milk", 1.0), ("Tummytime", 0.8)],
    ),
    (
        "feeding",
        &[("Cocoon", 1.0), ("Sipsy", 0.8), ("Little Oak", 1.3)],
    ),
    (
        "strollers",
        &[("Tinytrek", 1.0), ("Roamly", 1.4), ("Pebblewheel", 0.75)],
    ),
    (
        "car-seats",
        &[("Safenest", 1.2), ("Roamly", 1.4), ("Guardi", 0.85)],
    ),
    (
        "clothing",
        &[
            ("BabyBloom", 1.0),
            ("Kindred Knits", 1.3),
            ("Tot & Co", 0.8),
        ],
    ),
    (
        "toys",
        &[("Lullabye", 1.0), ("Playpine", 0.9), ("Wonderwood", 1.3)],
    ),
    (
        "maternity",
        &[("Bellybird", 1.0), ("Mama Grove", 1.25), ("Nestling", 1.1)],
    ),
];

const GIRL_COLOURS: &[&str] = &["Rose", "Lilac", "Blush"];
const BOY_COLOURS: &[&str] = &["Navy", "Sky Blue", "Forest"];
const ANY_COLOURS: &[&str] = &["Oatmeal", "Sage", "Grey Marl"];

/// One special of the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Special {
    /// Item id.
    pub id: String,
    /// Product title.
    pub title: String,
    /// Brand.
    pub brand: String,
    /// Leaf category.
    pub category: String,
    /// Top category.
    pub top: String,
    /// Sale price.
    pub price: f64,
    /// Price before the special.
    pub was: f64,
    /// Suitable from this age in months (negative: months before the birth).
    #[serde(rename = "ageMin")]
    pub age_min: i32,
    /// Suitable up to this age in months.
    #[serde(rename = "ageMax")]
    pub age_max: i32,
    /// `girl`, `boy` or `any`.
    pub gender: &'static str,
    /// First day on sale (`YYYY-MM-DD`).
    #[serde(rename = "saleStart")]
    pub sale_start: String,
    /// Last day on sale.
    #[serde(rename = "saleEnd")]
    pub sale_end: String,
    #[serde(skip)]
    pub(crate) line: usize,
    #[serde(skip)]
    pub(crate) brand_index: usize,
    #[serde(skip)]
    pub(crate) fit: Fit,
    #[serde(skip)]
    pub(crate) start: i32,
    #[serde(skip)]
    pub(crate) end: i32,
    #[serde(skip)]
    pub(crate) price_level: f64,
}

fn top_index(top: &str) -> usize {
    BRANDS
        .iter()
        .position(|(t, _)| *t == top)
        .expect("every line's top category has brands")
}

fn catalog(o: &ShopOptions, rng: &mut Rng) -> Vec<Special> {
    let mut out = Vec::new();
    for day in o.today - o.days as i32 - 7..=o.today {
        launch(o, day, rng, &mut out);
    }
    out
}

/// The day's new specials, appended to `out` (ids follow its length).
pub(crate) fn launch(o: &ShopOptions, day: i32, rng: &mut Rng, out: &mut Vec<Special>) {
    let total_weight: f64 = LINES.iter().map(|l| l.weight).sum();
    {
        for _ in 0..o.launches_per_day {
            let mut x = rng.unit() * total_weight;
            let line = LINES
                .iter()
                .position(|l| {
                    x -= l.weight;
                    x < 0.0
                })
                .unwrap_or(LINES.len() - 1);
            let l = &LINES[line];
            let (size, age_min, age_max) = l.sizes[rng.below(l.sizes.len())];
            let brands = BRANDS[top_index(l.top)].1;
            let brand_index = rng.below(brands.len());
            let (brand, level) = brands[brand_index];
            let (fit, colour) = if l.gendered {
                match rng.below(3) {
                    0 => (Fit::Girl, GIRL_COLOURS[rng.below(3)]),
                    1 => (Fit::Boy, BOY_COLOURS[rng.below(3)]),
                    _ => (Fit::Any, ANY_COLOURS[rng.below(3)]),
                }
            } else {
                (Fit::Any, "")
            };
            let mut title = format!("{brand} {}", l.noun);
            for part in [colour, size] {
                if !part.is_empty() {
                    title.push_str(", ");
                    title.push_str(part);
                }
            }
            let base = (l.price.0 + l.price.1) / 2.0 * level * rng.range(0.85, 1.15);
            let base = base.clamp(l.price.0, l.price.1 * 1.4);
            let discount = rng.range(0.10, 0.40);
            let price = ((base * (1.0 - discount)) * 100.0).round() / 100.0 - 0.01;
            let was = (base * 100.0).round() / 100.0;
            let len = 5 + rng.below(3) as i32;
            out.push(Special {
                id: format!("p{:05}", out.len() + 10_001),
                title,
                brand: brand.to_string(),
                category: l.leaf.to_string(),
                top: l.top.to_string(),
                price: price.max(0.99),
                was,
                age_min,
                age_max,
                gender: match fit {
                    Fit::Girl => "girl",
                    Fit::Boy => "boy",
                    Fit::Any => "any",
                },
                sale_start: format_date(day),
                sale_end: format_date(day + len - 1),
                line,
                brand_index,
                fit,
                start: day,
                end: day + len - 1,
                price_level: level,
            });
        }
    }
}

/// A simulated family.
#[derive(Clone)]
pub(crate) struct Family {
    /// The baby's birthday (a future day: the due date), days since 1970.
    pub(crate) birthday: i32,
    pub(crate) gender: Fit,
    /// The preferred brand per top category, if any.
    pub(crate) loyal: Vec<Option<usize>>,
    /// Price level the family is comfortable with.
    pub(crate) budget: f64,
    /// Interest per top category.
    pub(crate) interest: Vec<f64>,
    /// How likely a visit is on a day.
    pub(crate) activity: f64,
    /// Per line: the day the last purchase runs out (consumables) or
    /// `i32::MAX` once bought (durables).
    pub(crate) stocked_until: Vec<i32>,
}

impl Family {
    /// Stocks up after buying `s` on `day`: a consumable until it runs out,
    /// a durable for good.
    pub(crate) fn bought(&mut self, s: &Special, day: i32, rng: &mut Rng) {
        self.stocked_until[s.line] = match LINES[s.line].every_days {
            Some(d) => day + (d * rng.range(0.8, 1.2)) as i32,
            None => i32::MAX,
        };
    }

    /// The baby's gender as users.csv writes it.
    pub(crate) fn gender_code(&self) -> &'static str {
        match self.gender {
            Fit::Girl => "F",
            _ => "M",
        }
    }
}

fn family(rng: &mut Rng, today: i32) -> Family {
    // Babies from 8 months before birth to 3 years old, on `today`.
    let birthday = today - rng.range(-240.0, 1_100.0) as i32;
    let gender = match rng.below(2) {
        0 => Fit::Girl,
        _ => Fit::Boy,
    };
    let loyal = BRANDS
        .iter()
        .map(|(_, b)| rng.chance(0.7).then(|| rng.below(b.len())))
        .collect();
    let interest = BRANDS.iter().map(|_| rng.range(0.3, 1.7)).collect();
    Family {
        birthday,
        gender,
        loyal,
        budget: rng.range(0.75, 1.35),
        interest,
        activity: rng.range(0.15, 0.6),
        stocked_until: vec![i32::MIN; LINES.len()],
    }
}

/// How much `f` wants item `s` on `day` (months of age from the birthday).
pub(crate) fn appeal(f: &Family, s: &Special, day: i32) -> f64 {
    let l = &LINES[s.line];
    let months = f64::from(day - f.birthday) / 30.44;
    // Families shop a little ahead: the next size up, the pram before birth.
    let fits_age = months >= f64::from(s.age_min) - 1.5 && months <= f64::from(s.age_max);
    let mut a = if fits_age { 6.0 } else { 0.25 };
    if s.fit != Fit::Any && s.fit != f.gender {
        a *= 0.1;
    }
    let top = top_index(l.top);
    a *= f.interest[top];
    match f.loyal[top] {
        Some(b) if b == s.brand_index => a *= 5.0,
        Some(_) => a *= 0.6,
        None => {}
    }
    a *= (-(s.price_level - f.budget).abs() * 2.0).exp();
    let stocked = f.stocked_until[s.line];
    if stocked == i32::MAX {
        a *= 0.05; // a durable already bought
    } else if l.every_days.is_some() && stocked != i32::MIN {
        a *= if day >= stocked - 2 { 4.0 } else { 0.3 };
    }
    a
}

/// The shop's world: its catalog, and its families as they are after the
/// log (their hidden tastes, what they have in stock). The simulator
/// (`crate::simulate`) carries it on past the log.
pub struct World {
    pub(crate) options: ShopOptions,
    pub(crate) items: Vec<Special>,
    pub(crate) families: Vec<Family>,
    /// The log: (family, item, event, ts), in time order per family.
    pub(crate) events: Vec<(usize, usize, &'static str, i64)>,
}

impl World {
    /// The world `o` describes, deterministic from its seed.
    pub fn generate(o: &ShopOptions) -> Result<World> {
        anyhow::ensure!(
            o.families > 0 && o.days > 0 && o.launches_per_day > 0,
            "families, days and launches per day must be positive"
        );
        let mut rng = Rng::new(o.seed ^ 0x5108_BABE);
        let items = catalog(o, &mut rng);
        let families: Vec<Family> = (0..o.families).map(|_| family(&mut rng, o.today)).collect();
        let mut world = World {
            options: *o,
            items,
            families,
            events: Vec::new(),
        };
        for day in o.today - o.days as i32..o.today {
            world.organic_day(day, &mut rng);
        }
        Ok(world)
    }

    /// The specials on sale on `day` in the shop's own order: the newest
    /// deals first, then the deepest discount.
    pub(crate) fn shop_order(&self, day: i32) -> Vec<usize> {
        let mut order = self.on_sale(day);
        let items = &self.items;
        order.sort_by(|&a, &b| {
            let (a, b) = (&items[a], &items[b]);
            b.start
                .cmp(&a.start)
                .then((a.price / a.was).total_cmp(&(b.price / b.was)))
                .then(a.id.cmp(&b.id))
        });
        order
    }

    /// The catalog's indices on sale on `day`.
    pub(crate) fn on_sale(&self, day: i32) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| self.items[i].start <= day && day <= self.items[i].end)
            .collect()
    }

    /// One day of the log: each family that visits browses by appeal.
    fn organic_day(&mut self, day: i32, rng: &mut Rng) {
        let on_sale = self.on_sale(day);
        let items = &self.items;
        let events = &mut self.events;
        for (u, f) in self.families.iter_mut().enumerate() {
            if !rng.chance(f.activity) {
                continue;
            }
            let weights: Vec<f64> = on_sale.iter().map(|&i| appeal(f, &items[i], day)).collect();
            let total: f64 = weights.iter().sum();
            let mut ts = i64::from(day) * DAY + 7 * 3_600 + rng.below(15 * 3_600) as i64;
            // Re-ordering a consumable that runs out goes straight to the
            // cart from the order history half the time, with no view.
            for (line, l) in LINES.iter().enumerate() {
                let due = f.stocked_until[line];
                if l.every_days.is_none() || due == i32::MIN || day < due - 1 || !rng.chance(0.5) {
                    continue;
                }
                let mut best = None;
                let mut best_w = 0.0;
                for (k, &i) in on_sale.iter().enumerate() {
                    if items[i].line == line && weights[k] * rng.unit() > best_w {
                        best_w = weights[k] * rng.unit();
                        best = Some(i);
                    }
                }
                if let Some(i) = best {
                    events.push((u, i, "cart", ts));
                    events.push((u, i, "purchase", ts + 40));
                    ts += 60 + rng.below(120) as i64;
                    f.stocked_until[line] =
                        day + (l.every_days.unwrap_or(1.0) * rng.range(0.8, 1.2)) as i32;
                }
            }
            for _ in 0..3 + rng.below(12) {
                let mut x = rng.unit() * total;
                let k = weights
                    .iter()
                    .position(|w| {
                        x -= w;
                        x < 0.0
                    })
                    .unwrap_or(weights.len() - 1);
                let i = on_sale[k];
                let s = &items[i];
                events.push((u, i, "view", ts));
                ts += 20 + rng.below(240) as i64;
                let keen = (weights[k] / 30.0).min(1.0);
                if rng.chance(0.04) {
                    events.push((u, i, "fav", ts));
                    ts += 5;
                }
                if rng.chance(0.25 * keen) {
                    events.push((u, i, "cart", ts));
                    ts += 30 + rng.below(300) as i64;
                    if rng.chance(0.6) {
                        events.push((u, i, "purchase", ts));
                        ts += 10;
                        f.bought(s, day, rng);
                    }
                }
            }
        }
    }
}

/// Writes the shop into `out`.
pub fn generate(out: &Path, o: &ShopOptions) -> Result<ShopSummary> {
    World::generate(o)?.write(out)
}

impl World {
    /// `items.csv`: the whole catalog.
    pub(crate) fn write_items(&self, out: &Path) -> Result<()> {
        let items = &self.items;
        write_atomically(&out.join("items.csv"), |w| {
            writeln!(
            w,
            "item_id,category,top_category,brand,price,age_min_months,age_max_months,gender,sale_start,sale_end,title"
        )?;
            for s in items {
                writeln!(
                    w,
                    "{},{},{},{},{:.2},{},{},{},{},{},\"{}\"",
                    s.id,
                    s.category,
                    s.top,
                    s.brand,
                    s.price,
                    s.age_min,
                    s.age_max,
                    s.gender,
                    s.sale_start,
                    s.sale_end,
                    s.title.replace('"', "\"\"")
                )?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// `users.csv`: each family's baby.
    pub(crate) fn write_users(&self, out: &Path) -> Result<()> {
        let families = &self.families;
        write_atomically(&out.join("users.csv"), |w| {
            writeln!(w, "user_id,baby_birthday,baby_gender")?;
            for (u, f) in families.iter().enumerate() {
                writeln!(w, "f{u},{},{}", format_date(f.birthday), f.gender_code())?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Writes the data directory (and `shop.json`, the options that
    /// regenerate this world, for the simulator).
    fn write(&self, out: &Path) -> Result<ShopSummary> {
        let (items, events, o) = (&self.items, &self.events, &self.options);
        std::fs::create_dir_all(out)?;
        write_atomically(&out.join("shop.json"), |w| {
            serde_json::to_writer_pretty(&mut *w, &o.to_json())?;
            writeln!(w)?;
            Ok(())
        })?;
        self.write_items(out)?;
        self.write_users(out)?;
        write_atomically(&out.join("events.csv"), |w| {
            writeln!(w, "user_id,item_id,event,ts")?;
            for (u, i, e, ts) in events {
                writeln!(w, "f{u},{},{e},{ts}", items[*i].id)?;
            }
            Ok(())
        })?;
        // Today's specials in the shop's own order: the newest deals first,
        // then the deepest discount.
        let today: Vec<&Special> = self
            .shop_order(o.today)
            .into_iter()
            .map(|i| &items[i])
            .collect();
        write_atomically(&out.join("specials.txt"), |w| {
            for s in &today {
                writeln!(w, "{}", s.id)?;
            }
            Ok(())
        })?;
        write_atomically(&out.join("specials.json"), |w| {
            serde_json::to_writer(
                &mut *w,
                &serde_json::json!({ "date": format_date(o.today), "items": today }),
            )?;
            writeln!(w)?;
            Ok(())
        })?;
        Ok(ShopSummary {
            items: items.len(),
            events: events.len(),
            specials_today: today.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ShopOptions {
        ShopOptions {
            families: 200,
            days: 10,
            ..ShopOptions::default()
        }
    }

    #[test]
    fn deterministic_and_complete() {
        let dir = std::env::temp_dir().join(format!("nestrank-shop-{}", std::process::id()));
        let a = generate(&dir.join("a"), &small()).unwrap();
        let b = generate(&dir.join("b"), &small()).unwrap();
        assert_eq!(a, b);
        for f in [
            "events.csv",
            "items.csv",
            "users.csv",
            "specials.txt",
            "specials.json",
        ] {
            assert_eq!(
                std::fs::read(dir.join("a").join(f)).unwrap(),
                std::fs::read(dir.join("b").join(f)).unwrap(),
                "{f} differs between two runs with one seed"
            );
        }
        // About six days' launches are on sale on any day.
        assert!((400..=600).contains(&a.specials_today), "{a:?}");
        assert!(a.events > 5_000, "{a:?}");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("a/specials.json")).unwrap()).unwrap();
        let first = &json["items"][0];
        assert!(first["title"]
            .as_str()
            .unwrap()
            .contains(first["brand"].as_str().unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn families_buy_what_fits_their_baby() {
        let mut rng = Rng::new(1);
        let o = small();
        let items = catalog(&o, &mut rng);
        let newborn = Family {
            birthday: o.today - 10,
            gender: Fit::Girl,
            loyal: vec![None; BRANDS.len()],
            budget: 1.0,
            interest: vec![1.0; BRANDS.len()],
            activity: 1.0,
            stocked_until: vec![i32::MIN; LINES.len()],
        };
        let size = |s: &Special| s.title.ends_with("Newborn");
        let five = |s: &Special| s.title.ends_with("Size 5");
        let mean = |p: &dyn Fn(&Special) -> bool| {
            let v: Vec<f64> = items
                .iter()
                .filter(|s| p(s))
                .map(|s| appeal(&newborn, s, o.today))
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(&size) > 5.0 * mean(&five));
    }
}
