//! The simulated world: cities, merchant categories, merchants, cards and
//! the daily rhythm of spending. Built from the seed alone, so the feed and
//! the offers file of one configuration describe the same merchants.

use crate::rng::{Rng, mix32};

/// A currency the simulated merchants charge in.
#[derive(Debug)]
pub(crate) struct Cur {
    pub code: &'static str,
    /// Minor-unit digits (USD 2, JPY 0, KWD 3).
    pub digits: u32,
    /// Units of this currency per US dollar (rough, fixed).
    pub fx: f64,
    /// Prices are multiples of this many minor units (JPY 10, KRW 100).
    pub step: i64,
}

pub(crate) const CURS: &[Cur] = &[
    Cur { code: "USD", digits: 2, fx: 1.0, step: 1 },
    Cur { code: "CAD", digits: 2, fx: 1.37, step: 1 },
    Cur { code: "GBP", digits: 2, fx: 0.79, step: 1 },
    Cur { code: "EUR", digits: 2, fx: 0.92, step: 1 },
    Cur { code: "JPY", digits: 0, fx: 155.0, step: 10 },
    Cur { code: "KRW", digits: 0, fx: 1370.0, step: 100 },
    Cur { code: "KWD", digits: 3, fx: 0.307, step: 5 },
    Cur { code: "AUD", digits: 2, fx: 1.52, step: 1 },
];

/// A city merchants are in. Offsets are fixed (the summer offsets of May):
/// the simulated period is short and no city changes its clocks in it.
#[derive(Debug)]
pub(crate) struct City {
    /// For readers of the table.
    #[allow(dead_code)]
    pub name: &'static str,
    pub country: &'static str,
    /// Index into [`CURS`].
    pub cur: usize,
    /// UTC offset in minutes.
    pub offset_min: i32,
    /// Share of the network's purchases.
    pub weight: f64,
    /// Share of restaurant/bar/taxi bills that carry a tip, and its range.
    pub tip: (f64, f64, f64),
}

const US_TIP: (f64, f64, f64) = (0.85, 0.15, 0.25);

pub(crate) const CITIES: &[City] = &[
    City { name: "New York", country: "US", cur: 0, offset_min: -240, weight: 16.0, tip: US_TIP },
    City { name: "Los Angeles", country: "US", cur: 0, offset_min: -420, weight: 9.0, tip: US_TIP },
    City { name: "Chicago", country: "US", cur: 0, offset_min: -300, weight: 8.0, tip: US_TIP },
    City { name: "San Francisco", country: "US", cur: 0, offset_min: -420, weight: 7.0, tip: US_TIP },
    City { name: "Miami", country: "US", cur: 0, offset_min: -240, weight: 5.0, tip: US_TIP },
    City { name: "Seattle", country: "US", cur: 0, offset_min: -420, weight: 4.0, tip: US_TIP },
    City { name: "Denver", country: "US", cur: 0, offset_min: -360, weight: 3.0, tip: US_TIP },
    City { name: "Austin", country: "US", cur: 0, offset_min: -300, weight: 3.0, tip: US_TIP },
    City { name: "Toronto", country: "CA", cur: 1, offset_min: -240, weight: 4.0, tip: (0.8, 0.15, 0.2) },
    City { name: "London", country: "GB", cur: 2, offset_min: 60, weight: 7.0, tip: (0.35, 0.1, 0.125) },
    City { name: "Paris", country: "FR", cur: 3, offset_min: 120, weight: 3.5, tip: (0.3, 0.05, 0.1) },
    City { name: "Berlin", country: "DE", cur: 3, offset_min: 120, weight: 3.0, tip: (0.3, 0.05, 0.1) },
    City { name: "Tokyo", country: "JP", cur: 4, offset_min: 540, weight: 4.0, tip: (0.0, 0.0, 0.0) },
    City { name: "Seoul", country: "KR", cur: 5, offset_min: 540, weight: 2.0, tip: (0.0, 0.0, 0.0) },
    City { name: "Kuwait City", country: "KW", cur: 6, offset_min: 180, weight: 1.0, tip: (0.0, 0.0, 0.0) },
    City { name: "Sydney", country: "AU", cur: 7, offset_min: 600, weight: 2.5, tip: (0.3, 0.1, 0.1) },
];

