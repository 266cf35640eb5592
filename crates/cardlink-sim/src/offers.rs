//! The offers file: offers on the simulated merchants, using every field of
//! the contract (section 2).

use serde_json::{Map, Value, json};

use crate::SimConfig;
use crate::rng::Rng;
use crate::world::{CATS, CITIES, CURS, NETWORKS, World, country_slug, format_minor, nice_minor, slugify, timestamp};

/// One generated offer, before it becomes JSON.
#[derive(Debug, Clone)]
pub(crate) struct OfferSpec {
    pub id: String,
    pub currency: &'static str,
    /// `percent`, `fixed` or `points_per_unit`, and the value.
    pub reward: (&'static str, String),
    pub mids: Vec<String>,
    pub mccs: Vec<&'static str>,
    pub countries: Vec<&'static str>,
    pub networks: Vec<&'static str>,
    pub min_spend: Option<String>,
    pub max_reward: Option<String>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub days: Vec<&'static str>,
    pub hours: Option<(&'static str, &'static str)>,
    pub activation_required: bool,
    pub max_per_card: Option<u64>,
    pub budget: Option<String>,
    /// Merchants the offer can match (at most a few dozen), where the feed
    /// sends cards that activated it.
    pub sample: Vec<u32>,
}

impl OfferSpec {
    /// The offer's fields in the contract's order, absent ones left out.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut f = vec![
            ("id", json!(self.id)),
            ("currency", json!(self.currency)),
            ("reward", json!({ self.reward.0: self.reward.1 })),
        ];
        let mut merchant = Map::new();
        for (key, list) in [
            ("mids", self.mids.iter().map(|s| json!(s)).collect::<Vec<_>>()),
            ("mccs", self.mccs.iter().map(|s| json!(s)).collect()),
            ("countries", self.countries.iter().map(|s| json!(s)).collect()),
        ] {
            if !list.is_empty() {
                merchant.insert(key.into(), Value::Array(list));
            }
        }
        if !merchant.is_empty() {
            f.push(("merchant", Value::Object(merchant)));
        }
        if !self.networks.is_empty() {
            f.push(("networks", json!(self.networks)));
        }
        for (key, v) in [
            ("min_spend", &self.min_spend),
            ("max_reward", &self.max_reward),
            ("valid_from", &self.valid_from),
            ("valid_until", &self.valid_until),
        ] {
            if let Some(v) = v {
                f.push((key, json!(v)));
            }
        }
        if !self.days.is_empty() {
            f.push(("days", json!(self.days)));
        }
        if let Some((from, until)) = self.hours {
            f.push(("hours", json!({"from": from, "until": until})));
        }
        if self.activation_required {
            f.push(("activation_required", json!(true)));
        }
        if let Some(n) = self.max_per_card {
            f.push(("max_per_card", json!(n)));
        }
        if let Some(b) = &self.budget {
            f.push(("budget", json!(b)));
        }
        f
    }

    /// The offer as a JSON object.
    pub(crate) fn to_json(&self) -> Value {
        Value::Object(self.fields().into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

/// Writes offers as a pretty JSON array: one field a line, fields in the
/// contract's order, small values inline.
pub(crate) fn write_pretty(specs: &[OfferSpec], out: &mut String) {
    if specs.is_empty() {
        out.push_str("[]\n");
        return;
    }
    out.push_str("[\n");
    for (i, spec) in specs.iter().enumerate() {
        out.push_str("  {\n");
        let fields = spec.fields();
        for (j, (k, v)) in fields.iter().enumerate() {
            out.push_str("    \"");
            out.push_str(k);
            out.push_str("\": ");
            inline(v, out);
            out.push_str(if j + 1 < fields.len() { ",\n" } else { "\n" });
        }
        out.push_str(if i + 1 < specs.len() { "  },\n" } else { "  }\n" });
    }
    out.push_str("]\n");
}

fn inline(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                inline(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                inline(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

enum Scope {
    Brand(usize),
    Single(u32),
    Mcc,
    Country,
    Any,
}

const WEEKDAYS: &[&str] = &["MON", "TUE", "WED", "THU", "FRI"];
const WEEKEND: &[&str] = &["SAT", "SUN"];
const LUNCH: (&str, &str) = ("11:00", "14:00");
const HAPPY_HOUR: (&str, &str) = ("17:00", "19:00");
const LATE_NIGHT: (&str, &str) = ("22:00", "02:00");
const BREAKFAST: (&str, &str) = ("06:00", "10:00");

/// Most merchants an offer remembers as where its activating cards shop.
const SAMPLE: usize = 24;

/// Builds the offers of a configuration over its world.
pub(crate) fn build(config: &SimConfig, world: &World) -> Vec<OfferSpec> {
    let mut rng = Rng::new(config.seed, 2);
    let start = config.start.timestamp();
    let days = i64::from(config.days.max(1));
    // Budgets grow with the feed, so that some run out whatever its size.
    let scale = (config.events as f64 / 1_000_000.0).max(0.01);

    let brand_w: Vec<f64> = world
        .brands
        .iter()
        .map(|b| {
            let c = &CATS[b.cat as usize];
            b.stores.len() as f64 * c.volume / c.stores
        })
        .collect();
    let have_brands = brand_w.iter().any(|w| *w > 0.0);
    let city_w: Vec<f64> =
        CITIES.iter().enumerate().map(|(i, c)| if world.by_city[i].is_empty() { 0.0 } else { c.weight }).collect();
    let cat_volume: Vec<f64> = CATS.iter().map(|c| c.volume).collect();

    let mut out = Vec::with_capacity(config.offers as usize);
    for k in 0..config.offers {
        let roll = rng.f64();
        let scope = if roll < 0.7 && have_brands {
            Scope::Brand(rng.weighted(&brand_w))
        } else if roll < 0.84 {
            let city = rng.weighted(&city_w);
            let cat = rng.weighted(&cat_volume);
            let group = &world.by_city_cat[city * crate::world::NCAT + cat];
            let group = if group.is_empty() { &world.by_city[city] } else { group };
            Scope::Single(group[rng.skewed(group.len().min(8))])
        } else if roll < 0.92 {
            Scope::Mcc
        } else if roll < 0.96 {
            Scope::Country
        } else {
            Scope::Any
        };

        let mut mids = Vec::new();
        let mut mccs = Vec::new();
        let mut countries = Vec::new();
        let mut networks = Vec::new();
        let mut sample = Vec::new();
        let (cat, cur, slug) = match scope {
            Scope::Brand(b) => {
                let brand = &world.brands[b];
                // One currency per offer: the stores of one city, or of
                // the whole currency area.
                let pick = brand.stores[rng.index(brand.stores.len())];
                let cur = world.cur_of(pick);
                let city = world.merchants[pick as usize].city;
                let one_city = rng.chance(0.6);
                let mut stores: Vec<u32> = brand
                    .stores
                    .iter()
                    .copied()
                    .filter(|&m| world.cur_of(m) == cur && (!one_city || world.merchants[m as usize].city == city))
                    .collect();
                stores.sort_by(|a, b| world.merchants[*a as usize].mid.cmp(&world.merchants[*b as usize].mid));
                mids = stores.iter().map(|&m| world.merchants[m as usize].mid.clone()).collect();
                sample = stores.iter().copied().take(SAMPLE).collect();
                (Some(brand.cat as usize), cur, brand.slug.clone())
            }
            Scope::Single(m) => {
                let merchant = &world.merchants[m as usize];
                mids.push(merchant.mid.clone());
                sample.push(m);
                // A chain store's offer is named after the chain (`Hartley's #4` → `hartleys`).
                let name = merchant.name.split(" #").next().unwrap_or(&merchant.name);
                (Some(merchant.cat as usize), world.cur_of(m), slugify(name))
            }
            Scope::Mcc => {
                let cat = rng.weighted(&cat_volume);
                let city = &CITIES[rng.weighted(&city_w)];
                let c = &CATS[cat];
                mccs.push(c.mcc);
                let mut slug = c.slug.to_string();
                if (c.mcc == "5812" || c.mcc == "5813") && rng.chance(0.4) {
                    mccs = vec!["5812", "5813"];
                    slug = "dining".into();
                }
                let by_country = rng.chance(if CURS[city.cur].code == "EUR" { 0.7 } else { 0.5 });
                if by_country {
                    countries.push(city.country);
                    slug = format!("{slug}-{}", country_slug(city.country));
                } else {
                    slug = format!("{slug}-{}", CURS[city.cur].code.to_ascii_lowercase());
                }
                sample = matching(world, city.cur, &mccs, &countries);
                (Some(cat), city.cur, slug)
            }
            Scope::Country => {
                let city = &CITIES[rng.weighted(&city_w)];
                countries.push(city.country);
                sample = matching(world, city.cur, &[], &countries);
                (None, city.cur, country_slug(city.country).to_string())
            }
            Scope::Any => {
                let cur = if rng.chance(0.75) && !city_w[..8].iter().all(|w| *w == 0.0) {
                    0
                } else {
                    CITIES[rng.weighted(&city_w)].cur
                };
                let slug = if rng.chance(0.85) {
                    let n = NETWORKS[rng.weighted(&[30.0, 20.0, 40.0, 10.0])].0;
                    networks.push(n);
                    format!("{}-everyday", n.to_ascii_lowercase())
                } else {
                    "everyday".to_string()
                };
                sample = matching(world, cur, &[], &[]);
                (None, cur, slug)
            }
        };
        let currency = &CURS[cur];
        let fx = currency.fx;
        let digits = currency.digits;
        let median = cat.map_or(40.0, |c| CATS[c].median);
        let money = |major: f64| format_minor(nice_minor(major * fx, digits), digits);
        let broad = matches!(scope, Scope::Country | Scope::Any);
        let by_category = matches!(scope, Scope::Mcc);

        // The reward.
        let roll = rng.f64();
        let (reward_key, reward_value, desc, ppu_or_pct) = if roll < if broad { 0.45 } else { 0.5 } {
            let menu: &[&str] = match cat.map(|c| CATS[c].slug) {
                _ if by_category => &["2", "3", "5"],
                Some("coffee" | "fast-food") => &["10", "15", "20", "25"],
                Some("restaurants" | "bars" | "cinemas" | "rides") => &["5", "10", "15", "20"],
                Some("electronics" | "airlines" | "hotels" | "department-stores") => &["3", "5", "7.5", "10"],
                Some(_) => &["5", "10", "15"],
                None => &["1", "2", "3", "5"],
            };
            let p = *rng.pick(menu);
            ("percent", p.to_string(), format!("{}pct", p.replace('.', "-")), p.parse::<f64>().unwrap_or(1.0))
        } else if roll < if broad { 0.55 } else { 0.7 } {
            let v = money(median * rng.pick(&[0.15, 0.25, 0.4]));
            let short = if v.contains('.') { v.trim_end_matches('0').trim_end_matches('.') } else { &v };
            let desc = format!("{}off", short.replace('.', "-"));
            ("fixed", v.clone(), desc, 0.0)
        } else {
            let menu: &[(&str, f64)] = match (currency.code, broad) {
                ("JPY", _) => &[("0.01", 0.01), ("0.02", 0.02), ("0.05", 0.05)],
                ("KRW", _) => &[("0.001", 0.001), ("0.002", 0.002), ("0.005", 0.005)],
                (_, true) => &[("1", 1.0), ("2", 2.0)],
                _ => &[("1", 1.0), ("2", 2.0), ("3", 3.0), ("4", 4.0), ("5", 5.0)],
            };
            let (s, v) = *rng.pick(menu);
            let desc = if v >= 1.0 { format!("{s}x") } else { "points".to_string() };
            ("points_per_unit", s.to_string(), desc, v)
        };
        let id = format!("{slug}-{desc}-{k:04}");

        // Thresholds and caps.
        let min_spend_p = match reward_key {
            "fixed" => 0.85,
            "percent" => 0.25,
            _ => 0.1,
        };
        let min_spend = rng.chance(min_spend_p).then(|| {
            let factor = if reward_key == "fixed" { *rng.pick(&[0.8, 1.2, 2.0]) } else { *rng.pick(&[0.5, 1.0, 2.0]) };
            money(median * factor)
        });
        let max_reward = match reward_key {
            "percent" if rng.chance(0.45) => Some(money(median * ppu_or_pct / 100.0 * rng.pick(&[2.0, 3.0, 5.0]))),
            "points_per_unit" if rng.chance(0.25) => {
                Some(nice_minor(ppu_or_pct * median * fx * rng.pick(&[3.0, 5.0]), 0).to_string())
            }
            _ => None,
        };

        // Networks (broad offers chose theirs above).
        if !broad {
            let r = rng.f64();
            if r < 0.12 {
                networks.push(NETWORKS[rng.weighted(&[30.0, 20.0, 40.0, 10.0])].0);
            } else if r < 0.17 {
                networks = vec!["VISA", "MASTERCARD"];
            }
        }

        // Validity, at local midnights of the offer's region.
        let offset = sample.first().map_or(0, |&m| world.city_of(m).offset_min);
        let midnight = |day: i64| -> String {
            let local_start = start + i64::from(offset) * 60;
            let t = local_start - local_start.rem_euclid(86_400) + day * 86_400 - i64::from(offset) * 60;
            let s = timestamp(t, offset);
            if offset == 0 { s.replace("+00:00", "Z") } else { s }
        };
        let r = rng.f64();
        let (from, until) = if r < 0.45 {
            (Some(-(rng.below(10) as i64)), Some(days + 1 + rng.below(30) as i64))
        } else if r < 0.65 {
            (Some(rng.int(2, (days / 2).max(2))), Some(days + 1 + rng.below(30) as i64))
        } else if r < 0.8 {
            (Some(-1 - rng.below(30) as i64), Some(rng.int((days / 3).max(1), (days - 2).max(1))))
        } else if r < 0.9 {
            let f = rng.int(1, (days - 1).max(1));
            (Some(f), Some(f + rng.int(3, 10)))
        } else if r < 0.94 {
            (None, Some(days + rng.int(0, 20)))
        } else if r < 0.97 {
            (Some(rng.int(0, days / 4)), None)
        } else {
            (None, None)
        };

        // Days and hours, by what the merchants sell.
        let mut days_list: Vec<&'static str> = Vec::new();
        let mut hours = None;
        let r = rng.f64();
        match cat.map(|c| CATS[c].slug) {
            Some("restaurants") if r < 0.18 => {
                hours = Some(LUNCH);
                if rng.chance(0.5) {
                    days_list = WEEKDAYS.to_vec();
                }
            }
            Some("restaurants") if r < 0.26 => hours = Some(HAPPY_HOUR),
            Some("fast-food") if r < 0.15 => hours = Some(LUNCH),
            Some("fast-food") if r < 0.23 => hours = Some(LATE_NIGHT),
            Some("fast-food") if r < 0.31 => days_list = vec!["TUE"],
            Some("bars") if r < 0.35 => hours = Some(HAPPY_HOUR),
            Some("bars") if r < 0.5 => hours = Some(LATE_NIGHT),
            Some("bars") if r < 0.6 => days_list = vec!["THU", "FRI", "SAT"],
            Some("rides") if r < 0.2 => hours = Some(LATE_NIGHT),
            Some("coffee") if r < 0.15 => hours = Some(BREAKFAST),
            Some("cinemas") if r < 0.25 => days_list = vec!["TUE", "WED"],
            _ if r < 0.1 => days_list = WEEKDAYS.to_vec(),
            _ if r < 0.17 => days_list = WEEKEND.to_vec(),
            _ => {}
        }

        // Broad offers are opt-in programs; merchant offers often are too.
        let activation_required = rng.chance(match scope {
            Scope::Brand(_) => 0.5,
            Scope::Single(_) => 0.35,
            Scope::Mcc => 0.8,
            Scope::Country | Scope::Any => 1.0,
        });
        let max_per_card = rng.chance(0.3).then(|| *rng.pick(&[1, 1, 2, 3, 5, 10]));
        let budget = rng.chance(0.3).then(|| {
            let base = rng.pick(&[50.0, 150.0, 400.0, 1000.0, 2500.0, 6000.0]) * scale;
            if reward_key == "points_per_unit" {
                nice_minor(base * fx * ppu_or_pct * 10.0, 0).to_string()
            } else {
                money(base)
            }
        });

        out.push(OfferSpec {
            id,
            currency: currency.code,
            reward: (reward_key, reward_value),
            mids,
            mccs,
            countries,
            networks,
            min_spend,
            max_reward,
            valid_from: from.map(midnight),
            valid_until: until.map(midnight),
            days: days_list,
            hours,
            activation_required,
            max_per_card,
            budget,
            sample,
        });
    }
    out
}

/// The first few merchants (the most popular ones) in `cur` that match
/// MCC and country lists (an empty list matches anything).
fn matching(world: &World, cur: usize, mccs: &[&str], countries: &[&str]) -> Vec<u32> {
    let mut found = Vec::new();
    for (i, m) in world.merchants.iter().enumerate() {
        let city = &CITIES[m.city as usize];
        if city.cur == cur
            && (mccs.is_empty() || mccs.contains(&CATS[m.cat as usize].mcc))
            && (countries.is_empty() || countries.contains(&city.country))
        {
            found.push(i as u32);
            if found.len() == SAMPLE {
                break;
            }
        }
    }
    found
}
