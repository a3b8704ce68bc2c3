//! What a page shows of the fleet ([`Scope`]), and the overview's page of cards: which devices
//! match a filter, in which order, one page at a time ([`DeviceQuery`]). The server picks the
//! page (`select_page`), so a browser never receives the whole fleet: with ten thousand
//! devices, a page and its live stream carry only the cards on screen and the counts.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Cards on one overview page.
pub const PAGE_SIZE: usize = 48;
/// Longest filter the overview takes (longer ones are cut): a filter is matched against every
/// device's id and name.
pub const MAX_FILTER_CHARS: usize = 64;

/// How much of the fleet a page shows, and so what its snapshot and live stream carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The counts, the commands and the alarms, and no device (the Tokens and Alarms pages).
    #[default]
    Fleet,
    /// One page of the overview's cards: those devices with their sparklines.
    Devices(DeviceQuery),
    /// One device in detail (its page): all its recent readings and its console.
    Device(String),
}

impl Scope {
    /// The device a device page shows.
    pub fn focus(&self) -> Option<&str> {
        match self {
            Scope::Device(id) => Some(id),
            _ => None,
        }
    }
}

/// How the overview orders its cards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceOrder {
    /// By name (or id), case-insensitively.
    #[default]
    Name,
    /// Most recently heard from first.
    LastSeen,
    /// Offline devices first, then by name: what needs attention on top.
    OfflineFirst,
}

impl DeviceOrder {
    pub const ALL: [DeviceOrder; 3] = [
        DeviceOrder::Name,
        DeviceOrder::LastSeen,
        DeviceOrder::OfflineFirst,
    ];

    pub fn key(self) -> &'static str {
        match self {
            DeviceOrder::Name => "name",
            DeviceOrder::LastSeen => "last-seen",
            DeviceOrder::OfflineFirst => "offline-first",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeviceOrder::Name => "Name",
            DeviceOrder::LastSeen => "Last seen",
            DeviceOrder::OfflineFirst => "Offline first",
        }
    }

    pub fn from_key(key: &str) -> DeviceOrder {
        Self::ALL
            .into_iter()
            .find(|o| o.key() == key)
            .unwrap_or_default()
    }
}

/// Which cards the overview shows: the devices whose id or name contains `filter` (ignoring
/// case), in `order`, page `page` (from 0) of [`PAGE_SIZE`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceQuery {
    #[serde(default)]
    pub filter: String,
    #[serde(default)]
    pub order: DeviceOrder,
    #[serde(default)]
    pub page: u32,
}

/// What the overview's order and filter look at of one device.
#[derive(Debug, Clone, Copy)]
pub struct Listed<'a> {
    pub id: &'a str,
    /// The name shown (a person's, else the registered one).
    pub name: Option<&'a str>,
    pub online: bool,
    pub last_seen_ms: i64,
}

impl<'a> Listed<'a> {
    /// What the overview looks at of a device's summary.
    pub fn of(summary: &'a super::DeviceSummary) -> Listed<'a> {
        Listed {
            id: &summary.id,
            name: summary.name(),
            online: summary.online,
            last_seen_ms: summary.last_seen_ms,
        }
    }

    fn shown_name(&self) -> &str {
        self.name.unwrap_or(self.id)
    }
}

impl DeviceQuery {
    /// The query with its filter trimmed and cut to [`MAX_FILTER_CHARS`].
    pub fn normalised(mut self) -> DeviceQuery {
        let trimmed = self.filter.trim();
        self.filter = trimmed.chars().take(MAX_FILTER_CHARS).collect();
        self
    }

    /// The filter as it is matched: lower case.
    fn needle(&self) -> String {
        self.filter.trim().to_lowercase()
    }

    /// Whether a device with this id and name is listed by the filter.
    pub fn matches(&self, device: Listed<'_>) -> bool {
        matches_needle(&self.needle(), device.id, device.name)
    }

    /// Whether `a` is listed before `b`.
    pub fn precedes(&self, a: Listed<'_>, b: Listed<'_>) -> bool {
        compare(self.order, &a, &b) == Ordering::Less
    }