pub(crate) const NCITY: usize = CITIES.len();

/// Slug of a country for offer ids.
pub(crate) fn country_slug(country: &str) -> &'static str {
    match country {
        "US" => "usa",
        "CA" => "canada",
        "GB" => "uk",
        "FR" => "france",
        "DE" => "germany",
        "JP" => "japan",
        "KR" => "korea",
        "KW" => "kuwait",
        "AU" => "australia",
        _ => "abroad",
    }
}

/// A merchant category: its MCC, how its customers spend, when, and the
/// names its shops go by.
#[derive(Debug)]
pub(crate) struct Category {
    pub mcc: &'static str,
    /// Plural slug for offer ids ("restaurants").
    pub slug: &'static str,
    /// Share of merchants.
    pub stores: f64,
    /// Share of purchases.
    pub volume: f64,
    /// Purchase amount in USD: log-normal median and sigma, clamped.
    pub median: f64,
    pub sigma: f64,
    pub min: f64,
    pub max: f64,
    /// Bills often get a tip added at clearing.
    pub tipped: bool,
    /// Share of prices ending in .99.
    pub charm: f64,
    /// Relative chance of a refund and of a reversal (normalised overall).
    pub refund: f64,
    pub reversal: f64,
    /// Volume factor on Saturdays and Sundays.
    pub weekend: f64,
    /// Relative volume by local hour.
    pub hours: [u8; 24],
    /// Share of its merchants that are chain stores.
    pub chain_share: f64,
    pub brands: &'static [&'static str],
    /// Independent shops are named `first second`.
    pub first: &'static [&'static str],
    pub second: &'static [&'static str],
    /// Chain stores are named `Brand #12` (else just `Brand`).
    pub numbered: bool,
}

pub(crate) const FUEL: usize = 5;
pub(crate) const HOTELS: usize = 13;

