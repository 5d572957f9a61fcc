//! The store side of keyset pagination. A listing loads one row more than it shows
//! ([`KeysetPage::fetch`]), so it knows whether another page follows without counting, and
//! the next page's cursor is made from the last item shown. Its `total` is a count of the
//! same filter without the cursor ([`page_total`]).

/// A `COUNT(*)` of a listing's filter (cursor aside) as its pages' `total`.
pub fn page_total(count: i64) -> u64 {
    // A count is never negative.
    u64::try_from(count).unwrap_or_default()
}

/// One page of a keyset listing, cut from the rows a query loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysetPage<T> {
    /// What the page shows: at most its limit.
    pub items: Vec<T>,
    /// Whether the query found more rows than the page shows.
    pub more: bool,
}

impl<T> KeysetPage<T> {
    /// The `LIMIT` of the query behind a page of `limit` items: one more than it shows.
    pub fn fetch(limit: u32) -> i64 {
        i64::from(limit) + 1
    }

    /// The first `limit` of `rows`, remembering whether there were more.
    pub fn of(mut rows: Vec<T>, limit: u32) -> Self {
        let limit = limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        Self { items: rows, more }
    }

    /// Converts every item (a row into what the API returns).
    ///
    /// # Errors
    /// The first error `convert` returns.
    pub fn try_map<U, E>(self, convert: impl FnMut(T) -> Result<U, E>) -> Result<KeysetPage<U>, E> {
        Ok(KeysetPage {
            items: self
                .items
                .into_iter()
                .map(convert)
                .collect::<Result<_, _>>()?,
            more: self.more,
        })
    }

    /// The items, and the cursor of the next page (`cursor` of the last item) when more
    /// rows follow.
    pub fn finish(self, cursor: impl FnOnce(&T) -> String) -> (Vec<T>, Option<String>) {
        let next = if self.more {
            self.items.last().map(cursor)
        } else {
            None
        };
        (self.items, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_loads_one_row_more_than_it_shows() {
        assert_eq!(KeysetPage::<()>::fetch(20), 21);
        assert_eq!(KeysetPage::<()>::fetch(u32::MAX), i64::from(u32::MAX) + 1);
    }

    #[test]
    fn the_extra_row_is_cut_and_the_last_shown_item_makes_the_cursor() {
        let (items, next) = KeysetPage::of(vec![1, 2, 3], 2).finish(|n| format!("after {n}"));
        assert_eq!(items, [1, 2]);
        assert_eq!(next.as_deref(), Some("after 2"));
    }

    #[test]
    fn the_last_page_has_no_cursor() {
        for rows in [vec![1, 2], vec![1], vec![]] {
            let (items, next) = KeysetPage::of(rows.clone(), 2).finish(|n| n.to_string());
            assert_eq!(items, rows);
            assert_eq!(next, None);
        }
    }

    #[test]
    fn conversion_keeps_the_page_and_stops_at_the_first_error() {
        let page = KeysetPage::of(vec!["1", "2", "3"], 2)
            .try_map(str::parse::<i32>)
            .unwrap();
        assert_eq!(
            page,
            KeysetPage {
                items: vec![1, 2],
                more: true
            }
        );
        let bad = KeysetPage::of(vec!["1", "x"], 5).try_map(str::parse::<i32>);
        assert!(bad.is_err());
    }
}