    /// Sorts nothing but what the page needs: of `devices`, those the filter matches, in
    /// order, page [`Self::page`]; and how many matched in all. Linear in the fleet (a
    /// selection, not a sort of everything), then a sort of one page.
    pub fn select_page<'a, T>(
        &self,
        devices: impl IntoIterator<Item = (Listed<'a>, T)>,
    ) -> (usize, Vec<T>) {
        let needle = self.needle();
        let mut rows: Vec<(Listed<'a>, T)> = devices
            .into_iter()
            .filter(|(d, _)| matches_needle(&needle, d.id, d.name))
            .collect();
        let matching = rows.len();
        let start = (self.page as usize).saturating_mul(PAGE_SIZE);
        if start >= rows.len() {
            return (matching, Vec::new());
        }
        let order = self.order;
        let cmp = |a: &(Listed<'a>, T), b: &(Listed<'a>, T)| compare(order, &a.0, &b.0);
        // Everything before the page to the left of `start`, then the page's end.
        if start > 0 {
            rows.select_nth_unstable_by(start, cmp);
        }
        let mut page = rows.split_off(start);
        if page.len() > PAGE_SIZE {
            page.select_nth_unstable_by(PAGE_SIZE, cmp);
            page.truncate(PAGE_SIZE);
        }
        page.sort_unstable_by(cmp);
        (matching, page.into_iter().map(|(_, t)| t).collect())
    }
}

fn matches_needle(needle: &str, id: &str, name: Option<&str>) -> bool {
    let has = |text: &str| {
        // Most ids are ASCII: no allocation for them.
        if text.is_ascii() && needle.is_ascii() {
            text.to_ascii_lowercase().contains(needle)
        } else {
            text.to_lowercase().contains(needle)
        }
    };
    needle.is_empty() || has(id) || name.is_some_and(has)
}

/// Names compared ignoring case without allocating (every comparison of a sort would).
fn by_name(a: &Listed<'_>, b: &Listed<'_>) -> Ordering {
    let lower = |s: &str| s.chars().flat_map(char::to_lowercase).collect::<Vec<_>>();
    let (x, y) = (a.shown_name(), b.shown_name());
    let folded = if x.is_ascii() && y.is_ascii() {
        x.bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(y.bytes().map(|c| c.to_ascii_lowercase()))
    } else {
        lower(x).cmp(&lower(y))
    };
    folded.then_with(|| a.id.cmp(b.id))
}

fn compare(order: DeviceOrder, a: &Listed<'_>, b: &Listed<'_>) -> Ordering {
    match order {
        DeviceOrder::Name => by_name(a, b),
        DeviceOrder::LastSeen => b
            .last_seen_ms
            .cmp(&a.last_seen_ms)
            .then_with(|| a.id.cmp(b.id)),
        DeviceOrder::OfflineFirst => a.online.cmp(&b.online).then_with(|| by_name(a, b)),
    }
}

/// How many devices the hub knows and how many are online: every page shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Fleet {
    pub known: u32,
    pub online: u32,
    /// The hub is one of several (`--cluster-nats`) and cut off from the others: their devices
    /// are shown as they were last told.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_off: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed<'a>(id: &'a str, name: Option<&'static str>, online: bool, last: i64) -> Listed<'a> {
        Listed {
            id,
            name,
            online,
            last_seen_ms: last,
        }
    }

    fn page(query: &DeviceQuery, devices: &[Listed<'_>]) -> (usize, Vec<String>) {
        query.select_page(devices.iter().map(|d| (*d, d.id.to_string())))
    }

    fn query(filter: &str, order: DeviceOrder, page: u32) -> DeviceQuery {
        DeviceQuery {
            filter: filter.into(),
            order,
            page,
        }
    }

    #[test]
    fn the_overview_filters_by_id_or_name_and_sorts() {
        let devices = [
            listed("7", Some("Kitchen"), true, 300),
            listed("8", Some("attic"), false, 100),
            listed("b-12", None, true, 200),
            listed("a-3", None, false, 400),
        ];
        let ids = |filter, order| page(&query(filter, order, 0), &devices);
        assert_eq!(
            ids("", DeviceOrder::Name),
            (4, s(&["a-3", "8", "b-12", "7"]))
        );
        assert_eq!(
            ids("", DeviceOrder::LastSeen),
            (4, s(&["a-3", "7", "b-12", "8"]))
        );
        assert_eq!(
            ids("", DeviceOrder::OfflineFirst),
            (4, s(&["a-3", "8", "b-12", "7"]))
        );
        assert_eq!(ids("KITCH", DeviceOrder::Name), (1, s(&["7"])));
        assert_eq!(ids(" 1", DeviceOrder::Name), (1, s(&["b-12"])));
        assert_eq!(ids("nothing", DeviceOrder::Name), (0, vec![]));
        for order in DeviceOrder::ALL {
            assert_eq!(DeviceOrder::from_key(order.key()), order);
        }
        assert_eq!(DeviceOrder::from_key("bogus"), DeviceOrder::Name);
    }

    #[test]
    fn names_outside_ascii_match_and_sort_ignoring_case() {
        let devices = [
            listed("1", Some("Öl"), true, 0),
            listed("2", Some("ähre"), true, 0),
            listed("3", Some("Zelt"), true, 0),
        ];
        let (_, ids) = page(&query("", DeviceOrder::Name, 0), &devices);
        assert_eq!(ids, s(&["3", "2", "1"]), "char order: z < ä < ö");
        assert_eq!(
            page(&query("öL", DeviceOrder::Name, 0), &devices).1,
            s(&["1"])
        );
    }

    #[test]
    fn pages_cut_the_sorted_list_in_pieces_that_together_are_the_whole_list() {
        let ids: Vec<String> = (0..130).map(|i| format!("d-{i:03}")).collect();
        // Shuffled by a fixed permutation: the page must not depend on the input's order.
        let mut devices: Vec<Listed<'_>> = ids.iter().map(|id| listed(id, None, true, 0)).collect();
        devices.reverse();
        devices.swap(3, 77);
        let mut all = Vec::new();
        for p in 0..3 {
            let (matching, ids) = page(&query("", DeviceOrder::Name, p), &devices);
            assert_eq!(matching, 130);
            assert_eq!(
                ids.len(),
                if p < 2 {
                    PAGE_SIZE
                } else {
                    130 - 2 * PAGE_SIZE
                }
            );
            all.extend(ids);
        }
        assert_eq!(all, ids);
        assert_eq!(
            page(&query("", DeviceOrder::Name, 3), &devices),
            (130, vec![])
        );
        assert_eq!(
            page(&query("", DeviceOrder::Name, u32::MAX), &devices),
            (130, vec![])
        );
    }

    #[test]
    fn a_filter_is_trimmed_and_cut() {
        let long = DeviceQuery {
            filter: format!("  {}  ", "x".repeat(500)),
            ..Default::default()
        }
        .normalised();
        assert_eq!(long.filter.len(), MAX_FILTER_CHARS);
    }

    fn s(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }
}