#[rustfmt::skip]
pub(crate) const CATS: &[Category] = &[
    Category { mcc: "5499", slug: "coffee", stores: 9.0, volume: 10.0, median: 6.5, sigma: 0.35, min: 3.0, max: 12.0,
        tipped: false, charm: 0.0, refund: 0.01, reversal: 0.02, weekend: 0.75,
        hours: [1,0,0,0,0,2,8,18,22,16,10,8,8,7,6,5,4,3,2,1,1,1,1,1], chain_share: 0.55,
        brands: &["Blue Bottle", "Daily Grind", "Bean Theory", "Copper Kettle Cafe", "Morning Ritual", "Third Wave Roasters"],
        first: &["Corner", "Little", "Sunny", "Old Mill", "Laughing", "Brick Lane", "Harbor", "Velvet"],
        second: &["Coffee", "Espresso Bar", "Cafe", "Roastery", "Coffee House"], numbered: true },
    Category { mcc: "5814", slug: "fast-food", stores: 12.0, volume: 14.0, median: 12.0, sigma: 0.45, min: 4.0, max: 60.0,
        tipped: false, charm: 0.0, refund: 0.02, reversal: 0.02, weekend: 1.1,
        hours: [3,2,1,1,1,2,4,6,6,5,8,16,20,14,8,6,8,12,14,12,8,6,5,4], chain_share: 0.8,
        brands: &["Burger Barn", "Taco Loco", "Wok Express", "Crispy Coop", "Pizza Piazza", "Sandwich Depot", "Noodle Box"],
        first: &["Speedy", "Big", "Golden", "Happy", "Downtown", "Mama's"],
        second: &["Burgers", "Tacos", "Dumplings", "Pizza", "Kebab", "Fried Chicken", "Bagels"], numbered: true },
    Category { mcc: "5812", slug: "restaurants", stores: 20.0, volume: 12.0, median: 48.0, sigma: 0.6, min: 12.0, max: 400.0,
        tipped: true, charm: 0.0, refund: 0.02, reversal: 0.02, weekend: 1.35,
        hours: [2,1,0,0,0,0,1,2,3,3,5,10,16,12,5,3,4,8,16,18,14,8,4,3], chain_share: 0.15,
        brands: &["Harvest Table", "Cedar Grill", "Sakura House", "The Smokehouse", "Bella Napoli"],
        first: &["Harbor", "Maple", "Golden", "Little", "Old Town", "Blue Door", "Red Lantern", "Olive", "Copper",
            "Wild Fig", "Union", "Juniper", "Saffron", "Lotus"],
        second: &["Bistro", "Kitchen", "Grill", "Trattoria", "Brasserie", "Diner", "Tavern", "Cantina", "Izakaya",
            "Steakhouse", "Eatery", "Noodle House", "Oyster Bar"], numbered: true },
    Category { mcc: "5813", slug: "bars", stores: 7.0, volume: 4.0, median: 38.0, sigma: 0.6, min: 8.0, max: 250.0,
        tipped: true, charm: 0.0, refund: 0.01, reversal: 0.02, weekend: 1.6,
        hours: [10,7,4,1,0,0,0,0,0,0,0,1,2,2,2,3,6,12,16,16,16,16,15,13], chain_share: 0.08,
        brands: &["Tap & Barrel", "The Local"],
        first: &["The Crooked", "The Rusty", "Night", "The Velvet", "Hop", "The Lucky", "The Black", "Twelfth"],
        second: &["Anchor", "Fox", "Owl", "Lounge", "Taproom", "Social Club", "Speakeasy", "Pub"], numbered: true },
    Category { mcc: "5411", slug: "groceries", stores: 9.0, volume: 16.0, median: 55.0, sigma: 0.7, min: 15.0, max: 220.0,
        tipped: false, charm: 0.1, refund: 0.04, reversal: 0.02, weekend: 1.25,
        hours: [1,1,0,0,0,1,2,4,6,8,10,11,12,11,10,10,12,15,16,14,10,6,3,2], chain_share: 0.55,
        brands: &["FreshMart", "Green Basket", "ValueFoods", "Daily Harvest Market", "Corner Grocer"],
        first: &["Sunrise", "Main Street", "Family", "Village", "Harvest", "Evergreen"],
        second: &["Market", "Grocery", "Foods", "Deli & Market", "Supermarket"], numbered: true },
    Category { mcc: "5541", slug: "fuel", stores: 6.0, volume: 8.0, median: 52.0, sigma: 0.3, min: 30.0, max: 90.0,
        tipped: false, charm: 0.0, refund: 0.01, reversal: 0.1, weekend: 0.95,
        hours: [2,1,1,1,1,3,8,14,12,8,8,9,9,8,8,10,14,15,12,8,6,4,3,2], chain_share: 0.8,
        brands: &["QuickFuel", "Summit Gas", "Roadstar", "Meridian Energy", "Blue Flame"],
        first: &["Highway", "Corner", "Route 9", "Express"],
        second: &["Gas", "Fuel Stop", "Service Station"], numbered: true },
    Category { mcc: "5912", slug: "pharmacy", stores: 4.0, volume: 5.0, median: 24.0, sigma: 0.7, min: 4.0, max: 180.0,
        tipped: false, charm: 0.3, refund: 0.03, reversal: 0.02, weekend: 0.9,
        hours: [1,1,0,0,0,0,1,3,6,9,10,11,11,10,10,10,11,12,11,9,6,4,2,1], chain_share: 0.8,
        brands: &["WellCare Pharmacy", "CityRx", "HealthPlus Drug"],
        first: &["Main Street", "Family", "Neighborhood"],
        second: &["Pharmacy", "Chemist", "Drugstore"], numbered: true },
    Category { mcc: "5311", slug: "department-stores", stores: 2.0, volume: 5.0, median: 75.0, sigma: 0.8, min: 10.0, max: 900.0,
        tipped: false, charm: 0.45, refund: 0.15, reversal: 0.02, weekend: 1.35,
        hours: [0,0,0,0,0,0,0,1,2,5,9,12,13,13,13,13,13,13,12,10,7,3,1,0], chain_share: 1.0,
        brands: &["Hartley's", "Grand Emporium", "Northgate", "Sterling & Co"],
        first: &["Central"], second: &["Department Store"], numbered: true },
    Category { mcc: "5732", slug: "electronics", stores: 2.0, volume: 2.0, median: 180.0, sigma: 1.0, min: 50.0, max: 2000.0,
        tipped: false, charm: 0.5, refund: 0.15, reversal: 0.03, weekend: 1.2,
        hours: [2,1,1,0,0,0,1,2,3,5,8,10,11,11,11,11,11,12,12,11,10,8,5,3], chain_share: 0.7,
        brands: &["VoltMart", "Gadget Galaxy", "PixelPoint", "TechHaven"],
        first: &["Digital", "Micro", "Bright"], second: &["Electronics", "Computers", "Phone Repair"], numbered: true },
    Category { mcc: "4121", slug: "rides", stores: 1.0, volume: 7.0, median: 22.0, sigma: 0.5, min: 6.0, max: 120.0,
        tipped: true, charm: 0.0, refund: 0.06, reversal: 0.05, weekend: 1.15,
        hours: [9,7,5,3,2,3,6,12,14,9,6,6,7,6,6,7,9,13,14,12,11,11,11,10], chain_share: 1.0,
        brands: &["Swift Rides", "CityCab", "Zoomo", "Yellow Line Taxi"],
        first: &["Metro"], second: &["Taxi"], numbered: false },
    Category { mcc: "7832", slug: "cinemas", stores: 2.0, volume: 2.0, median: 28.0, sigma: 0.4, min: 9.0, max: 90.0,
        tipped: false, charm: 0.0, refund: 0.05, reversal: 0.02, weekend: 1.7,
        hours: [1,0,0,0,0,0,0,0,0,0,1,2,3,4,4,5,6,9,14,17,16,12,5,2], chain_share: 0.75,
        brands: &["Starlight Cinemas", "Grand Screen", "Picture House", "Cinema Nova"],
        first: &["Majestic", "Rialto", "Electric"], second: &["Theatre", "Cinema", "Picturehouse"], numbered: true },
    Category { mcc: "5999", slug: "shops", stores: 16.0, volume: 8.0, median: 32.0, sigma: 0.9, min: 3.0, max: 500.0,
        tipped: false, charm: 0.3, refund: 0.1, reversal: 0.02, weekend: 1.15,
        hours: [2,1,1,0,0,0,1,2,4,7,9,10,11,11,11,10,10,11,11,10,8,6,4,3], chain_share: 0.15,
        brands: &["Everyday Goods", "Dollar Depot"],
        first: &["Urban", "Artisan", "Lucky", "Green Leaf", "Bright", "Northside"],
        second: &["Gift Shop", "Boutique", "Outfitters", "Supply Co", "Trading Post", "Florist", "Pet Supply"], numbered: true },
    Category { mcc: "4511", slug: "airlines", stores: 0.6, volume: 1.0, median: 380.0, sigma: 0.5, min: 150.0, max: 1200.0,
        tipped: false, charm: 0.0, refund: 0.15, reversal: 0.03, weekend: 0.7,
        hours: [2,1,1,1,1,2,4,6,8,10,10,10,10,10,10,10,10,10,10,10,9,7,5,3], chain_share: 1.0,
        brands: &["Pacific Air", "Atlantic Airways", "Northstar Airlines", "SkyBridge"],
        first: &["Regional"], second: &["Air"], numbered: false },
    Category { mcc: "7011", slug: "hotels", stores: 3.0, volume: 1.5, median: 240.0, sigma: 0.6, min: 90.0, max: 1500.0,
        tipped: false, charm: 0.0, refund: 0.12, reversal: 0.12, weekend: 1.2,
        hours: [2,1,1,1,1,2,4,6,8,9,9,9,9,10,12,14,14,12,10,8,6,5,4,3], chain_share: 0.6,
        brands: &["Grand Meridian Hotel", "Parkside Suites", "Comfort Lodge", "The Royal Crest"],
        first: &["Harbor", "City", "Riverside", "Garden"], second: &["Inn", "Hotel", "Suites", "B&B"], numbered: true },
    Category { mcc: "5942", slug: "bookstores", stores: 2.0, volume: 1.5, median: 24.0, sigma: 0.55, min: 6.0, max: 150.0,
        tipped: false, charm: 0.4, refund: 0.08, reversal: 0.02, weekend: 1.2,
        hours: [0,0,0,0,0,0,0,1,2,4,8,10,11,11,11,11,11,11,10,9,7,4,1,0], chain_share: 0.35,
        brands: &["Chapter One Books", "Paperback Alley"],
        first: &["Old", "Blue", "Lantern", "Owl", "Corner"], second: &["Books", "Bookshop", "Book Exchange"], numbered: true },
];

