//! ISO 3166-1 alpha-2 country codes.

/// Officially assigned ISO 3166-1 alpha-2 codes, concatenated and sorted.
const CODES: &str = "\
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ \
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ \
DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY \
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY \
QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ \
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ \
VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// A country as its two upper-case ASCII letters.
pub type Country = [u8; 2];

/// The assigned codes as a bit set over the 26 × 26 two-letter pairs, so
/// looking a country up (once per purchase) is one bit test.
const ASSIGNED: [u64; 11] = {
    let mut bits = [0u64; 11];
    let b = CODES.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        let n = (b[i] - b'A') as usize * 26 + (b[i + 1] - b'A') as usize;
        bits[n / 64] |= 1 << (n % 64);
        i += 3;
    }
    bits
};

/// Parses an upper-case ISO 3166-1 alpha-2 code (`"US"`); lower case is refused.
#[inline]
pub fn parse_country(s: &str) -> Option<Country> {
    let b = s.as_bytes();
    if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
        return None;
    }
    let n = (b[0] - b'A') as usize * 26 + (b[1] - b'A') as usize;
    (ASSIGNED[n / 64] & (1 << (n % 64)) != 0).then_some([b[0], b[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_249_sorted_codes() {
        let cells: Vec<&str> = CODES.split(' ').collect();
        assert_eq!(cells.len(), 249);
        assert!(cells.windows(2).all(|w| w[0] < w[1]));
        assert!(cells.iter().all(|c| parse_country(c).is_some()));
        let accepted = (b'A'..=b'Z')
            .flat_map(|a| (b'A'..=b'Z').map(move |b| [a, b]))
            .filter(|p| parse_country(std::str::from_utf8(p).unwrap()).is_some())
            .count();
        assert_eq!(accepted, 249, "the bit set holds exactly the table");
    }

    #[test]
    fn parse_table() {
        fn check(input: &str, ok: bool) {
            assert_eq!(parse_country(input).is_some(), ok, "{input:?}");
        }
        check("US", true);
        check("JP", true);
        check("AD", true);
        check("ZW", true);
        check("us", false);
        check("XX", false);
        check("UK", false);
        check("USA", false);
        check("", false);
    }
}