pub(crate) const NCAT: usize = CATS.len();

/// Share of cleared purchases refunded, and of authorizations reversed.
pub(crate) const REFUND_SHARE: f64 = 0.04;
pub(crate) const REVERSAL_SHARE: f64 = 0.03;

/// One merchant.
#[derive(Debug)]
pub(crate) struct Merchant {
    pub mid: String,
    pub name: String,
    pub city: u8,
    pub cat: u8,
}

/// A chain and its stores.
#[derive(Debug)]
pub(crate) struct Brand {
    pub name: &'static str,
    pub slug: String,
    pub cat: u8,
    pub stores: Vec<u32>,
}

/// Everything the generator draws purchases from.
#[derive(Debug)]
pub(crate) struct World {
    pub merchants: Vec<Merchant>,
    pub brands: Vec<Brand>,
    /// Merchants of a city and category (`city * NCAT + cat`), most popular first.
    pub by_city_cat: Vec<Vec<u32>>,
    /// Merchants of a city.
    pub by_city: Vec<Vec<u32>>,
    /// Cards of city `c` are `card_bounds[c]..card_bounds[c + 1]`.
    pub card_bounds: Vec<u32>,
    pub cards: u32,
    token_salt: u32,
    network_salt: u32,
    /// By local hour of the week (Monday 00h = 0): purchases per category.
    pub cat_rate: Vec<[f64; NCAT]>,
    /// By UTC hour of the week: purchases per city.
    pub city_rate: Vec<[f64; NCITY]>,
    /// By UTC hour of the week: the network's purchase rate, mean 1.
    pub global_rate: Vec<f64>,
    /// Per category: refund and reversal probability.
    pub refund_p: [f64; NCAT],
    pub reversal_p: [f64; NCAT],
    /// Per category: relative volume by local hour, for scheduling.
    pub hour_weights: [[f64; 24]; NCAT],
}

/// The card networks: name, token letter, share of cards.
pub(crate) const NETWORKS: &[(&str, char, u32)] =
    &[("VISA", 'v', 50), ("MASTERCARD", 'm', 30), ("AMEX", 'a', 12), ("DISCOVER", 'd', 8)];

/// Hour of the week (Monday 00h = 0) of a count of seconds since the Unix
/// epoch (1970-01-01 was a Thursday).
#[inline]
pub(crate) fn hour_of_week(secs: i64) -> usize {
    let days = secs.div_euclid(86_400);
    let weekday = (days + 3).rem_euclid(7);
    (weekday * 24 + secs.rem_euclid(86_400) / 3600) as usize
}

/// Lower-case slug of a name: letters and digits, runs of others as `-`.
pub(crate) fn slugify(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if c == '\'' {
            continue;
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    while s.ends_with('-') {
        s.pop();
    }
    s
}

impl World {
    /// Builds the world of a seed.
    pub(crate) fn new(seed: u64, merchants: u32, cards: u64) -> World {
        let mut rng = Rng::new(seed, 1);
        let merchants = merchants.max(1);
        let cards = cards.clamp(1, u64::from(u32::MAX)) as u32;

        let mut brands = Vec::new();
        let mut brand_base = [0u32; NCAT];
        for (ci, cat) in CATS.iter().enumerate() {
            brand_base[ci] = brands.len() as u32;
            for name in cat.brands {
                brands.push(Brand { name, slug: slugify(name), cat: ci as u8, stores: Vec::new() });
            }
        }
        // Smaller cities have relatively more shops per purchase: weight^0.75.
        let city_w: Vec<f64> = CITIES.iter().map(|c| c.weight.sqrt() * c.weight.sqrt().sqrt()).collect();
        let cat_w: Vec<f64> = CATS.iter().map(|c| c.stores).collect();
        let brand_w: Vec<Vec<f64>> =
            CATS.iter().map(|c| (0..c.brands.len()).map(|i| 1.0 / (i as f64 + 1.0)).collect()).collect();

        let mut list = Vec::with_capacity(merchants as usize);
        let mut by_city_cat = vec![Vec::new(); NCITY * NCAT];
        let mut by_city = vec![Vec::new(); NCITY];
        // With enough merchants every city gets one of each category first.
        let seeded = if merchants as usize >= 4 * NCITY * NCAT { NCITY * NCAT } else { 0 };
        for i in 0..merchants as usize {
            let (city, cat) = if i < seeded {
                (i / NCAT, i % NCAT)
            } else if i < NCITY {
                (i, rng.weighted(&cat_w))
            } else {
                (rng.weighted(&city_w), rng.weighted(&cat_w))
            };
            let c = &CATS[cat];
            let name = if rng.chance(c.chain_share) {
                let b = (brand_base[cat] as usize + rng.weighted(&brand_w[cat])) as u32;
                let brand = &mut brands[b as usize];
                brand.stores.push(i as u32);
                if c.numbered { format!("{} #{}", brand.name, brand.stores.len()) } else { brand.name.to_string() }
            } else {
                format!("{} {}", rng.pick(c.first), rng.pick(c.second))
            };
            // 7919 is prime to 10^9: distinct merchants get distinct mids.
            let mid = format!("M{:09}", (i as u64 * 7919 + 104_729) % 1_000_000_000);
            list.push(Merchant { mid, name, city: city as u8, cat: cat as u8 });
            by_city_cat[city * NCAT + cat].push(i as u32);
            by_city[city].push(i as u32);
        }

        // Cards live where purchases happen.
        let total_w: f64 = CITIES.iter().map(|c| c.weight).sum();
        let mut card_bounds = vec![0u32];
        let mut acc = 0.0;
        for c in CITIES {
            acc += c.weight;
            card_bounds.push(((f64::from(cards) * acc / total_w).round() as u32).min(cards));
        }
        *card_bounds.last_mut().expect("cities") = cards;

        // The rhythm: by local hour of the week, each category's volume.
        let mut hour_weights = [[0.0; 24]; NCAT];
        let mut cat_rate = vec![[0.0; NCAT]; 168];
        for (ci, c) in CATS.iter().enumerate() {
            let mean = c.hours.iter().map(|&h| f64::from(h)).sum::<f64>() / 24.0;
            for (w, h) in hour_weights[ci].iter_mut().zip(c.hours) {
                *w = f64::from(h);
            }
            for (lh, rates) in cat_rate.iter_mut().enumerate() {
                let weekend = if lh / 24 >= 5 { c.weekend } else { 1.0 };
                rates[ci] = c.volume * f64::from(c.hours[lh % 24]) / mean * weekend;
            }
        }
        let local_total: Vec<f64> = cat_rate.iter().map(|r| r.iter().sum()).collect();
        let mean_local = local_total.iter().sum::<f64>() / 168.0;
        let mut city_rate = vec![[0.0; NCITY]; 168];
        for (uh, rates) in city_rate.iter_mut().enumerate() {
            for (ci, c) in CITIES.iter().enumerate() {
                if by_city[ci].is_empty() {
                    continue;
                }
                let lh = (uh as i64 * 60 + i64::from(c.offset_min)).div_euclid(60).rem_euclid(168) as usize;
                rates[ci] = c.weight * local_total[lh] / mean_local;
            }
        }
        let mut global_rate: Vec<f64> = city_rate.iter().map(|r| r.iter().sum()).collect();
        let mean_global = global_rate.iter().sum::<f64>() / 168.0;
        for g in &mut global_rate {
            *g /= mean_global;
        }

        // Refund and reversal chances, normalised to the network's shares.
        let volume: f64 = CATS.iter().map(|c| c.volume).sum();
        let refund_mean = CATS.iter().map(|c| c.volume * c.refund).sum::<f64>() / volume;
        let reversal_mean = CATS.iter().map(|c| c.volume * c.reversal).sum::<f64>() / volume;
        let mut refund_p = [0.0; NCAT];
        let mut reversal_p = [0.0; NCAT];
        for (ci, c) in CATS.iter().enumerate() {
            refund_p[ci] = (c.refund * REFUND_SHARE / refund_mean).min(0.5);
            reversal_p[ci] = (c.reversal * REVERSAL_SHARE / reversal_mean).min(0.5);
        }

        World {
            merchants: list,
            brands,
            by_city_cat,
            by_city,
            card_bounds,
            cards,
            token_salt: rng.next_u64() as u32,
            network_salt: rng.next_u64() as u32,
            cat_rate,
            city_rate,
            global_rate,
            refund_p,
            reversal_p,
            hour_weights,
        }
    }

    /// The home city of a card.
    pub(crate) fn card_city(&self, card: u32) -> usize {
        (self.card_bounds.partition_point(|&b| b <= card) - 1).min(NCITY - 1)
    }

    /// The network of a card, as an index into [`NETWORKS`].
    #[inline]
    pub(crate) fn card_network(&self, card: u32) -> usize {
        let x = mix32(card ^ self.network_salt) % 100;
        match x {
            0..50 => 0,
            50..80 => 1,
            80..92 => 2,
            _ => 3,
        }
    }

    /// The network token of a card, e.g. `tok_v_3f09a1c2`: unique per card,
    /// never a string of digits.
    pub(crate) fn card_token(&self, card: u32) -> String {
        let letter = NETWORKS[self.card_network(card)].1;
        let h = mix32(card.wrapping_add(self.token_salt));
        let mut s = String::with_capacity(14);
        s.push_str("tok_");
        s.push(letter);
        s.push('_');
        for i in (0..8).rev() {
            s.push(char::from(b"0123456789abcdef"[((h >> (i * 4)) & 0xF) as usize]));
        }
        s
    }

    /// The city of a merchant.
    #[inline]
    pub(crate) fn city_of(&self, merchant: u32) -> &'static City {
        &CITIES[self.merchants[merchant as usize].city as usize]
    }

    /// The currency of a merchant, as an index into [`CURS`].
    #[inline]
    pub(crate) fn cur_of(&self, merchant: u32) -> usize {
        self.city_of(merchant).cur
    }
}

/// The RFC 3339 form of `secs` (since the Unix epoch) in local time at
/// `offset_min` minutes from UTC, e.g. `2026-05-04T12:30:00-04:00`.
pub(crate) fn timestamp(secs: i64, offset_min: i32) -> String {
    let local = secs + i64::from(offset_min) * 60;
    let (y, m, d) = civil_from_days(local.div_euclid(86_400));
    let sod = local.rem_euclid(86_400);
    let off = offset_min.unsigned_abs();
    let mut b = *b"0000-00-00T00:00:00+00:00";
    put_digits(&mut b[0..4], y.unsigned_abs());
    put_digits(&mut b[5..7], u64::from(m));
    put_digits(&mut b[8..10], u64::from(d));
    put_digits(&mut b[11..13], (sod / 3600) as u64);
    put_digits(&mut b[14..16], (sod / 60 % 60) as u64);
    put_digits(&mut b[17..19], (sod % 60) as u64);
    if offset_min < 0 {
        b[19] = b'-';
    }
    put_digits(&mut b[20..22], u64::from(off / 60));
    put_digits(&mut b[23..25], u64::from(off % 60));
    String::from_utf8(b.to_vec()).expect("ASCII")
}

/// Writes `n` as decimal digits right-aligned into `out` (zero-padded,
/// cut to the slice's width).
fn put_digits(out: &mut [u8], mut n: u64) {
    for c in out.iter_mut().rev() {
        *c = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `prefix` followed by `n` in decimal, e.g. `e-123`.
pub(crate) fn prefixed(prefix: &str, n: u64) -> String {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(prefix.len() + buf.len() - i);
    s.push_str(prefix);
    s.push_str(std::str::from_utf8(&buf[i..]).expect("ASCII digits"));
    s
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A non-negative amount of minor units written in major units with
/// exactly `digits` digits after the point (`4250, 2` → `"42.50"`).
pub(crate) fn format_minor(minor: i64, digits: u32) -> String {
    let minor = minor.max(0);
    if digits == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(digits);
    let mut s = prefixed("", (minor / scale) as u64);
    let mut frac = [b'0'; 4];
    let frac = &mut frac[..digits.min(4) as usize];
    put_digits(frac, (minor % scale) as u64);
    s.push('.');
    s.push_str(std::str::from_utf8(frac).expect("ASCII digits"));
    s
}

/// 10^digits as a float, exact for the digits currencies use.
pub(crate) fn pow10(digits: u32) -> f64 {
    [1.0, 10.0, 100.0, 1000.0, 10_000.0][digits.min(4) as usize]
}

/// Rounds a positive amount to two significant digits of minor units, at
/// least one minor unit: budgets and thresholds look like people set them.
pub(crate) fn nice_minor(major: f64, digits: u32) -> i64 {
    let minor = (major * pow10(digits)).round().max(1.0) as i64;
    let mut mag = 1;
    while minor / mag >= 100 {
        mag *= 10;
    }
    ((minor + mag / 2) / mag * mag).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_chrono() {
        for (secs, off) in [(0i64, 0), (1_777_593_600, -240), (1_777_593_600 + 86_399, 540), (951_782_400, 60)] {
            let got = timestamp(secs, off);
            let tz = chrono::FixedOffset::east_opt(off * 60).unwrap();
            let want = chrono::DateTime::from_timestamp(secs, 0).unwrap().with_timezone(&tz).to_rfc3339();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn money_formatting() {
        for (minor, digits, want) in [(4250, 2, "42.50"), (5, 2, "0.05"), (500, 0, "500"), (1250, 3, "1.250")] {
            assert_eq!(format_minor(minor, digits), want);
        }
        assert_eq!(nice_minor(5.0, 2), 500);
        assert_eq!(nice_minor(37.4, 2), 3700);
        assert_eq!(nice_minor(77_500.0, 0), 78_000);
        assert_eq!(nice_minor(0.001, 2), 1);
    }

    #[test]
    fn hour_of_week_starts_on_monday() {
        let monday = chrono::DateTime::parse_from_rfc3339("2026-05-04T00:00:00Z").unwrap().timestamp();
        assert_eq!(hour_of_week(monday), 0);
        assert_eq!(hour_of_week(monday + 6 * 86_400 + 23 * 3600), 167);
        assert_eq!(hour_of_week(monday + 7 * 86_400), 0);
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Hartley's"), "hartleys");
        assert_eq!(slugify("Tap & Barrel"), "tap-barrel");
        assert_eq!(slugify("Blue Bottle #12"), "blue-bottle-12");
    }
}
